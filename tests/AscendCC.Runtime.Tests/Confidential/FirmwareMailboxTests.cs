using System.Buffers.Binary;
using AscendCC.Attacks;
using AscendCC.Device;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Confidential;

/// <summary>
/// The confidential firmware's mailbox as a malicious host drives it with raw requests: every
/// malformed request is a BadRequest that says what the command needs, the shortest well-formed
/// request of each command is not mistaken for a malformed one, the status reports the booted
/// firmware, and the CC mode cannot change without a reset (found by the firmware's mutation run:
/// none of this was tested).
/// </summary>
public class FirmwareMailboxTests
{
    private static (MailboxStatus Status, byte[] Payload, string Text) Raw(Testbed bed, ushort command, params byte[] payload)
    {
        var request = new byte[4 + payload.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(request, command);
        payload.CopyTo(request, 4);
        byte[] reply = bed.Mailbox.Raw(request);
        var status = (MailboxStatus)BinaryPrimitives.ReadUInt16LittleEndian(reply);
        (MailboxStatus s, byte[] p, string t) = bed.Attacker.Mailbox((MailboxCommand)command, payload);
        Assert.That(s, Is.EqualTo(status), "the raw and the typed mailbox agree");
        return (s, p, t);
    }

    [Test]
    public void AMalformedRequestIsABadRequestThatSaysWhatTheCommandNeeds()
    {
        using var bed = Testbed.CreateTiny();
        byte[] shortHeader = bed.Mailbox.Raw([1, 0, 0]);
        Assert.That((MailboxStatus)BinaryPrimitives.ReadUInt16LittleEndian(shortHeader), Is.EqualTo(MailboxStatus.BadRequest));
        Assert.That(System.Text.Encoding.UTF8.GetString(shortHeader), Does.Contain("a mailbox request has a 4-byte header"));

        (MailboxStatus Status, string Text)[] cases =
        [
            Pick(Raw(bed, 0xFFFF)),
            Pick(Raw(bed, (ushort)MailboxCommand.ReleaseModelKey, 1, 0, 0)),
            Pick(Raw(bed, (ushort)MailboxCommand.ClosePackage, 1, 0, 0, 0)),
            Pick(Raw(bed, (ushort)MailboxCommand.CloseSession, 1, 0, 0)),
            Pick(Raw(bed, (ushort)MailboxCommand.SetCcMode, 1, 1)),
            Pick(Raw(bed, (ushort)MailboxCommand.SetCcMode, 9)),
            Pick(Raw(bed, (ushort)MailboxCommand.OpenPackage, new byte[16])),
            Pick(Raw(bed, (ushort)MailboxCommand.OpenPackage, new byte[17])),
        ];
        string[] expected =
        [
            "unknown mailbox command 65535",
            "ReleaseModelKey needs a u32 session before the record",
            "ClosePackage needs the u32 handle of an open package",
            "CloseSession needs a u32 session",
            "SetCcMode needs one mode byte (0 off, 1 on, 2 devtools)",
            "SetCcMode needs one mode byte (0 off, 1 on, 2 devtools)",
            "OpenPackage needs u64 address, u64 length and the manifest digest",
            // 17 bytes is the shortest OpenPackage; this one names no staged package.
            "the package must be staged inside one InputStaging region",
        ];
        Assert.Multiple(() =>
        {
            for (int i = 0; i < cases.Length; i++)
            {
                Assert.That(cases[i].Status, Is.EqualTo(MailboxStatus.BadRequest), expected[i]);
                Assert.That(cases[i].Text, Does.Contain(expected[i]));
            }
        });

        // The shortest ReleaseModelKey (a session and an empty record) is parsed, then refused by the
        // engine for what it is: no session 7 exists.
        (MailboxStatus status, _, string text) = Raw(bed, (ushort)MailboxCommand.ReleaseModelKey, 7, 0, 0, 0);
        Assert.That(text, Does.Not.Contain("needs a u32 session"));
        Assert.That(status, Is.Not.EqualTo(MailboxStatus.Ok));
    }

    [Test]
    public void TheStatusReportsTheBootedFirmwareAndTheModeCannotChangeWithoutAReset()
    {
        using var bed = Testbed.CreateTiny();
        (MailboxStatus status, byte[] s, _) = Raw(bed, (ushort)MailboxCommand.GetStatus);
        Assert.That(status, Is.EqualTo(MailboxStatus.Ok));
        Assert.That(s, Has.Length.EqualTo(11));
        Assert.That(s[0], Is.EqualTo(1), "state: booted (the device's internal enum: 0 reset, 1 booted, 2 boot failed)");
        Assert.That(s[1], Is.EqualTo((byte)Protocol.Attestation.CcMode.On));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(s.AsSpan(3)), Is.EqualTo(bed.Firmware.Version));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(s.AsSpan(7)), Is.EqualTo(bed.Firmware.SecurityVersion));

        Assert.That(Raw(bed, (ushort)MailboxCommand.SetCcMode, (byte)Protocol.Attestation.CcMode.On).Status, Is.EqualTo(MailboxStatus.Ok), "the mode it runs in");
        (status, _, string text) = Raw(bed, (ushort)MailboxCommand.SetCcMode, (byte)Protocol.Attestation.CcMode.Off);
        Assert.That(status, Is.EqualTo(MailboxStatus.Refused));
        Assert.That(text, Does.Contain("R5: changing CC mode from On to Off requires a device reset"));
    }

    [Test]
    public void ARequestTheEngineRefusesSaysWhetherTheDeviceIsBooted()
    {
        using var bed = Testbed.CreateTiny();
        // Booted: a key release into a session that does not exist is refused by the engine.
        Assert.That(Raw(bed, (ushort)MailboxCommand.ReleaseModelKey, 7, 0, 0, 0).Status, Is.EqualTo(MailboxStatus.Refused));
        // A channel record that does not parse is a bad request, not an engine refusal or a crash.
        (MailboxStatus garbled, _, string text) = Raw(bed, (ushort)MailboxCommand.AcceptChannel, 1, 2, 3);
        Assert.That(garbled, Is.EqualTo(MailboxStatus.BadRequest), text);
        (MailboxStatus shortNonce, _, text) = Raw(bed, (ushort)MailboxCommand.GetHello, 1, 2, 3);
        Assert.That(shortNonce, Is.EqualTo(MailboxStatus.BadRequest), text);
        Assert.That(text, Does.Contain("The verifier nonce is 32 bytes."));

        // A reset with firmware the boot ROM refuses leaves the device unbooted: the same requests say so.
        byte[] tampered = [.. bed.SignedFirmware];
        tampered[^1] ^= 0x01;
        Assert.That(bed.Device.Reset(new DeviceBootOptions(tampered, Protocol.Attestation.CcMode.On)).Status, Is.Not.EqualTo(MailboxStatus.Ok));
        Assert.That(Raw(bed, (ushort)MailboxCommand.GetHello, new byte[32]).Status, Is.EqualTo(MailboxStatus.NotBooted));
        Assert.That(Raw(bed, (ushort)MailboxCommand.ReleaseModelKey, 7, 0, 0, 0).Status, Is.EqualTo(MailboxStatus.NotBooted));
        (MailboxStatus status, byte[] s, _) = Raw(bed, (ushort)MailboxCommand.GetStatus);
        Assert.That(status, Is.EqualTo(MailboxStatus.Ok));
        Assert.That(s[0], Is.Not.EqualTo(1), "not booted");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(s.AsSpan(3)), Is.Zero, "no firmware version while unbooted");
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(s.AsSpan(7)), Is.Zero, "no security version while unbooted");
    }

    private static (MailboxStatus, string) Pick((MailboxStatus Status, byte[] Payload, string Text) r) => (r.Status, r.Text);
}
