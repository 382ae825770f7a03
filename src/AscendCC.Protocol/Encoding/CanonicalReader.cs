using System.Buffers.Binary;
using System.Text;

namespace AscendCC.Protocol.Encoding;

/// <summary>
/// Reads the canonical encoding written by <see cref="CanonicalWriter"/>. Every read checks the
/// remaining length first and every failure names the message and field, so malformed input from the
/// untrusted host always ends in a <see cref="ProtocolFormatException"/>, never an
/// <see cref="IndexOutOfRangeException"/> or a partially parsed object.
/// </summary>
internal ref struct CanonicalReader
{
    /// <summary>UTF-8 that throws on invalid sequences instead of substituting U+FFFD (so two byte strings never decode to one name).</summary>
    internal static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly ReadOnlySpan<byte> _data;
    private readonly string _messageType;
    private int _position;

    public CanonicalReader(ReadOnlySpan<byte> data, string messageType)
    {
        _data = data;
        _messageType = messageType;
        _position = 0;
    }

    public readonly int Position => _position;

    public readonly int Remaining => _data.Length - _position;

    /// <summary>The bytes consumed so far (e.g. the to-be-signed part before a signature).</summary>
    public readonly ReadOnlySpan<byte> Consumed => _data[.._position];

    public byte ReadByte(string field) => Take(1, field)[0];

    public ushort ReadUInt16(string field) => BinaryPrimitives.ReadUInt16BigEndian(Take(2, field));

    public uint ReadUInt32(string field) => BinaryPrimitives.ReadUInt32BigEndian(Take(4, field));

    public ulong ReadUInt64(string field) => BinaryPrimitives.ReadUInt64BigEndian(Take(8, field));

    public long ReadInt64(string field) => unchecked((long)ReadUInt64(field));

    public ReadOnlySpan<byte> ReadFixed(int length, string field) => Take(length, field);

    /// <summary>Reads a u32-prefixed byte string no longer than <paramref name="maxLength"/>.</summary>
    public ReadOnlySpan<byte> ReadVariable(int maxLength, string field)
    {
        uint length = ReadUInt32(field + ".length");
        if (length > (uint)maxLength)
        {
            throw Fail(field, $"declares {length} bytes, more than the limit of {maxLength}");
        }
        return Take((int)length, field);
    }

    /// <summary>Reads a u16-prefixed strict UTF-8 string no longer than <paramref name="maxBytes"/>.</summary>
    public string ReadString(int maxBytes, string field)
    {
        ushort length = ReadUInt16(field + ".length");
        if (length > maxBytes)
        {
            throw Fail(field, $"declares {length} bytes, more than the limit of {maxBytes}");
        }
        ReadOnlySpan<byte> bytes = Take(length, field);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Fail(field, "is not valid UTF-8");
        }
    }

    /// <summary>Reads a byte and checks it names a defined enum member.</summary>
    public TEnum ReadEnum<TEnum>(string field)
        where TEnum : struct, Enum
    {
        byte raw = ReadByte(field);
        TEnum value = (TEnum)Enum.ToObject(typeof(TEnum), raw);
        if (!Enum.IsDefined(value))
        {
            throw Fail(field, $"has undefined value {raw}");
        }
        return value;
    }

    /// <summary>Reads and compares a fixed magic/version tag.</summary>
    public void ExpectMagic(ReadOnlySpan<byte> magic, string field)
    {
        if (!Take(magic.Length, field).SequenceEqual(magic))
        {
            throw Fail(field, "does not hold the expected magic and version");
        }
    }

    /// <summary>Fails if anything follows the message: trailing bytes would let two encodings share a meaning.</summary>
    public readonly void ExpectEnd()
    {
        if (_position != _data.Length)
        {
            throw Fail("(end)", $"is followed by {_data.Length - _position} unexpected trailing bytes");
        }
    }

    public readonly ProtocolFormatException Fail(string field, string problem) => new(_messageType, field, problem);

    private ReadOnlySpan<byte> Take(int length, string field)
    {
        if (length < 0 || _data.Length - _position < length)
        {
            throw Fail(field, $"is truncated (needs {length} bytes, {_data.Length - _position} left)");
        }
        ReadOnlySpan<byte> slice = _data.Slice(_position, length);
        _position += length;
        return slice;
    }
}
