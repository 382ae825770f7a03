using System.Buffers.Binary;

namespace AscendCC.Protocol.Messages;

/// <summary>
/// One generated token, always encoded to exactly <see cref="EncodedSize"/> bytes so every token record
/// has the same size and the relay cannot infer token or text lengths.
/// Plaintext: magic "ACCTOK01", position u32, token id i32, flags u8 (bit 0: end of sequence), zero padding.
/// </summary>
public readonly record struct TokenMessage(int Position, int TokenId, bool EndOfSequence)
{
    /// <summary>Fixed plaintext size.</summary>
    public const int EncodedSize = 64;

    private static ReadOnlySpan<byte> Magic => "ACCTOK01"u8;

    /// <summary>Encodes into exactly <see cref="EncodedSize"/> bytes of <paramref name="destination"/>.</summary>
    public void Encode(Span<byte> destination)
    {
        if (Position < 0)
        {
            throw new InvalidOperationException("Token position is negative.");
        }
        Span<byte> d = destination[..EncodedSize];
        d.Clear();
        Magic.CopyTo(d);
        BinaryPrimitives.WriteUInt32BigEndian(d.Slice(8), (uint)Position);
        BinaryPrimitives.WriteInt32BigEndian(d.Slice(12), TokenId);
        d[16] = EndOfSequence ? (byte)1 : (byte)0;
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
        if (flags > 1 || plaintext.Slice(17).ContainsAnyExcept((byte)0))
        {
            throw new ProtocolFormatException("token message", "flags/padding", "holds unknown bits");
        }
        return new TokenMessage((int)position, BinaryPrimitives.ReadInt32BigEndian(plaintext.Slice(12)), flags == 1);
    }
}
