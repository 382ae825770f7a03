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
