using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using AscendCC.Device;
using AscendCC.Runtime.Driver;

namespace AscendCC.Runtime.Acl;

/// <summary>
/// An ACL-style runtime over one NPU (aclrtSetDevice … aclrtResetDevice): device memory, copies,
/// streams, events, single-operator execution (eager compileAndExecute) and models (graph
/// executeModel). Untrusted host code: it moves bytes and never needs a key.
/// </summary>
public sealed class NpuRuntime : IDisposable
{
    private const int StagingBytes = 16 << 20;

    private readonly Dictionary<string, ulong> _operators = new(StringComparer.Ordinal);
    private readonly object _stagingGate = new();
    private readonly byte[] _staging = GC.AllocateArray<byte>(StagingBytes, pinned: true);
    private readonly int _stagingHandle;
    private readonly bool _ownsDevice;
    private int _nextStream = 1;
    private int _nextEvent;

    /// <summary>Opens a runtime on <paramref name="device"/>.</summary>
    /// <param name="device">The device's hardware interface.</param>
    /// <param name="ownsDevice">Dispose the device with the runtime.</param>
    public NpuRuntime(NpuDevice device, bool ownsDevice = false)
    {
        Driver = new NpuDriver(device);
        _ownsDevice = ownsDevice;
        _stagingHandle = device.RegisterHostBuffer(_staging);
        DefaultStream = new NpuStream(this, 0);
    }

    /// <summary>The driver beneath.</summary>
    public NpuDriver Driver { get; }

    /// <summary>The device.</summary>
    public NpuDevice Device => Driver.Device;

    /// <summary>Stream 0.</summary>
    public NpuStream DefaultStream { get; }

    /// <summary>HBM usage.</summary>
    public DeviceMemoryInfo MemoryInfo => Device.QueryMemoryInfo();

    /// <summary>Allocates <paramref name="bytes"/> of HBM tagged <paramref name="tag"/>.</summary>
    /// <exception cref="NpuOutOfMemoryException">HBM is exhausted.</exception>
    public DeviceBuffer Allocate(long bytes, RegionTag tag = RegionTag.General, long alignment = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1);
        ulong address = Driver.Call(0, (w, id) => w.Alloc(id, bytes, alignment, tag));
        return new DeviceBuffer(this, address, bytes, tag);
    }

    internal void Free(DeviceBuffer buffer) => Driver.Call(0, (w, id) => w.Free(id, buffer.Address, TaskOptions.Notify));

    /// <summary>Copies host bytes to <paramref name="destination"/> at <paramref name="offset"/> (synchronous).</summary>
    public void CopyToDevice(ReadOnlySpan<byte> source, DeviceBuffer destination, long offset = 0)
    {
        ArgumentNullException.ThrowIfNull(destination);
        CheckRange(destination, offset, source.Length);
        CopyToDevice(source, destination.Address + (ulong)offset);
    }

    /// <summary>Copies host values to <paramref name="destination"/> at <paramref name="offset"/> bytes (synchronous).</summary>
    public void CopyToDevice<T>(ReadOnlySpan<T> source, DeviceBuffer destination, long offset = 0) where T : unmanaged =>
        CopyToDevice(MemoryMarshal.AsBytes(source), destination, offset);

    /// <summary>Copies host bytes to a raw device address (synchronous); the device checks the range.</summary>
    public void CopyToDevice(ReadOnlySpan<byte> source, ulong deviceAddress)
    {
        lock (_stagingGate)
        {
            for (int done = 0; done < source.Length;)
            {
                int n = Math.Min(StagingBytes, source.Length - done);
                source.Slice(done, n).CopyTo(_staging);
                Driver.Transcript?.Record(TranscriptChannel.HostToDevice, _staging.AsSpan(0, n));
                ulong at = deviceAddress + (ulong)done;
                Driver.Call(0, (w, id) => w.CopyHostToDevice(id, _stagingHandle, 0, at, n, TaskOptions.Notify));
                done += n;
            }
        }
    }

    /// <summary>Copies device bytes into <paramref name="destination"/> (synchronous).</summary>
    public void CopyToHost(DeviceBuffer source, long offset, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        CheckRange(source, offset, destination.Length);
        CopyToHost(source.Address + (ulong)offset, destination);
    }

    /// <summary>Copies device values into <paramref name="destination"/> (synchronous).</summary>
    public void CopyToHost<T>(DeviceBuffer source, long offset, Span<T> destination) where T : unmanaged =>
        CopyToHost(source, offset, MemoryMarshal.AsBytes(destination));

    /// <summary>Copies from a raw device address into <paramref name="destination"/> (synchronous); the device checks the range.</summary>
    public void CopyToHost(ulong deviceAddress, Span<byte> destination)
    {
        lock (_stagingGate)
        {
            for (int done = 0; done < destination.Length;)
            {
                int n = Math.Min(StagingBytes, destination.Length - done);
                ulong at = deviceAddress + (ulong)done;
                Driver.Call(0, (w, id) => w.CopyDeviceToHost(id, at, _stagingHandle, 0, n, TaskOptions.Notify));
                Driver.Transcript?.Record(TranscriptChannel.DeviceToHost, _staging.AsSpan(0, n));
                _staging.AsSpan(0, n).CopyTo(destination.Slice(done, n));
                done += n;
            }
        }
    }

    /// <summary>
    /// Starts one synchronous inference step that reaches the device as a single submission with a
    /// single wait: stage inputs (<see cref="InferenceStep.Input"/>), queue the body (<see cref="InferenceStep.ExecuteModel"/>,
    /// or <see cref="InferenceStep.Flush"/> and then eager launches), and <see cref="InferenceStep.Finish(ulong, Span{byte})"/>
    /// with the output copy. Per token this replaces four synchronous round trips through the
    /// completion pump (two input copies, a synchronise and an output copy) with one. Holds the
    /// staging buffer until disposed, so no other copy can overwrite a staged input before it runs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public InferenceStep BeginStep(NpuStream? stream = null)
    {
        Monitor.Enter(_stagingGate);
        _stepWriter.Clear();
        _stepStaged = 0;
        return new InferenceStep(this, (stream ?? DefaultStream).Id);
    }

    private readonly TaskWriter _stepWriter = new();
    private int _stepStaged;

    /// <summary>One step in flight (see <see cref="BeginStep"/>); dispose it to release the staging buffer.</summary>
    public readonly ref struct InferenceStep
    {
        private readonly NpuRuntime _runtime;
        private readonly int _stream;

        internal InferenceStep(NpuRuntime runtime, int stream)
        {
            _runtime = runtime;
            _stream = stream;
        }

        /// <summary>Stages <paramref name="source"/> for a copy to <paramref name="deviceAddress"/> (queued, not yet submitted).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Input(ReadOnlySpan<byte> source, ulong deviceAddress)
        {
            NpuRuntime r = _runtime;
            int at = r.StageStep(source.Length);
            source.CopyTo(r._staging.AsSpan(at));
            r.Driver.Transcript?.Record(TranscriptChannel.HostToDevice, r._staging.AsSpan(at, source.Length));
            r._stepWriter.CopyHostToDevice(r.Driver.NextTaskId(), r._stagingHandle, at, deviceAddress, source.Length);
        }

        /// <summary>Stages values for a copy to <paramref name="deviceAddress"/>.</summary>
        public void Input<T>(ReadOnlySpan<T> source, ulong deviceAddress) where T : unmanaged => Input(MemoryMarshal.AsBytes(source), deviceAddress);

        /// <summary>Queues a run of <paramref name="model"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void ExecuteModel(LoadedModelHandle model)
        {
            ArgumentNullException.ThrowIfNull(model);
            _runtime._stepWriter.ExecuteModel(_runtime.Driver.NextTaskId(), model.Id);
        }

        /// <summary>Submits what is queued so far, so launches submitted next run after it (eager mode).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Flush()
        {
            NpuRuntime r = _runtime;
            if (r._stepWriter.Written.Length > 0)
            {
                r.Driver.SubmitBytes(_stream, r._stepWriter.Written);
                r._stepWriter.Clear();
            }
        }

        /// <summary>Submits the rest with a copy of <paramref name="output"/>.Length bytes from <paramref name="deviceAddress"/>, and waits.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Finish(ulong deviceAddress, Span<byte> output)
        {
            NpuRuntime r = _runtime;
            int at = r.StageStep(output.Length);
            ulong id = r.Driver.NextTaskId();
            r._stepWriter.CopyDeviceToHost(id, deviceAddress, r._stagingHandle, at, output.Length, TaskOptions.Notify);
            r.Driver.SubmitAndWait(_stream, r._stepWriter.Written, id);
            r._stepWriter.Clear();
            r.Driver.Transcript?.Record(TranscriptChannel.DeviceToHost, r._staging.AsSpan(at, output.Length));
            r._staging.AsSpan(at, output.Length).CopyTo(output);
        }

        /// <summary>Submits the rest and waits for it (no output).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Finish()
        {
            NpuRuntime r = _runtime;
            ulong id = r.Driver.NextTaskId();
            r._stepWriter.Nop(id, TaskOptions.Notify);
            r.Driver.SubmitAndWait(_stream, r._stepWriter.Written, id);
            r._stepWriter.Clear();
        }

        /// <summary>Releases the staging buffer.</summary>
        public void Dispose() => Monitor.Exit(_runtime._stagingGate);
    }

    /// <summary>Reserves <paramref name="bytes"/> of staging for the current step (64-byte aligned).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int StageStep(int bytes)
    {
        int at = _stepStaged;
        if ((long)at + bytes > StagingBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(bytes), $"a step stages at most {StagingBytes} bytes; copy larger inputs with CopyToDevice");
        }
        _stepStaged = (at + bytes + 63) & ~63;
        return at;
    }

    /// <summary>Queues a device-to-device copy on <paramref name="stream"/>.</summary>
    public void CopyOnDevice(ulong source, ulong destination, long bytes, NpuStream? stream = null) =>
        Driver.Submit((stream ?? DefaultStream).Id, w => w.CopyDeviceToDevice(Driver.NextTaskId(), source, destination, bytes));

    /// <summary>Queues a memset on <paramref name="stream"/>.</summary>
    public void Memset(DeviceBuffer buffer, byte value, NpuStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        Driver.Submit((stream ?? DefaultStream).Id, w => w.Memset(Driver.NextTaskId(), buffer.Address, buffer.Bytes, value));
    }

    /// <summary>Creates a stream (round-robin over the device's hardware streams 1..N-1).</summary>
    public NpuStream CreateStream()
    {
        int count = Device.Properties.StreamCount;
        int id = count == 1 ? 0 : 1 + ((Interlocked.Increment(ref _nextStream) - 2) % (count - 1));
        return new NpuStream(this, id);
    }

    /// <summary>Creates an event.</summary>
    public NpuEvent CreateEvent()
    {
        int id = Interlocked.Increment(ref _nextEvent) - 1;
        if (id >= Device.Properties.EventCount)
        {
            throw new NpuException($"the device has {Device.Properties.EventCount} events and all are in use");
        }
        return new NpuEvent(this, id);
    }

    /// <summary>Waits for every stream the runtime has used.</summary>
    public void Synchronize()
    {
        int streams = Math.Min(Device.Properties.StreamCount, Math.Max(1, Volatile.Read(ref _nextStream)));
        for (int s = 0; s < streams; s++)
        {
            Driver.Synchronize(s);
        }
    }

    /// <summary>
    /// Loads operator <paramref name="name"/> from the device's operator package into HBM (once) and
    /// returns its handle.
    /// </summary>
    public ulong LoadOperator(string name)
    {
        lock (_operators)
        {
            if (_operators.TryGetValue(name, out ulong handle))
            {
                return handle;
            }
            ReadOnlyMemory<byte> binary = AscendCC.Device.Operators.OperatorCatalog.GetBinary(name);
            DeviceBuffer region = Allocate(binary.Length, RegionTag.OperatorBinary);
            CopyToDevice(binary.Span, region);
            handle = Driver.Call(0, (w, id) => w.LoadOperator(id, region.Address, binary.Length));
            _operators[name] = handle;
            return handle;
        }
    }

    /// <summary>
    /// Eager mode (compileAndExecute): runs operator <paramref name="op"/> once on <paramref name="stream"/>.
    /// Asynchronous: failures surface at the stream's next synchronisation.
    /// </summary>
    public void Execute(string op, ReadOnlySpan<KernelArgument> args, ReadOnlySpan<KernelScalar> scalars, NpuStream? stream = null)
    {
        ulong handle = LoadOperator(op);
        int streamId = (stream ?? DefaultStream).Id;
        lock (_launchWriter)
        {
            _launchWriter.Clear();
            _launchWriter.KernelLaunch(Driver.NextTaskId(), handle, args, scalars);
            Driver.SubmitBytes(streamId, _launchWriter.Written);
        }
    }

    private readonly TaskWriter _launchWriter = new();

    /// <summary>Starts a model's task list (graph mode).</summary>
    public ModelTaskList CreateTaskList() => new(this);

    /// <summary>Places <paramref name="taskList"/> in HBM and loads it as a model.</summary>
    public LoadedModelHandle LoadModel(ModelTaskList taskList)
    {
        ArgumentNullException.ThrowIfNull(taskList);
        byte[] bytes = taskList.Bytes.ToArray();
        DeviceBuffer region = Allocate(bytes.Length, RegionTag.TaskList);
        CopyToDevice(bytes, region);
        int id = (int)Driver.Call(0, (w, tid) => w.LoadModel(tid, region.Address, bytes.Length));
        return new LoadedModelHandle(id, region, taskList.Count);
    }

    /// <summary>Queues one run of <paramref name="model"/> on <paramref name="stream"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void ExecuteModel(LoadedModelHandle model, NpuStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        Driver.Submit((stream ?? DefaultStream).Id, w => w.ExecuteModel(Driver.NextTaskId(), model.Id));
    }

    /// <summary>Unloads <paramref name="model"/> and frees its task list.</summary>
    public void UnloadModel(LoadedModelHandle model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Driver.Call(0, (w, id) => w.UnloadModel(id, model.Id, TaskOptions.Notify));
        model.TaskList.Dispose();
    }

    private static void CheckRange(DeviceBuffer buffer, long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > buffer.Bytes)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"range {offset}+{length} lies outside the {buffer.Bytes}-byte device buffer");
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Device.UnregisterHostBuffer(_stagingHandle);
        Driver.Dispose();
        if (_ownsDevice)
        {
            Device.Dispose();
        }
    }
}
