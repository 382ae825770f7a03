using System.Security.Cryptography;
using AscendCC.Protocol.Encoding;

namespace AscendCC.Protocol.Measurements;

/// <summary>
/// An immutable snapshot of all measurement registers (SHA-384 values), as carried in an attestation
/// report. Canonical encoding: register count (u8) then, in <see cref="MeasurementRegisterId"/> order,
/// the id (u8) and its 48-byte value.
/// </summary>
public sealed class MeasurementSet : IEquatable<MeasurementSet>
{
    /// <summary>Size of one register value: a SHA-384 digest.</summary>
    public const int RegisterSize = SHA384.HashSizeInBytes;

    /// <summary>Number of registers.</summary>
    public const int RegisterCount = 6;

    /// <summary>Size of the canonical encoding.</summary>
    public const int EncodedSize = 1 + (RegisterCount * (1 + RegisterSize));

    private readonly byte[] _values;

    internal MeasurementSet(ReadOnlySpan<byte> concatenatedValues)
    {
        if (concatenatedValues.Length != RegisterCount * RegisterSize)
        {
            throw new ArgumentException("Expected all register values.", nameof(concatenatedValues));
        }
        _values = concatenatedValues.ToArray();
    }

    /// <summary>The value of one register (a copy-free view).</summary>
    public ReadOnlySpan<byte> this[MeasurementRegisterId id] => _values.AsSpan(Index(id) * RegisterSize, RegisterSize);

    /// <summary>The register value as lowercase hex, for diagnostics.</summary>
    public string ToHex(MeasurementRegisterId id) => Convert.ToHexStringLower(this[id]);

    /// <summary>Writes the canonical encoding.</summary>
    internal void WriteTo(CanonicalWriter writer)
    {
        writer.WriteByte(RegisterCount);
        for (int i = 0; i < RegisterCount; i++)
        {
            writer.WriteByte((byte)i);
            writer.WriteFixed(_values.AsSpan(i * RegisterSize, RegisterSize));
        }
    }

    /// <summary>The canonical encoding.</summary>
    public byte[] Encode()
    {
        var writer = new CanonicalWriter(EncodedSize);
        WriteTo(writer);
        return writer.ToArray();
    }

    /// <summary>Parses the canonical encoding.</summary>
    /// <exception cref="ProtocolFormatException">The encoding is malformed.</exception>
    public static MeasurementSet Decode(ReadOnlySpan<byte> encoded)
    {
        var reader = new CanonicalReader(encoded, "measurement set");
        MeasurementSet set = ReadFrom(ref reader);
        reader.ExpectEnd();
        return set;
    }

    internal static MeasurementSet ReadFrom(ref CanonicalReader reader)
    {
        if (reader.ReadByte("registerCount") != RegisterCount)
        {
            throw reader.Fail("registerCount", $"is not {RegisterCount}");
        }
        Span<byte> values = stackalloc byte[RegisterCount * RegisterSize];
        for (int i = 0; i < RegisterCount; i++)
        {
            if (reader.ReadByte("registerId") != i)
            {
                throw reader.Fail("registerId", "is out of canonical order");
            }
            reader.ReadFixed(RegisterSize, ((MeasurementRegisterId)i).ToString()).CopyTo(values.Slice(i * RegisterSize));
        }
        return new MeasurementSet(values);
    }

    /// <inheritdoc />
    public bool Equals(MeasurementSet? other) =>
        other is not null && CryptographicOperations.FixedTimeEquals(_values, other._values);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as MeasurementSet);

    /// <inheritdoc />
    public override int GetHashCode() => BitConverter.ToInt32(_values, 0);

    private static int Index(MeasurementRegisterId id) =>
        (uint)id < RegisterCount ? (int)id : throw new ArgumentOutOfRangeException(nameof(id));
}
