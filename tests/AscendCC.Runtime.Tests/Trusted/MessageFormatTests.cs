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
        Assert.That(PromptMessage.Decode(encoded).Tokens, Is.EqualTo(Tokens));
        byte[] dirty = (byte[])encoded.Clone();
        dirty[^1] = 1;
        Assert.That(Assert.Throws<ProtocolFormatException>(() => PromptMessage.Decode(dirty))!.Field, Is.EqualTo("padding"));
        Assert.Throws<ProtocolFormatException>(() => PromptMessage.Decode(encoded.AsSpan(0, encoded.Length - 4)));
    }

    [Test]
    public void TokenMessagesAreExactlyFixedSize()
    {
        byte[] buffer = new byte[TokenMessage.EncodedSize];
        byte[] model = Enumerable.Range(1, PromptMessage.ModelSize).Select(i => (byte)i).ToArray();
        new TokenMessage(3, -1, true) { Model = model }.Encode(buffer);
        TokenMessage decoded = TokenMessage.Decode(buffer);
        Assert.That((decoded.Position, decoded.TokenId, decoded.EndOfSequence), Is.EqualTo((3, -1, true)));
        Assert.That(decoded.Model.ToArray(), Is.EqualTo(model));
        Assert.Throws<ProtocolFormatException>(() => TokenMessage.Decode(buffer.AsSpan(0, TokenMessage.EncodedSize - 1)));
        byte[] flags = (byte[])buffer.Clone();
        flags[20] = 1;
        Assert.Throws<ProtocolFormatException>(() => TokenMessage.Decode(flags));
        buffer[^1] = 1;
        Assert.Throws<ProtocolFormatException>(() => TokenMessage.Decode(buffer));
    }

    [Test]
    public void PromptsCarryTheDataOwnersSamplingAndRequiredModel()
    {
        byte[] model = Enumerable.Range(1, PromptMessage.ModelSize).Select(i => (byte)i).ToArray();
        var sampling = new PromptSampling(0.7f, 40, 0.9f, 1234, MinP: 0.05f, RepeatPenalty: 1.1f, RepeatLastN: -1, FrequencyPenalty: 0.25f, PresencePenalty: -0.5f);
        PromptRequest request = PromptMessage.Decode(PromptMessage.Encode(Tokens, sampling, model));
        Assert.That(request.Tokens, Is.EqualTo(Tokens));
        Assert.That(request.Sampling, Is.EqualTo(sampling));
        Assert.That(request.RequiredModel.ToArray(), Is.EqualTo(model));
        Assert.That(PromptMessage.Decode(PromptMessage.Encode(Tokens)).RequiredModel.IsEmpty, "no model named: any model");
        Assert.Throws<ArgumentException>(() => PromptMessage.Encode(Tokens, sampling, model.AsSpan(1)));
        Assert.Throws<ArgumentException>(() => PromptMessage.Encode(Tokens, sampling with { TopP = 0f }, model));
        Assert.Throws<ArgumentException>(() => PromptMessage.Encode(Tokens, sampling with { Temperature = -1f }, model));
        Assert.Throws<ArgumentException>(() => PromptMessage.Encode(Tokens, sampling with { TopK = -1 }, model));
        Assert.Throws<ArgumentException>(() => PromptMessage.Encode(Tokens, sampling with { MinP = 1.5f }, model));
        Assert.Throws<ArgumentException>(() => PromptMessage.Encode(Tokens, sampling with { RepeatPenalty = 0f }, model));
        Assert.Throws<ArgumentException>(() => PromptMessage.Encode(Tokens, sampling with { RepeatLastN = -2 }, model));
        Assert.Throws<ArgumentException>(() => PromptMessage.Encode(Tokens, sampling with { FrequencyPenalty = float.NaN }, model));
        Assert.Throws<ArgumentException>(() => PromptMessage.Encode(Tokens, sampling with { PresencePenalty = float.PositiveInfinity }, model));
        // A data owner's own client could seal any bytes: the device's decoder checks every setting.
        byte[] badMinP = PromptMessage.Encode(Tokens, sampling, model);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(badMinP.AsSpan(8 + PromptMessage.ModelSize + 20), BitConverter.SingleToUInt32Bits(2f));
        Assert.That(Assert.Throws<ProtocolFormatException>(() => PromptMessage.Decode(badMinP))!.Message, Does.Contain("min-p 2"));
        byte[] badTemperature = PromptMessage.Encode(Tokens, sampling, model);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(badTemperature.AsSpan(8 + PromptMessage.ModelSize), BitConverter.SingleToUInt32Bits(float.NaN));
        Assert.That(Assert.Throws<ProtocolFormatException>(() => PromptMessage.Decode(badTemperature))!.Field, Is.EqualTo("sampling"));
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
