using AscendCC.Protocol;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Messages;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Trusted;

[TestFixture]
public sealed class MessageFormatTests
{
    private static readonly int[] Tokens = [5, 6, 7];

    [Test]
    public void PromptPaddingMustBeZeroAndMatchTheBucket()
    {
        byte[] encoded = PromptMessage.Encode(Tokens);
        Assert.That(PromptMessage.Decode(encoded), Is.EqualTo(Tokens));
        byte[] dirty = (byte[])encoded.Clone();
        dirty[^1] = 1;
        Assert.That(Assert.Throws<ProtocolFormatException>(() => PromptMessage.Decode(dirty))!.Field, Is.EqualTo("padding"));
        Assert.Throws<ProtocolFormatException>(() => PromptMessage.Decode(encoded.AsSpan(0, encoded.Length - 4)));
    }

    [Test]
    public void TokenMessagesAreExactlyFixedSize()
    {
        byte[] buffer = new byte[TokenMessage.EncodedSize];
        new TokenMessage(3, -1, true).Encode(buffer);
        Assert.That(TokenMessage.Decode(buffer), Is.EqualTo(new TokenMessage(3, -1, true)));
        Assert.Throws<ProtocolFormatException>(() => TokenMessage.Decode(buffer.AsSpan(0, 63)));
        buffer[40] = 1;
        Assert.Throws<ProtocolFormatException>(() => TokenMessage.Decode(buffer));
    }

    [Test]
    public void HandshakeMessagesRejectMalformedInput()
    {
        var open = new ChannelOpen(ChannelRole.DataOwner, new byte[48], new byte[KeyShare.Size]);
        byte[] encoded = open.Encode();
        Assert.Throws<ProtocolFormatException>(() => ChannelOpen.Parse(encoded.AsSpan(0, encoded.Length - 1)));
        encoded[8] = 7;
        Assert.That(Assert.Throws<ProtocolFormatException>(() => ChannelOpen.Parse(encoded))!.Field, Is.EqualTo("role"));
        Assert.Throws<ProtocolFormatException>(() => KeyShare.Import(new byte[KeyShare.Size]));
        byte[] offCurve = new byte[KeyShare.Size];
        offCurve[0] = 4;
        offCurve[^1] = 1;
        Assert.Throws<ProtocolFormatException>(() => KeyShare.Import(offCurve));
        Assert.Throws<ProtocolFormatException>(() => DeviceHello.Parse("ACCHLO01\xff\xff\xff\xff"u8));
    }

    [Test]
    public void FirmwareImageEncodingIsStrict()
    {
        byte[] encoded = new FirmwareImage(1, 2, "Vendor", "payload"u8).Encode();
        FirmwareImage decoded = FirmwareImage.Decode(encoded);
        Assert.That((decoded.Version, decoded.SecurityVersion, decoded.Vendor), Is.EqualTo((1u, 2u, "Vendor")));
        Assert.Throws<ProtocolFormatException>(() => FirmwareImage.Decode([.. encoded, 0]));
        Assert.Throws<ProtocolFormatException>(() => FirmwareImage.Decode(encoded.AsSpan(0, 20)));
    }
}
