using AscendCC.Device;
using AscendCC.Device.Operators;
using AscendCC.Protocol.Measurements;

namespace AscendCC.Runtime.Programs;

/// <summary>
/// A buffer of a device program, before it has an address: what it holds (tag), which package item
/// it is (weights, by tensor name) and its size. The model provider measures programs in these
/// terms; the runtime gives each buffer an HBM region when it binds the program to a device.
/// </summary>
/// <param name="Id">Position in the program's buffer list.</param>
/// <param name="Tag">What the region holds.</param>
/// <param name="Name">Package item name for weights; a descriptive name otherwise (not measured).</param>
/// <param name="Bytes">Size.</param>
public sealed record ProgramBuffer(int Id, RegionTag Tag, string Name, long Bytes)
{
    /// <summary>True when the buffer is filled from a package item (its name is part of the measurement).</summary>
    public bool IsPackageItem => Tag == RegionTag.Weights;
}

/// <summary>A buffer argument: a range of a program buffer, or none.</summary>
/// <param name="Buffer">The buffer (null for an absent optional operand).</param>
/// <param name="Offset">Byte offset into the buffer.</param>
/// <param name="Bytes">Extent.</param>
public readonly record struct BufferRef(ProgramBuffer? Buffer, long Offset, long Bytes)
{
    /// <summary>The absent optional operand.</summary>
    public static BufferRef None => default;

    /// <summary>All of <paramref name="buffer"/>.</summary>
    public static implicit operator BufferRef(ProgramBuffer buffer) => new(buffer, 0, buffer?.Bytes ?? 0);
}

/// <summary>A scalar argument: an immediate value, or 8 bytes of a program buffer read at launch.</summary>
/// <param name="Value">The immediate value (integers as Int64, floats as a double's bits).</param>
/// <param name="Buffer">The buffer to read from, or null for an immediate.</param>
/// <param name="Offset">Byte offset into <paramref name="Buffer"/>.</param>
public readonly record struct ScalarRef(ulong Value, ProgramBuffer? Buffer, long Offset)
{
    /// <summary>An immediate integer.</summary>
    public static ScalarRef Of(long value) => new(unchecked((ulong)value), null, 0);

    /// <summary>An immediate floating-point value.</summary>
    public static ScalarRef Of(double value) => new(unchecked((ulong)BitConverter.DoubleToInt64Bits(value)), null, 0);

    /// <summary>Slot <paramref name="slot"/> (8 bytes each) of a parameter buffer.</summary>
    public static ScalarRef Slot(ProgramBuffer buffer, int slot) => new(0, buffer, slot * 8L);
}

/// <summary>One operator launch of a program.</summary>
/// <param name="Operator">Operator name in the device's catalog.</param>
/// <param name="Args">Buffer arguments.</param>
/// <param name="Scalars">Scalar arguments.</param>
public sealed record ProgramOp(string Operator, BufferRef[] Args, ScalarRef[] Scalars);

/// <summary>
/// A device program: buffers and operator launches in order. Run eagerly (each launch alone:
/// compileAndExecute) or loaded once as a model's task list (executeModel). Its
/// <see cref="Measure(ReadOnlySpan{byte})"/> is the value task attestation compares on the device.
/// </summary>
public sealed class DeviceProgram
{
    private readonly List<ProgramBuffer> _buffers = new();
    private readonly List<ProgramOp> _ops = new();

    /// <summary>The buffers, by id.</summary>
    public IReadOnlyList<ProgramBuffer> Buffers => _buffers;

    /// <summary>The launches, in order.</summary>
    public IReadOnlyList<ProgramOp> Ops => _ops;

    /// <summary>Declares a buffer.</summary>
    public ProgramBuffer Buffer(RegionTag tag, string name, long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1);
        var b = new ProgramBuffer(_buffers.Count, tag, name, bytes);
        _buffers.Add(b);
        return b;
    }

    /// <summary>Appends a launch.</summary>
    public void Launch(string op, BufferRef[] args, params ScalarRef[] scalars)
    {
        ArgumentNullException.ThrowIfNull(args);
        _ops.Add(new ProgramOp(op, args, scalars));
    }

    /// <summary>
    /// The measurement of a program whose weights come from no package (CC off, where nothing checks
    /// it): <see cref="Measure(ReadOnlySpan{byte})"/> with an empty package identity.
    /// </summary>
    public byte[] Measure() => Measure(default);

    /// <summary>
    /// The canonical graph measurement of this program's task list (see <see cref="GraphMeasurement"/>):
    /// what the model provider signs as the expected measurement and the device recomputes. Weights are
    /// measured as items of the package <paramref name="package"/> names (its
    /// <see cref="Protocol.Packaging.PackageIdentity"/>), so the value covers this provider's weights only.
    /// </summary>
    public byte[] Measure(ReadOnlySpan<byte> package)
    {
        using var m = new GraphMeasurement();
        foreach (ProgramOp op in _ops)
        {
            m.BeginTask((ushort)TaskKind.KernelLaunch);
            m.Operator(OperatorCatalog.GetDigest(op.Operator));
            foreach (BufferRef a in op.Args)
            {
                if (a.Buffer is null)
                {
                    m.NoBuffer();
                }
                else
                {
                    m.Buffer((ulong)a.Buffer.Id, (ushort)a.Buffer.Tag, package, a.Buffer.IsPackageItem ? a.Buffer.Name : null, a.Buffer.Bytes, a.Offset, a.Bytes);
                }
            }
            foreach (ScalarRef s in op.Scalars)
            {
                if (s.Buffer is null)
                {
                    m.Immediate(s.Value);
                }
                else
                {
                    m.Indirect((ulong)s.Buffer.Id, (ushort)s.Buffer.Tag, package, s.Buffer.IsPackageItem ? s.Buffer.Name : null, s.Buffer.Bytes, s.Offset);
                }
            }
            m.EndTask();
        }
        return m.Finish();
    }
}
