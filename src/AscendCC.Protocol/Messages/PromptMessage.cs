using System.Buffers.Binary;
using System.Numerics;
using AscendCC.Protocol.Encoding;

namespace AscendCC.Protocol.Messages;

/// <summary>
/// The data owner's prompt as token ids, padded to a power-of-two bucket of at least
/// <see cref="MinimumBucket"/> tokens so the relay learns only the bucket, not the prompt length.
/// Plaintext: magic "ACCPRM01", token count u32, bucket u32, bucket × i32 (unused slots zero).
/// Sent as a <see cref="Channels.RecordType.Prompt"/> record on the data owner's channel.
/// </summary>
public static class PromptMessage
{
    /// <summary>Smallest padded size, in tokens.</summary>
    public const int MinimumBucket = 256;

    /// <summary>Largest prompt, in tokens.</summary>
    public const int MaxTokens = 1 << 20;

    private static ReadOnlySpan<byte> Magic => "ACCPRM01"u8;

    /// <summary>The padded token count for a prompt of <paramref name="tokenCount"/> tokens.</summary>
    public static int BucketFor(int tokenCount) =>
        tokenCount <= MinimumBucket ? MinimumBucket : (int)BitOperations.RoundUpToPowerOf2((uint)tokenCount);

    /// <summary>Encodes a prompt.</summary>
    public static byte[] Encode(ReadOnlySpan<int> tokens)
    {
        if (tokens.Length > MaxTokens)
        {
            throw new ArgumentException($"A prompt holds at most {MaxTokens} tokens.", nameof(tokens));
        }
        int bucket = BucketFor(tokens.Length);
        byte[] result = new byte[16 + (bucket * 4)];
        Magic.CopyTo(result);
        BinaryPrimitives.WriteUInt32BigEndian(result.AsSpan(8), (uint)tokens.Length);
        BinaryPrimitives.WriteUInt32BigEndian(result.AsSpan(12), (uint)bucket);
        for (int i = 0; i < tokens.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(result.AsSpan(16 + (i * 4)), tokens[i]);
        }
        return result;
    }

    /// <summary>Decodes a prompt, checking the bucket and that padding is zero.</summary>
    /// <exception cref="ProtocolFormatException">Malformed prompt.</exception>
    public static int[] Decode(ReadOnlySpan<byte> plaintext)
    {
        var reader = new CanonicalReader(plaintext, "prompt message");
        reader.ExpectMagic(Magic, "magic");
        uint count = reader.ReadUInt32("tokenCount");
        uint bucket = reader.ReadUInt32("bucket");
        if (count > MaxTokens || bucket != (uint)BucketFor((int)count))
        {
            throw reader.Fail("bucket", "does not match the token count's padding bucket");
        }
        int[] tokens = new int[count];
        for (int i = 0; i < count; i++)
        {
            tokens[i] = unchecked((int)reader.ReadUInt32("token"));
        }
        if (reader.ReadFixed(checked((int)(bucket - count) * 4), "padding").ContainsAnyExcept((byte)0))
        {
            throw reader.Fail("padding", "is not zero");
        }
        reader.ExpectEnd();
        return tokens;
    }
}
