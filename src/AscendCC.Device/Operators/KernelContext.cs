using System.Runtime.CompilerServices;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Operators;

/// <summary>A resolved buffer argument: where its bytes are and how many the kernel may touch.</summary>
internal readonly unsafe struct ResolvedArgument
{
    public ResolvedArgument(byte* data, long bytes, Hbm.HbmRegion? region)
    {
        Data = data;
        Bytes = bytes;
        Region = region;
    }

    public byte* Data { get; }

    public long Bytes { get; }

    /// <summary>The region the buffer lies in (for the firmware's confidential operators).</summary>
    public Hbm.HbmRegion? Region { get; }
}

/// <summary>
/// What a kernel sees of one launch: its buffers (already translated and bounds-checked against
/// their HBM regions by the scheduler), its scalars (immediate or read from HBM), and the AI Cores.
/// </summary>
internal unsafe ref struct KernelContext
{
    private readonly IOperator _op;
    private readonly ReadOnlySpan<ResolvedArgument> _args;
    private readonly ReadOnlySpan<long> _scalars;

    public KernelContext(IOperator op, AiCoreGrid grid, ReadOnlySpan<ResolvedArgument> args, ReadOnlySpan<long> scalars, Confidential.ConfidentialFirmware? firmware)
    {
        _op = op;
        Grid = grid;
        _args = args;
        _scalars = scalars;
        Firmware = firmware;
    }

    public AiCoreGrid Grid { get; }

    /// <summary>The confidential-computing firmware, for the AI CPU operators that need its keys; null when absent.</summary>
    public Confidential.ConfidentialFirmware? Firmware { get; }

    /// <summary>The region buffer <paramref name="i"/> lies in.</summary>
    public readonly Hbm.HbmRegion? RegionOf(int i) => _args[i].Region;

    /// <summary>True when buffer <paramref name="i"/> is exactly its whole region, from first byte to last.</summary>
    public readonly bool IsWholeRegion(int i) => _args[i].Region is { } r && _args[i].Data == r.Data && _args[i].Bytes == r.Size;

    /// <summary>True when buffer <paramref name="i"/> is the absent optional operand.</summary>
    public readonly bool IsNone(int i) => _args[i].Bytes == 0;

    /// <summary>Buffer <paramref name="i"/> as <paramref name="count"/> elements of <typeparamref name="T"/>.</summary>
    public readonly Span<T> Buffer<T>(int i, long count) where T : unmanaged
    {
        long need = checked(count * sizeof(T));
        ResolvedArgument a = _args[i];
        if (count < 0 || need > a.Bytes || need > int.MaxValue)
        {
            throw new KernelArgumentException($"{_op.Name}: buffer '{_op.ArgumentNames[i]}' holds {a.Bytes} bytes, the kernel needs {need}");
        }
        return new Span<T>(a.Data, (int)count);
    }

    /// <summary>All of buffer <paramref name="i"/> as bytes.</summary>
    public readonly Span<byte> Bytes(int i)
    {
        ResolvedArgument a = _args[i];
        if (a.Bytes > int.MaxValue)
        {
            throw new KernelArgumentException($"{_op.Name}: buffer '{_op.ArgumentNames[i]}' exceeds 2 GiB");
        }
        return new Span<byte>(a.Data, (int)a.Bytes);
    }

    /// <summary>Scalar <paramref name="i"/> as an integer in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public readonly int Int(int i, string name, int min = 0, int max = int.MaxValue)
    {
        long v = _scalars[i];
        if (v < min || v > max)
        {
            throw new KernelArgumentException($"{_op.Name}: scalar '{name}' = {v} is outside [{min}, {max}]");
        }
        return (int)v;
    }

    /// <summary>Scalar <paramref name="i"/> as a floating-point value (it travels as a double's bits).</summary>
    public readonly float Float(int i, string name)
    {
        double v = BitConverter.Int64BitsToDouble(_scalars[i]);
        if (!double.IsFinite(v))
        {
            throw new KernelArgumentException($"{_op.Name}: scalar '{name}' is not finite");
        }
        return (float)v;
    }

    /// <summary>Scalar <paramref name="i"/> as a finite double (for parameters float32 would round).</summary>
    public readonly double Double(int i, string name)
    {
        double v = BitConverter.Int64BitsToDouble(_scalars[i]);
        if (!double.IsFinite(v))
        {
            throw new KernelArgumentException($"{_op.Name}: scalar '{name}' is not finite");
        }
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly long Raw(int i) => _scalars[i];
}
