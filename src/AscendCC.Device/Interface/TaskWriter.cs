using System.Buffers.Binary;

namespace AscendCC.Device;

/// <summary>
/// Encodes tasks in the device's task-buffer format. This is the hardware ABI: a 16-byte header
/// (u16 kind, u16 flags, u32 total length, u64 task id) then a kind-specific little-endian payload.
/// The host side uses it to fill stream task buffers and model task lists; the device decodes every
/// byte strictly, so a malicious host gains nothing by writing the bytes itself.
/// </summary>
public sealed class TaskWriter
{
    /// <summary>Bytes of the task header.</summary>
    public const int HeaderSize = 16;

    /// <summary>Most buffer or scalar arguments one kernel launch may carry.</summary>
    public const int MaxKernelOperands = 64;

    private byte[] _buffer;
    private int _length;

    /// <summary>Creates a writer with an initial capacity.</summary>
    public TaskWriter(int capacity = 4096) => _buffer = new byte[Math.Max(capacity, 64)];

    /// <summary>The encoded tasks so far.</summary>
    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

    /// <summary>Number of bytes written.</summary>
    public int Length => _length;

    /// <summary>Forgets everything written, keeping the buffer.</summary>
    public void Clear() => _length = 0;

    /// <summary>A no-op; with <see cref="TaskOptions.Notify"/> a point to wait for.</summary>
    public void Nop(ulong taskId, TaskOptions flags = TaskOptions.Notify) => Begin(TaskKind.Nop, flags, taskId, 0);

    /// <summary>Allocate <paramref name="size"/> bytes of HBM tagged <paramref name="tag"/>.</summary>
    public void Alloc(ulong taskId, long size, long alignment, RegionTag tag, TaskOptions flags = TaskOptions.Notify)
    {
        Span<byte> p = Begin(TaskKind.Alloc, flags, taskId, 24);
        BinaryPrimitives.WriteInt64LittleEndian(p, size);
        BinaryPrimitives.WriteInt64LittleEndian(p[8..], alignment);
        BinaryPrimitives.WriteUInt16LittleEndian(p[16..], (ushort)tag);
    }

    /// <summary>Free the region at <paramref name="address"/>.</summary>
    public void Free(ulong taskId, ulong address, TaskOptions flags = TaskOptions.None) =>
        BinaryPrimitives.WriteUInt64LittleEndian(Begin(TaskKind.Free, flags, taskId, 8), address);

    /// <summary>DMA <paramref name="bytes"/> from host buffer <paramref name="hostBuffer"/> at <paramref name="hostOffset"/> to <paramref name="deviceAddress"/>.</summary>
    public void CopyHostToDevice(ulong taskId, int hostBuffer, long hostOffset, ulong deviceAddress, long bytes, TaskOptions flags = TaskOptions.None) =>
        HostCopy(TaskKind.MemcpyHostToDevice, taskId, hostBuffer, hostOffset, deviceAddress, bytes, flags);

    /// <summary>DMA <paramref name="bytes"/> from <paramref name="deviceAddress"/> to host buffer <paramref name="hostBuffer"/> at <paramref name="hostOffset"/>.</summary>
    public void CopyDeviceToHost(ulong taskId, ulong deviceAddress, int hostBuffer, long hostOffset, long bytes, TaskOptions flags = TaskOptions.None) =>
        HostCopy(TaskKind.MemcpyDeviceToHost, taskId, hostBuffer, hostOffset, deviceAddress, bytes, flags);

    /// <summary>Copy inside HBM.</summary>
    public void CopyDeviceToDevice(ulong taskId, ulong source, ulong destination, long bytes, TaskOptions flags = TaskOptions.None)
    {
        Span<byte> p = Begin(TaskKind.MemcpyDeviceToDevice, flags, taskId, 24);
        BinaryPrimitives.WriteUInt64LittleEndian(p, source);
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], destination);
        BinaryPrimitives.WriteInt64LittleEndian(p[16..], bytes);
    }

    /// <summary>Fill HBM with <paramref name="value"/>.</summary>
    public void Memset(ulong taskId, ulong address, long bytes, byte value, TaskOptions flags = TaskOptions.None)
    {
        Span<byte> p = Begin(TaskKind.Memset, flags, taskId, 24);
        BinaryPrimitives.WriteUInt64LittleEndian(p, address);
        BinaryPrimitives.WriteInt64LittleEndian(p[8..], bytes);
        p[16] = value;
    }

    /// <summary>Seal the operator binary at <paramref name="address"/> and make it launchable.</summary>
    public void LoadOperator(ulong taskId, ulong address, long bytes, TaskOptions flags = TaskOptions.Notify) =>
        AddressAndLength(TaskKind.LoadOperator, taskId, address, bytes, flags);

    /// <summary>Launch the operator <paramref name="operatorHandle"/> with buffer and scalar arguments.</summary>
    public void KernelLaunch(ulong taskId, ulong operatorHandle, ReadOnlySpan<KernelArgument> args, ReadOnlySpan<KernelScalar> scalars, TaskOptions flags = TaskOptions.None)
    {
        if (args.Length > MaxKernelOperands || scalars.Length > MaxKernelOperands)
        {
            throw new ArgumentException($"a kernel launch carries at most {MaxKernelOperands} buffers and {MaxKernelOperands} scalars");
        }
        Span<byte> p = Begin(TaskKind.KernelLaunch, flags, taskId, 16 + (16 * (args.Length + scalars.Length)));
        BinaryPrimitives.WriteUInt64LittleEndian(p, operatorHandle);
        BinaryPrimitives.WriteUInt16LittleEndian(p[8..], (ushort)args.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(p[10..], (ushort)scalars.Length);
        int o = 16;
        foreach (KernelArgument a in args)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(p[o..], a.Address);
            BinaryPrimitives.WriteInt64LittleEndian(p[(o + 8)..], a.Bytes);
            o += 16;
        }
        foreach (KernelScalar s in scalars)
        {
            p[o] = (byte)s.Source;
            BinaryPrimitives.WriteUInt64LittleEndian(p[(o + 8)..], s.Value);
            o += 16;
        }
    }

    /// <summary>Signal event <paramref name="eventId"/>.</summary>
    public void EventRecord(ulong taskId, int eventId, TaskOptions flags = TaskOptions.None) => Id32(TaskKind.EventRecord, taskId, eventId, flags);

    /// <summary>Block the stream until event <paramref name="eventId"/> is signalled.</summary>
    public void EventWait(ulong taskId, int eventId, TaskOptions flags = TaskOptions.None) => Id32(TaskKind.EventWait, taskId, eventId, flags);

    /// <summary>Clear event <paramref name="eventId"/>.</summary>
    public void EventReset(ulong taskId, int eventId, TaskOptions flags = TaskOptions.None) => Id32(TaskKind.EventReset, taskId, eventId, flags);

    /// <summary>Load the task list stored in HBM at <paramref name="address"/> as a model.</summary>
    public void LoadModel(ulong taskId, ulong address, long bytes, TaskOptions flags = TaskOptions.Notify) =>
        AddressAndLength(TaskKind.LoadModel, taskId, address, bytes, flags);

    /// <summary>Run model <paramref name="modelId"/>.</summary>
    public void ExecuteModel(ulong taskId, int modelId, TaskOptions flags = TaskOptions.None) => Id32(TaskKind.ExecuteModel, taskId, modelId, flags);

    /// <summary>Forget model <paramref name="modelId"/>.</summary>
    public void UnloadModel(ulong taskId, int modelId, TaskOptions flags = TaskOptions.None) => Id32(TaskKind.UnloadModel, taskId, modelId, flags);

    /// <summary>Set the host's DMA access to the region at <paramref name="address"/>.</summary>
    public void SetDmaAccess(ulong taskId, ulong address, DmaAccess access, TaskOptions flags = TaskOptions.None)
    {
        Span<byte> p = Begin(TaskKind.SetDmaAccess, flags, taskId, 16);
        BinaryPrimitives.WriteUInt64LittleEndian(p, address);
        BinaryPrimitives.WriteUInt32LittleEndian(p[8..], (uint)access);
    }

    /// <summary>Appends raw bytes (for tests that play a malicious host).</summary>
    public void Raw(ReadOnlySpan<byte> bytes)
    {
        Ensure(bytes.Length);
        bytes.CopyTo(_buffer.AsSpan(_length));
        _length += bytes.Length;
    }

    private void HostCopy(TaskKind kind, ulong taskId, int hostBuffer, long hostOffset, ulong deviceAddress, long bytes, TaskOptions flags)
    {
        Span<byte> p = Begin(kind, flags, taskId, 32);
        BinaryPrimitives.WriteInt32LittleEndian(p, hostBuffer);
        BinaryPrimitives.WriteInt64LittleEndian(p[8..], hostOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(p[16..], deviceAddress);
        BinaryPrimitives.WriteInt64LittleEndian(p[24..], bytes);
    }

    private void AddressAndLength(TaskKind kind, ulong taskId, ulong address, long bytes, TaskOptions flags)
    {
        Span<byte> p = Begin(kind, flags, taskId, 16);
        BinaryPrimitives.WriteUInt64LittleEndian(p, address);
        BinaryPrimitives.WriteInt64LittleEndian(p[8..], bytes);
    }

    private void Id32(TaskKind kind, ulong taskId, int id, TaskOptions flags) =>
        BinaryPrimitives.WriteInt32LittleEndian(Begin(kind, flags, taskId, 8), id);

    private Span<byte> Begin(TaskKind kind, TaskOptions flags, ulong taskId, int payload)
    {
        int total = HeaderSize + payload;
        Ensure(total);
        Span<byte> t = _buffer.AsSpan(_length, total);
        t.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(t, (ushort)kind);
        BinaryPrimitives.WriteUInt16LittleEndian(t[2..], (ushort)flags);
        BinaryPrimitives.WriteInt32LittleEndian(t[4..], total);
        BinaryPrimitives.WriteUInt64LittleEndian(t[8..], taskId);
        _length += total;
        return t[HeaderSize..];
    }

    private void Ensure(int more)
    {
        if (_length + more > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + more));
        }
    }
}
