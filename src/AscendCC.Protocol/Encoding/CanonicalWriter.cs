using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace AscendCC.Protocol.Encoding;

/// <summary>
/// Writes the project's canonical binary encoding: big-endian fixed-width integers, u32 length
/// prefixes, strict UTF-8. One value has exactly one encoding, so digests and signatures over an
/// encoding are well defined.
/// </summary>
internal sealed class CanonicalWriter
{
    private readonly ArrayBufferWriter<byte> _buffer;

    public CanonicalWriter(int initialCapacity = 256)
    {
        _buffer = new ArrayBufferWriter<byte>(initialCapacity);
    }

    public int Length => _buffer.WrittenCount;

    public ReadOnlySpan<byte> WrittenSpan => _buffer.WrittenSpan;

    public void WriteByte(byte value)
    {
        _buffer.GetSpan(1)[0] = value;
        _buffer.Advance(1);
    }

    public void WriteUInt16(ushort value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_buffer.GetSpan(2), value);
        _buffer.Advance(2);
    }

    public void WriteUInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_buffer.GetSpan(4), value);
        _buffer.Advance(4);
    }

    public void WriteUInt64(ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_buffer.GetSpan(8), value);
        _buffer.Advance(8);
    }

    public void WriteInt64(long value) => WriteUInt64(unchecked((ulong)value));

    /// <summary>Writes bytes whose length the reader knows from the format (no prefix).</summary>
    public void WriteFixed(ReadOnlySpan<byte> value) => _buffer.Write(value);

    /// <summary>Writes a u32 length prefix followed by the bytes.</summary>
    public void WriteVariable(ReadOnlySpan<byte> value)
    {
        WriteUInt32(checked((uint)value.Length));
        _buffer.Write(value);
    }

    /// <summary>Writes a UTF-8 string with a u16 length prefix.</summary>
    public void WriteString(string value)
    {
        byte[] bytes = CanonicalReader.StrictUtf8.GetBytes(value);
        WriteUInt16(checked((ushort)bytes.Length));
        _buffer.Write(bytes);
    }

    public byte[] ToArray() => _buffer.WrittenSpan.ToArray();

    /// <summary>Zeroes the written bytes (for encodings that held key material).</summary>
    public void Clear() => _buffer.Clear();
}
