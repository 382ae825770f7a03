using System.Buffers.Binary;

namespace AscendCC.Protocol.Messages;

/// <summary>
/// One generated token, always encoded to exactly <see cref="EncodedSize"/> bytes so every token record
/// has the same size and the relay cannot infer token or text lengths. It names the model that produced
/// it (the graph measurement the data owner's session is bound to on the device), so the data owner
/// learns, under the channel's authentication, which model answered.
/// Plaintext: magic "ACCTOK02", position u32, token id i32, flags u8 (bit 0: end of sequence), 7 zero
/// bytes, model measurement (48 bytes), zero padding to 80.
/// </summary>
/// <param name="Position">Position of the token in the session's context.</param>
/// <param name="TokenId">The token.</param>
/// <param name="EndOfSequence">Set when the token ends the sequence.</param>
public readonly record struct TokenMessage(int Position, int TokenId, bool EndOfSequence)
{
    /// <summary>Fixed plaintext size.</summary>
    public const int EncodedSize = 80;

    private const int ModelOffset = 24;

    private static ReadOnlySpan<byte> Magic => "ACCTOK02"u8;

    /// <summary>The graph measurement of the model that produced the token (48 bytes; empty when not set).</summary>
    public ReadOnlyMemory<byte> Model { get; init; }

    /// <summary>Encodes into exactly <see cref="EncodedSize"/> bytes of <paramref name="destination"/>.</summary>
    public void Encode(Span<byte> destination)
    {
        if (Position < 0)
        {
            throw new InvalidOperationException("Token position is negative.");
        }
        if (!Model.IsEmpty && Model.Length != PromptMessage.ModelSize)
        {
            throw new InvalidOperationException($"A model measurement has {PromptMessage.ModelSize} bytes, not {Model.Length}.");
        }
        Span<byte> d = destination[..EncodedSize];
        d.Clear();
        Magic.CopyTo(d);
        BinaryPrimitives.WriteUInt32BigEndian(d.Slice(8), (uint)Position);
        BinaryPrimitives.WriteInt32BigEndian(d.Slice(12), TokenId);
        d[16] = EndOfSequence ? (byte)1 : (byte)0;
        Model.Span.CopyTo(d.Slice(ModelOffset));
    }

    /// <summary>Decodes, requiring the exact size, magic, known flags and zero padding.</summary>
    /// <exception cref="ProtocolFormatException">Malformed message.</exception>
    public static TokenMessage Decode(ReadOnlySpan<byte> plaintext)
    {
        if (plaintext.Length != EncodedSize)
        {
            throw new ProtocolFormatException("token message", "(size)", $"is {plaintext.Length} bytes instead of {EncodedSize}");
        }
        if (!plaintext[..8].SequenceEqual(Magic))
        {
            throw new ProtocolFormatException("token message", "magic", "is wrong");
        }
        uint position = BinaryPrimitives.ReadUInt32BigEndian(plaintext.Slice(8));
        if (position > int.MaxValue)
        {
            throw new ProtocolFormatException("token message", "position", "is out of range");
        }
        byte flags = plaintext[16];
        if (flags > 1 || plaintext[17..ModelOffset].ContainsAnyExcept((byte)0) || plaintext[(ModelOffset + PromptMessage.ModelSize)..].ContainsAnyExcept((byte)0))
        {
            throw new ProtocolFormatException("token message", "flags/padding", "holds unknown bits");
        }
        ReadOnlySpan<byte> model = plaintext.Slice(ModelOffset, PromptMessage.ModelSize);
        return new TokenMessage((int)position, BinaryPrimitives.ReadInt32BigEndian(plaintext.Slice(12)), flags == 1)
        {
            Model = model.ContainsAnyExcept((byte)0) ? model.ToArray() : ReadOnlyMemory<byte>.Empty,
        };
    }
}
