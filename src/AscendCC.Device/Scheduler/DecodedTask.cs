using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace AscendCC.Device.Scheduler;

/// <summary>A task after strict decoding. Fields A–D carry the kind's fixed payload in ABI order.</summary>
internal struct DecodedTask
{
    public TaskKind Kind;
    public TaskOptions Flags;
    public ulong TaskId;
    public ulong A, B, C, D;
    public KernelArgument[]? Args;
    public KernelScalar[]? Scalars;
    public int ArgCount;
    public int ScalarCount;
}

/// <summary>
/// Strict decoder of the task ABI written by <see cref="TaskWriter"/>. Any byte sequence is accepted
/// as input: a task that does not decode yields an error text, never an exception or a partial task.
/// </summary>
internal static class TaskDecoder
{
    /// <summary>
    /// Decodes the task at the start of <paramref name="buffer"/>. Returns false with <paramref name="error"/>
    /// when the bytes are not a valid task; <paramref name="consumed"/> is then the task's declared length
    /// when that length is plausible (so the stream can skip it), or 0 when even the header is unusable.
    /// When <paramref name="ownArrays"/> is true, kernel operands go into fresh arrays the task keeps
    /// (graph mode); otherwise into the task's existing arrays, grown as needed (eager mode, allocation-free).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool TryDecode(ReadOnlySpan<byte> buffer, ref DecodedTask task, bool ownArrays, out int consumed, out string? error)
    {
        consumed = 0;
        if (buffer.Length < TaskWriter.HeaderSize)
        {
            error = $"truncated task header: {buffer.Length} bytes left, {TaskWriter.HeaderSize} needed";
            return false;
        }
        ushort kind = BinaryPrimitives.ReadUInt16LittleEndian(buffer);
        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(buffer[2..]);
        int length = BinaryPrimitives.ReadInt32LittleEndian(buffer[4..]);
        task.TaskId = BinaryPrimitives.ReadUInt64LittleEndian(buffer[8..]);
        task.Kind = (TaskKind)kind;
        task.Flags = (TaskOptions)flags;
        if (length < TaskWriter.HeaderSize || length > buffer.Length || (length & 7) != 0)
        {
            error = $"task length {length} is not a multiple of 8 between {TaskWriter.HeaderSize} and the {buffer.Length} bytes submitted";
            return false;
        }
        consumed = length;
        if ((flags & ~(ushort)TaskOptions.Notify) != 0)
        {
            error = $"unknown task flags 0x{flags:x4}";
            return false;
        }
        ReadOnlySpan<byte> p = buffer[TaskWriter.HeaderSize..length];
        int expected = task.Kind switch
        {
            TaskKind.Nop => 0,
            TaskKind.Alloc => 24,
            TaskKind.Free => 8,
            TaskKind.MemcpyHostToDevice or TaskKind.MemcpyDeviceToHost => 32,
            TaskKind.MemcpyDeviceToDevice or TaskKind.Memset => 24,
            TaskKind.LoadOperator or TaskKind.LoadModel or TaskKind.SetDmaAccess => 16,
            TaskKind.EventRecord or TaskKind.EventWait or TaskKind.EventReset or TaskKind.ExecuteModel or TaskKind.UnloadModel => 8,
            TaskKind.KernelLaunch => -1,
            _ => -2,
        };
        if (expected == -2)
        {
            error = $"unknown task kind {kind}";
            return false;
        }
        if (expected >= 0 && p.Length != expected)
        {
            error = $"{task.Kind} payload is {p.Length} bytes, expected {expected}";
            return false;
        }
        task.A = task.B = task.C = task.D = 0;
        task.ArgCount = task.ScalarCount = 0;
        switch (task.Kind)
        {
            case TaskKind.Alloc:
                task.A = BinaryPrimitives.ReadUInt64LittleEndian(p);
                task.B = BinaryPrimitives.ReadUInt64LittleEndian(p[8..]);
                task.C = BinaryPrimitives.ReadUInt16LittleEndian(p[16..]);
                break;
            case TaskKind.MemcpyHostToDevice:
            case TaskKind.MemcpyDeviceToHost:
                task.A = BinaryPrimitives.ReadUInt32LittleEndian(p);
                task.B = BinaryPrimitives.ReadUInt64LittleEndian(p[8..]);
                task.C = BinaryPrimitives.ReadUInt64LittleEndian(p[16..]);
                task.D = BinaryPrimitives.ReadUInt64LittleEndian(p[24..]);
                break;
            case TaskKind.MemcpyDeviceToDevice:
            case TaskKind.Memset:
                task.A = BinaryPrimitives.ReadUInt64LittleEndian(p);
                task.B = BinaryPrimitives.ReadUInt64LittleEndian(p[8..]);
                task.C = BinaryPrimitives.ReadUInt64LittleEndian(p[16..]);
                break;
            case TaskKind.Free:
                task.A = BinaryPrimitives.ReadUInt64LittleEndian(p);
                break;
            case TaskKind.LoadOperator:
            case TaskKind.LoadModel:
                task.A = BinaryPrimitives.ReadUInt64LittleEndian(p);
                task.B = BinaryPrimitives.ReadUInt64LittleEndian(p[8..]);
                break;
            case TaskKind.SetDmaAccess:
                task.A = BinaryPrimitives.ReadUInt64LittleEndian(p);
                task.B = BinaryPrimitives.ReadUInt32LittleEndian(p[8..]);
                if ((task.B & ~(ulong)DmaAccess.ReadWrite) != 0)
                {
                    error = $"unknown DMA access bits 0x{task.B:x}";
                    return false;
                }
                break;
            case TaskKind.EventRecord:
            case TaskKind.EventWait:
            case TaskKind.EventReset:
            case TaskKind.ExecuteModel:
            case TaskKind.UnloadModel:
                task.A = BinaryPrimitives.ReadUInt32LittleEndian(p);
                break;
            case TaskKind.KernelLaunch:
                return DecodeLaunch(p, ref task, ownArrays, out error);
        }
        error = null;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool DecodeLaunch(ReadOnlySpan<byte> p, ref DecodedTask task, bool ownArrays, out string? error)
    {
        if (p.Length < 16)
        {
            error = "KernelLaunch payload shorter than its 16-byte fixed part";
            return false;
        }
        task.A = BinaryPrimitives.ReadUInt64LittleEndian(p);
        int args = BinaryPrimitives.ReadUInt16LittleEndian(p[8..]);
        int scalars = BinaryPrimitives.ReadUInt16LittleEndian(p[10..]);
        if (args > TaskWriter.MaxKernelOperands || scalars > TaskWriter.MaxKernelOperands)
        {
            error = $"KernelLaunch with {args} buffers and {scalars} scalars exceeds {TaskWriter.MaxKernelOperands}";
            return false;
        }
        if (p.Length != 16 + (16 * (args + scalars)))
        {
            error = $"KernelLaunch payload is {p.Length} bytes, expected {16 + (16 * (args + scalars))} for {args} buffers and {scalars} scalars";
            return false;
        }
        if (ownArrays || task.Args is null || task.Args.Length < args)
        {
            task.Args = new KernelArgument[ownArrays ? args : TaskWriter.MaxKernelOperands];
        }
        if (ownArrays || task.Scalars is null || task.Scalars.Length < scalars)
        {
            task.Scalars = new KernelScalar[ownArrays ? scalars : TaskWriter.MaxKernelOperands];
        }
        int o = 16;
        for (int i = 0; i < args; i++, o += 16)
        {
            long bytes = BinaryPrimitives.ReadInt64LittleEndian(p[(o + 8)..]);
            if (bytes < 0)
            {
                error = $"KernelLaunch buffer {i} has negative extent {bytes}";
                return false;
            }
            task.Args[i] = new KernelArgument(BinaryPrimitives.ReadUInt64LittleEndian(p[o..]), bytes);
        }
        for (int i = 0; i < scalars; i++, o += 16)
        {
            byte source = p[o];
            if (source > (byte)ScalarSource.DeviceMemory)
            {
                error = $"KernelLaunch scalar {i} has unknown source {source}";
                return false;
            }
            task.Scalars[i] = new KernelScalar((ScalarSource)source, BinaryPrimitives.ReadUInt64LittleEndian(p[(o + 8)..]));
        }
        task.ArgCount = args;
        task.ScalarCount = scalars;
        error = null;
        return true;
    }
}
