using System.Security.Cryptography;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Runtime.Trusted.Verification;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Trusted;

[TestFixture]
public sealed class ChannelTests : IDisposable
{
    private readonly TrustedWorld _world = new();

    public void Dispose() => _world.Dispose();

    [Test]
    public void BothDirectionsRoundTrip()
    {
        (SecureChannel party, SecureChannel device) = Connect(ChannelRole.DataOwner);
        using (party)
        using (device)
        {
            Assert.That(device.Open(party.Seal(RecordType.Application, "to device"u8), RecordType.Application), Is.EqualTo("to device"u8.ToArray()));
            Assert.That(party.Open(device.Seal(RecordType.Application, "to party"u8), RecordType.Application), Is.EqualTo("to party"u8.ToArray()));
        }
    }

    [TestCase(SecureChannel.HeaderSize + 2, TestName = "Tampered ciphertext")]
    [TestCase(3, TestName = "Tampered record type")]
    [TestCase(15, TestName = "Tampered sequence number")]
    [TestCase(-1, TestName = "Tampered tag")]
    public void TamperingIsDetectedAndClosesTheChannel(int offset)
    {
        (SecureChannel party, SecureChannel device) = Connect(ChannelRole.DataOwner);
        using (party)
        using (device)
        {
            byte[] record = party.Seal(RecordType.Application, "confidential prompt"u8);
            record[offset < 0 ? record.Length - 1 : offset] ^= 0x01;
            Assert.That(() => device.Open(record, RecordType.Application), Throws.TypeOf<RecordAuthenticationException>());
            Assert.Throws<ChannelClosedException>(() => device.Open(party.Seal(RecordType.Application, "next"u8), RecordType.Application));
        }
    }

    [Test]
    public void TruncatedRecordIsMalformed()
    {
        (SecureChannel party, SecureChannel device) = Connect(ChannelRole.DataOwner);
        using (party)
        using (device)
        {
            byte[] record = party.Seal(RecordType.Application, "confidential prompt"u8);
            Assert.Throws<MalformedRecordException>(() => device.Open(record.AsSpan(0, record.Length - 1), RecordType.Application));
        }
    }

    [Test]
    public void ReplayIsDetected()
    {
        (SecureChannel party, SecureChannel device) = Connect(ChannelRole.DataOwner);
        using (party)
        using (device)
        {
            byte[] record = party.Seal(RecordType.Application, "once"u8);
            device.Open(record, RecordType.Application);
            Assert.Throws<RecordReplayException>(() => device.Open(record, RecordType.Application));
        }
    }

    [Test]
    public void ReorderIsDetected()
    {
        (SecureChannel party, SecureChannel device) = Connect(ChannelRole.DataOwner);
        using (party)
        using (device)
        {
            byte[] first = party.Seal(RecordType.Application, "1"u8);
            byte[] second = party.Seal(RecordType.Application, "2"u8);
            var ex = Assert.Throws<RecordOutOfOrderException>(() => device.Open(second, RecordType.Application));
            Assert.That(ex!.Message, Does.Contain("record 1 while record 0"));
            GC.KeepAlive(first);
        }
    }

    [Test]
    public void DropIsDetected()
    {
        (SecureChannel party, SecureChannel device) = Connect(ChannelRole.DataOwner);
        using (party)
        using (device)
        {
            device.Open(party.Seal(RecordType.Application, "1"u8), RecordType.Application);
            party.Seal(RecordType.Application, "dropped by the host"u8);
            Assert.Throws<RecordOutOfOrderException>(() => device.Open(party.Seal(RecordType.Application, "3"u8), RecordType.Application));
        }
    }

    [Test]
    public void KeysRotateAfterTheRecordLimitAndTrafficContinues()
    {
        var options = new SecureChannelOptions { MaxRecordsPerKey = 3 };
        (SecureChannel party, SecureChannel device) = Connect(ChannelRole.DataOwner, options);
        using (party)
        using (device)
        {
            var seenKeys = new HashSet<uint>();
            for (int i = 0; i < 10; i++)
            {
                byte[] record = party.Seal(RecordType.Application, [(byte)i]);
                seenKeys.Add(party.SendEpoch);
                Assert.That(device.Open(record, RecordType.Application), Is.EqualTo(new[] { (byte)i }));
            }
            Assert.That(party.SendEpoch, Is.EqualTo(3u));
            Assert.That(device.ReceiveEpoch, Is.EqualTo(3u));
            Assert.That(seenKeys, Has.Count.EqualTo(4));
        }
    }

    [Test]
    public void KeysRotateAfterTheByteLimit()
    {
        var options = new SecureChannelOptions { MaxBytesPerKey = 1000 };
        (SecureChannel party, SecureChannel device) = Connect(ChannelRole.DataOwner, options);
        using (party)
        using (device)
        {
            byte[] payload = new byte[400];
            for (int i = 0; i < 5; i++)
            {
                device.Open(party.Seal(RecordType.Application, payload), RecordType.Application);
            }
            Assert.That(party.SendEpoch, Is.EqualTo(2u));
        }
    }

    [Test]
    public void ReceiverRejectsASenderThatDoesNotRotate()
    {
        (SecureChannel party, SecureChannel device) = Connect(ChannelRole.DataOwner, new SecureChannelOptions { MaxRecordsPerKey = 1L << 20 }, new SecureChannelOptions { MaxRecordsPerKey = 2 });
        using (party)
        using (device)
        {
            device.Open(party.Seal(RecordType.Application, "1"u8), RecordType.Application);
            device.Open(party.Seal(RecordType.Application, "2"u8), RecordType.Application);
            Assert.Throws<MalformedRecordException>(() => device.Open(party.Seal(RecordType.Application, "3"u8), RecordType.Application));
        }
    }

    [Test]
    public void EachPartyGetsIndependentKeys()
    {
        using EmulatedDevice device = _world.Device();
        (SecureChannel provider, SecureChannel providerDevice) = Connect(device, ChannelRole.ModelProvider);
        (SecureChannel owner, SecureChannel ownerDevice) = Connect(device, ChannelRole.DataOwner);
        using (provider)
        using (providerDevice)
        using (owner)
        using (ownerDevice)
        {
            byte[] fromProvider = provider.Seal(RecordType.Application, "same plaintext"u8);
            byte[] fromOwner = owner.Seal(RecordType.Application, "same plaintext"u8);
            Assert.That(fromOwner, Is.Not.EqualTo(fromProvider), "same sequence and plaintext must encrypt differently under independent keys");
            Assert.Throws<RecordAuthenticationException>(() => ownerDevice.Open(fromProvider, RecordType.Application));
        }
    }

    [Test]
    public void AnswerFromAnotherHandshakeFailsKeyConfirmation()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        AttestationReport report = AttestationReport.Parse(DeviceHello.Parse(device.CreateHello(nonce)).Report.Span);
        using var genuine = ChannelInitiator.Start(ChannelRole.DataOwner, report);
        using var relay = ChannelInitiator.Start(ChannelRole.DataOwner, report);
        using SecureChannel relayed = device.Accept(relay.OpenMessage.Span, out byte[] accept);
        Assert.Throws<ChannelHandshakeException>(() => genuine.Complete(accept));
    }

    [Test]
    public void RecordsFollowTheSpecifiedConstruction()
    {
        // Recomputes every record from the construction the class documents (HKDF-SHA384 key and IV
        // per epoch, nonce = IV XOR sequence, the 20-byte header as associated data, HKDF ratchet on
        // rotation), so a change to any label, the nonce, the header or the ratchet is caught even
        // though both ends of a channel would agree on it.
        byte[] send = Enumerable.Range(0, 48).Select(i => (byte)i).ToArray();
        byte[] receive = Enumerable.Range(100, 48).Select(i => (byte)i).ToArray();
        var options = new SecureChannelOptions { MaxRecordsPerKey = 2 };
        using var channel = new SecureChannel(ChannelRole.DataOwner, send, receive, options);
        byte[] secret = send;
        for (ulong sequence = 0; sequence < 5; sequence++)
        {
            uint epoch = (uint)(sequence / 2);
            if (sequence > 0 && sequence % 2 == 0)
            {
                secret = HKDF.Expand(HashAlgorithmName.SHA384, secret, 48, "AscendCC channel v1 rekey"u8.ToArray());
            }
            byte[] plaintext = Enumerable.Repeat((byte)(0x40 + sequence), 3 + (int)sequence).ToArray();
            byte[] record = channel.Seal(RecordType.Prompt, plaintext);
            Assert.That(channel.SendEpoch, Is.EqualTo(epoch));
            Assert.That(record, Is.EqualTo(ExpectedRecord(secret, RecordType.Prompt, epoch, sequence, plaintext)), $"record {sequence}");
        }

        // The receiving direction derives its keys from the other secret in the same way.
        using var peer = new SecureChannel(ChannelRole.DataOwner, receive, send, options);
        byte[] fromPeer = ExpectedRecord(receive, RecordType.Token, 0, 0, "from the device"u8.ToArray());
        Assert.That(peer.Seal(RecordType.Token, "from the device"u8), Is.EqualTo(fromPeer));
        Assert.That(channel.Open(fromPeer, RecordType.Token), Is.EqualTo("from the device"u8.ToArray()));
    }

    [Test]
    public void EmptyAndMaximalRecordsRoundTrip()
    {
        var options = new SecureChannelOptions { MaxRecordPlaintext = 64 };
        (SecureChannel party, SecureChannel device) = Pair(options);
        using (party)
        using (device)
        {
            byte[] empty = party.Seal(RecordType.Application, ReadOnlySpan<byte>.Empty);
            Assert.That(empty, Has.Length.EqualTo(SecureChannel.Overhead));
            Assert.That(SecureChannel.PeekPlaintextLength(empty), Is.EqualTo(0));
            Assert.That(device.Open(empty, RecordType.Application), Is.Empty);

            byte[] full = new byte[64];
            RandomNumberGenerator.Fill(full);
            byte[] destination = new byte[SecureChannel.RecordSize(64)];
            Assert.That(party.Seal(RecordType.Application, full, destination), Is.EqualTo(destination.Length), "a destination of exactly the record size suffices");
            byte[] opened = new byte[64];
            Assert.That(device.Open(destination, opened, out RecordType type), Is.EqualTo(64), "a destination of exactly the plaintext size suffices");
            Assert.That(type, Is.EqualTo(RecordType.Application));
            Assert.That(opened, Is.EqualTo(full));
        }
    }

    [Test]
    public void OversizedRecordsAreRefusedAtBothEnds()
    {
        (SecureChannel party, SecureChannel device) = Pair(new SecureChannelOptions { MaxRecordPlaintext = 1024 }, new SecureChannelOptions { MaxRecordPlaintext = 16 });
        using (party)
        using (device)
        {
            Assert.Throws<ArgumentException>(() => party.Seal(RecordType.Application, new byte[1025]));
            Assert.Throws<ArgumentException>(() => party.Seal(RecordType.Application, new byte[10], new byte[SecureChannel.RecordSize(10) - 1]));
            Assert.Throws<MalformedRecordException>(() => device.Open(party.Seal(RecordType.Application, new byte[17]), RecordType.Application));
            Assert.Throws<ChannelClosedException>(() => device.Open(party.Seal(RecordType.Application, new byte[1]), RecordType.Application), "a refused record ends the channel");
        }
    }

    [Test]
    public void TooSmallDestinationIsRefusedWithoutEndingTheChannel()
    {
        (SecureChannel party, SecureChannel device) = Pair();
        using (party)
        using (device)
        {
            byte[] record = party.Seal(RecordType.Application, "twelve bytes"u8);
            Assert.Throws<ArgumentException>(() => device.Open(record, new byte[11], out _));
            Assert.That(device.Open(record, RecordType.Application), Is.EqualTo("twelve bytes"u8.ToArray()));
        }
    }

    [TestCase(0, 0x00, TestName = "Wrong first magic byte")]
    [TestCase(1, 0x00, TestName = "Wrong second magic byte")]
    [TestCase(2, 0x02, TestName = "Unknown version")]
    [TestCase(3, 0x00, TestName = "Record type 0")]
    [TestCase(3, 0x63, TestName = "Undefined record type")]
    [TestCase(7, 0x02, TestName = "Key epoch two ahead")]
    public void MalformedHeadersAreRejectedBeforeDecryption(int offset, byte value)
    {
        (SecureChannel party, SecureChannel device) = Pair();
        using (party)
        using (device)
        {
            byte[] record = party.Seal(RecordType.Application, "confidential prompt"u8);
            record[offset] = value;
            Assert.Throws<MalformedRecordException>(() => device.Open(record, RecordType.Application));
            Assert.Throws<ChannelClosedException>(() => device.Open(party.Seal(RecordType.Application, "next"u8), RecordType.Application));
        }
    }

    [Test]
    public void RecordOfAnotherTypeEndsTheChannel()
    {
        (SecureChannel party, SecureChannel device) = Pair();
        using (party)
        using (device)
        {
            var ex = Assert.Throws<MalformedRecordException>(() => device.Open(party.Seal(RecordType.Token, "a token"u8), RecordType.Prompt));
            Assert.That(ex!.Message, Does.Contain("Prompt").And.Contain("Token"));
            Assert.Throws<ChannelClosedException>(() => device.Open(party.Seal(RecordType.Prompt, "a prompt"u8), RecordType.Prompt));
        }
    }

    [Test]
    public void OutOfOrderRecordLeavesNoPlaintextInTheDestination()
    {
        (SecureChannel party, SecureChannel device) = Pair();
        using (party)
        using (device)
        {
            party.Seal(RecordType.Application, "dropped"u8);
            byte[] second = party.Seal(RecordType.Application, "authentic but early"u8);
            byte[] destination = Enumerable.Repeat((byte)0xEE, 32).ToArray();
            Assert.Throws<RecordOutOfOrderException>(() => device.Open(second, destination, out _));
            Assert.That(destination.Take(19), Is.All.EqualTo(0), "the decrypted plaintext of a rejected record is wiped");
            Assert.That(destination.Skip(19), Is.All.EqualTo(0xEE));
        }
    }

    [Test]
    public void ByteLimitIsInclusive()
    {
        (SecureChannel party, SecureChannel device) = Pair(new SecureChannelOptions { MaxBytesPerKey = 1000 });
        using (party)
        using (device)
        {
            byte[] payload = new byte[500];
            device.Open(party.Seal(RecordType.Application, payload), RecordType.Application);
            device.Open(party.Seal(RecordType.Application, payload), RecordType.Application);
            Assert.That(party.SendEpoch, Is.EqualTo(0u), "exactly MaxBytesPerKey bytes fit under one key");
            device.Open(party.Seal(RecordType.Application, payload), RecordType.Application);
            Assert.That(party.SendEpoch, Is.EqualTo(1u));
            Assert.That(device.ReceiveEpoch, Is.EqualTo(1u));
        }
    }

    [Test]
    public void DisposedOrFailedChannelRefusesToSeal()
    {
        (SecureChannel party, SecureChannel device) = Pair();
        party.Dispose();
        Assert.Throws<ChannelClosedException>(() => party.Seal(RecordType.Application, "after dispose"u8));
        byte[] garbage = new byte[SecureChannel.Overhead + 4];
        garbage[0] = 0xAC;
        garbage[1] = 0xC1;
        garbage[2] = 1;
        garbage[3] = (byte)RecordType.Application;
        garbage[19] = 4;
        Assert.Throws<RecordAuthenticationException>(() => device.Open(garbage, RecordType.Application));
        Assert.Throws<ChannelClosedException>(() => device.Seal(RecordType.Application, "after a failure"u8), "a failed channel sends nothing more either");
        device.Dispose();
    }

    [Test]
    public void ExhaustedSequenceSpaceEndsTheChannel()
    {
        // 2^64 records cannot be sent in a test; the counter is fast-forwarded instead.
        (SecureChannel party, SecureChannel device) = Pair();
        using (party)
        using (device)
        {
            SetCounter(party, "_send", "Sequence", ulong.MaxValue - 1);
            Assert.That(party.Seal(RecordType.Application, "the last sequence number"u8), Has.Length.EqualTo(SecureChannel.Overhead + 24));
            var ex = Assert.Throws<ChannelClosedException>(() => party.Seal(RecordType.Application, "one too many"u8));
            Assert.That(ex!.Message, Does.Contain("sequence space is exhausted"));
            Assert.Throws<ChannelClosedException>(() => party.Open(device.Seal(RecordType.Application, "reply"u8), RecordType.Application), "the exhausted channel is closed in both directions");
        }
    }

    [Test]
    public void ExhaustedKeyEpochSpaceIsRefused()
    {
        // 2^32 rotations cannot be run in a test; the epoch is fast-forwarded instead. The next rotation
        // would wrap the epoch to 0 and reuse key material, so it must fail.
        (SecureChannel party, SecureChannel device) = Pair(new SecureChannelOptions { MaxRecordsPerKey = 1 });
        using (party)
        using (device)
        {
            SetCounter(party, "_send", "Epoch", uint.MaxValue);
            Assert.That(party.SendEpoch, Is.EqualTo(uint.MaxValue));
            party.Seal(RecordType.Application, "last record under the last key"u8);
            Assert.Throws<MalformedRecordException>(() => party.Seal(RecordType.Application, "would need epoch 2^32"u8));
            Assert.That(party.SendEpoch, Is.EqualTo(uint.MaxValue), "no wrap to epoch 0");
        }
    }

    [Test]
    public void ReceiverRejectsASenderThatDoesNotRotateAfterTheByteLimit()
    {
        (SecureChannel party, SecureChannel device) = Pair(new SecureChannelOptions { MaxBytesPerKey = 1L << 20 }, new SecureChannelOptions { MaxBytesPerKey = 1000 });
        using (party)
        using (device)
        {
            byte[] payload = new byte[500];
            device.Open(party.Seal(RecordType.Application, payload), RecordType.Application);
            device.Open(party.Seal(RecordType.Application, payload), RecordType.Application);
            Assert.Throws<MalformedRecordException>(() => device.Open(party.Seal(RecordType.Application, payload), RecordType.Application));
        }
    }

    [Test]
    public void LimitsOutOfRangeAndOverflowingSizesAreRefused()
    {
        byte[] secret = new byte[48];
        Assert.Throws<ArgumentOutOfRangeException>(() => new SecureChannel(ChannelRole.DataOwner, secret, secret, new SecureChannelOptions { MaxRecordsPerKey = 0 }).Dispose());
        Assert.Throws<ArgumentOutOfRangeException>(() => new SecureChannel(ChannelRole.DataOwner, secret, secret, new SecureChannelOptions { MaxBytesPerKey = 0 }).Dispose());
        Assert.Throws<OverflowException>(() => SecureChannel.RecordSize(int.MaxValue - SecureChannel.Overhead + 1));
        Assert.That(SecureChannel.RecordSize(int.MaxValue - SecureChannel.Overhead), Is.EqualTo(int.MaxValue));
    }

    [Test]
    public void RecordShorterThanItsFramingIsMalformed()
    {
        Assert.Throws<MalformedRecordException>(() => SecureChannel.PeekPlaintextLength(new byte[SecureChannel.Overhead - 1]));
        Assert.Throws<MalformedRecordException>(() => SecureChannel.PeekPlaintextLength(new byte[10]), "shorter than the header, where the length field would be");
        (SecureChannel party, SecureChannel device) = Pair();
        using (party)
        using (device)
        {
            byte[] record = party.Seal(RecordType.Application, "x"u8);
            Assert.Throws<MalformedRecordException>(() => device.Open(record.AsSpan(0, 10), RecordType.Application));
            Assert.Throws<ChannelClosedException>(() => device.Open(record, RecordType.Application));
            Assert.Throws<ChannelClosedException>(() => device.Open(record.AsSpan(0, 10), RecordType.Application), "a closed channel says so before looking at the record");
        }
    }

    [Test]
    public void DisposeDestroysTheKeysOfBothDirections()
    {
        (SecureChannel party, SecureChannel device) = Pair();
        device.Dispose();
        party.Seal(RecordType.Application, "keys in use"u8);
        party.Dispose();
        foreach (string direction in new[] { "_send", "_receive" })
        {
            object state = typeof(SecureChannel).GetField(direction, System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!.GetValue(party)!;
            foreach (string material in new[] { "_secret", "_iv" })
            {
                byte[] bytes = (byte[])state.GetType().GetField(material, System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!.GetValue(state)!;
                Assert.That(bytes, Is.All.EqualTo(0), $"{direction}.{material} is wiped");
            }
            var aead = (AesGcm)state.GetType().GetProperty("Aead")!.GetValue(state)!;
            Assert.Throws<ObjectDisposedException>(() => aead.Encrypt(new byte[12], new byte[1], new byte[1], new byte[16]), $"{direction}'s AES-GCM key is released");
        }
    }

    private static void SetCounter(SecureChannel channel, string direction, string counter, object value)
    {
        object state = typeof(SecureChannel).GetField(direction, System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!.GetValue(channel)!;
        state.GetType().GetProperty(counter)!.SetValue(state, value);
    }

    private static (SecureChannel Party, SecureChannel Device) Pair(SecureChannelOptions? partyOptions = null, SecureChannelOptions? deviceOptions = null)
    {
        byte[] toDevice = RandomNumberGenerator.GetBytes(48);
        byte[] toParty = RandomNumberGenerator.GetBytes(48);
        return (new SecureChannel(ChannelRole.DataOwner, toDevice, toParty, partyOptions ?? SecureChannelOptions.Default),
                new SecureChannel(ChannelRole.DataOwner, toParty, toDevice, deviceOptions ?? partyOptions ?? SecureChannelOptions.Default));
    }

    private static byte[] ExpectedRecord(byte[] secret, RecordType type, uint epoch, ulong sequence, byte[] plaintext)
    {
        byte[] key = HKDF.Expand(HashAlgorithmName.SHA384, secret, 32, "AscendCC channel v1 key"u8.ToArray());
        byte[] nonce = HKDF.Expand(HashAlgorithmName.SHA384, secret, 12, "AscendCC channel v1 iv"u8.ToArray());
        for (int i = 0; i < 8; i++)
        {
            nonce[4 + i] ^= (byte)(sequence >> (56 - (8 * i)));
        }
        byte[] record = new byte[SecureChannel.Overhead + plaintext.Length];
        record[0] = 0xAC;
        record[1] = 0xC1;
        record[2] = 1;
        record[3] = (byte)type;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(record.AsSpan(4), epoch);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(record.AsSpan(8), sequence);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(record.AsSpan(16), (uint)plaintext.Length);
        using var aes = new AesGcm(key, SecureChannel.TagSize);
        aes.Encrypt(nonce, plaintext, record.AsSpan(SecureChannel.HeaderSize, plaintext.Length), record.AsSpan(SecureChannel.HeaderSize + plaintext.Length), record.AsSpan(0, SecureChannel.HeaderSize));
        return record;
    }

    private (SecureChannel Party, SecureChannel Device) Connect(ChannelRole role, SecureChannelOptions? partyOptions = null, SecureChannelOptions? deviceOptions = null)
    {
        using EmulatedDevice device = _world.Device();
        return Connect(device, role, partyOptions, deviceOptions ?? partyOptions);
    }

    private static (SecureChannel Party, SecureChannel Device) Connect(EmulatedDevice device, ChannelRole role, SecureChannelOptions? partyOptions = null, SecureChannelOptions? deviceOptions = null)
    {
        byte[] nonce = RandomNumberGenerator.GetBytes(32);
        AttestationReport report = AttestationReport.Parse(DeviceHello.Parse(device.CreateHello(nonce)).Report.Span);
        using var initiator = ChannelInitiator.Start(role, report, partyOptions);
        SecureChannel deviceEnd = device.Accept(initiator.OpenMessage.Span, out byte[] accept, deviceOptions);
        return (initiator.Complete(accept), deviceEnd);
    }
}
