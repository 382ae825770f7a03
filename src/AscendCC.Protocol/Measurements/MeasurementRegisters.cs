using System.Security.Cryptography;

namespace AscendCC.Protocol.Measurements;

/// <summary>
/// A bank of SHA-384 measurement registers with PCR-style extend semantics:
/// <c>R := SHA-384(R || SHA-384(event))</c>. A register can only be extended, never set, so the final
/// value commits to every event and its order; registers start at all zeros at reset.
/// </summary>
public sealed class MeasurementRegisters
{
    private readonly byte[] _values = new byte[MeasurementSet.RegisterCount * MeasurementSet.RegisterSize];

    /// <summary>Extends <paramref name="id"/> with the SHA-384 digest of <paramref name="eventData"/>.</summary>
    public void Extend(MeasurementRegisterId id, ReadOnlySpan<byte> eventData)
    {
        Span<byte> digest = stackalloc byte[MeasurementSet.RegisterSize];
        SHA384.HashData(eventData, digest);
        ExtendDigest(id, digest);
    }

    /// <summary>Extends <paramref name="id"/> with an already computed SHA-384 event digest.</summary>
    public void ExtendDigest(MeasurementRegisterId id, ReadOnlySpan<byte> eventDigest)
    {
        if (eventDigest.Length != MeasurementSet.RegisterSize)
        {
            throw new ArgumentException("An event digest is a 48-byte SHA-384 value.", nameof(eventDigest));
        }
        Span<byte> register = Slot(id);
        Span<byte> input = stackalloc byte[2 * MeasurementSet.RegisterSize];
        register.CopyTo(input);
        eventDigest.CopyTo(input.Slice(MeasurementSet.RegisterSize));
        SHA384.HashData(input, register);
    }

    /// <summary>Clears every register (device reset).</summary>
    public void Reset() => Array.Clear(_values);

    /// <summary>An immutable copy of the current values.</summary>
    public MeasurementSet Snapshot() => new(_values);

    /// <summary>
    /// The value a fresh register holds after extending it once with <paramref name="eventDigest"/>:
    /// what verifiers and the manufacturer compute to predict a register.
    /// </summary>
    public static byte[] ExpectedAfterSingleExtend(ReadOnlySpan<byte> eventDigest)
    {
        var bank = new MeasurementRegisters();
        bank.ExtendDigest(MeasurementRegisterId.Firmware, eventDigest);
        return bank.Snapshot()[MeasurementRegisterId.Firmware].ToArray();
    }

    private Span<byte> Slot(MeasurementRegisterId id) =>
        (uint)id < MeasurementSet.RegisterCount
            ? _values.AsSpan((int)id * MeasurementSet.RegisterSize, MeasurementSet.RegisterSize)
            : throw new ArgumentOutOfRangeException(nameof(id));
}
