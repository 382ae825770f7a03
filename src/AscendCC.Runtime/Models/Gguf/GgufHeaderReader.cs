using System.Buffers.Binary;
using System.Text;

namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// Sequential little-endian reads of a GGUF header through a buffered stream, checking every length
/// against what is left of the file so a truncated or hostile header fails with what was being read
/// instead of allocating what it claims.
/// </summary>
internal sealed class GgufHeaderReader(Stream stream, string path, long fileLength)
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly byte[] _scratch = new byte[8];

    /// <summary>What is being read, for the messages of truncation errors.</summary>
    public string Context { get; set; } = "the header";

    public long Position { get; private set; }

    public long Remaining => fileLength - Position;

    public ReadOnlySpan<byte> Read(int count)
    {
        Span<byte> buffer = _scratch.AsSpan(0, count);
        Fill(buffer);
        return buffer;
    }

    public byte U8() => Read(1)[0];
    public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Read(2));
    public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Read(4));
    public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Read(8));
    public float F32() => BinaryPrimitives.ReadSingleLittleEndian(Read(4));
    public double F64() => BinaryPrimitives.ReadDoubleLittleEndian(Read(8));

    /// <summary>A count that must fit the rest of the file at <paramref name="minBytesEach"/> bytes per item.</summary>
    public long Count(string what, long minBytesEach)
    {
        ulong n = U64();
        if (n > (ulong)Math.Max(0, Remaining) / (ulong)Math.Max(1, minBytesEach))
        {
            throw Malformed($"{what} is {n}, more than the {Remaining} bytes left in the file can hold (truncated or corrupt).");
        }
        return (long)n;
    }

    public string String()
    {
        long length = Count("a string length", 1);
        if (length > 1 << 30)
        {
            throw Malformed($"a string length {length} exceeds 1 GiB.");
        }
        var bytes = length <= 256 ? stackalloc byte[(int)length] : new byte[length];
        Fill(bytes);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw Malformed($"a string is not valid UTF-8 ({e.Message}).");
        }
    }

    public CheckpointFormatException Malformed(string problem) =>
        new(path, null, $"GGUF {Context}: {problem}", "The file is not a valid GGUF file or was cut short; download or convert it again.");

    private void Fill(Span<byte> buffer)
    {
        if (buffer.Length > Remaining)
        {
            throw new CheckpointFormatException(path, null, $"ends at byte {fileLength} inside {Context} (needs {buffer.Length} bytes at {Position}; truncated).", "Download or copy the complete file again.");
        }
        stream.ReadExactly(buffer);
        Position += buffer.Length;
    }
}
