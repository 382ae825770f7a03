using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using AscendCC.Device.AiCore;
using AscendCC.Device.Graph;
using AscendCC.Device.Hbm;
using AscendCC.Device.Operators;

namespace AscendCC.Device.Scheduler;

/// <summary>Result of running one task.</summary>
internal readonly record struct TaskOutcome(CompletionStatus Status, ulong Result, ulong FaultAddress, string? Detail)
{
    public static readonly TaskOutcome Ok = new(CompletionStatus.Success, 0, 0, null);

    public static TaskOutcome Fail(CompletionStatus status, string detail, ulong faultAddress = 0) => new(status, 0, faultAddress, detail);
}

/// <summary>
/// The task scheduler: one firmware thread that takes tasks from the streams' task buffers in order,
/// runs them (kernels on the AI Cores, copies on the DMA engine through the SMMU) and posts
/// completions. Every input it reads comes from the host and is treated as hostile: a bad task costs
/// the host an error completion, never the device's state or its next task.
/// </summary>
internal sealed unsafe class TaskScheduler : IDisposable
{
    private readonly HbmMemory _hbm;
    private readonly Smmu.Smmu _smmu;
    private readonly AiCoreGrid _grid;
    private readonly DeviceStream[] _streams;
    private readonly bool[] _events;
    private readonly CompletionQueue _completions;
    private readonly HostBuffers _hostBuffers;
    private readonly Dictionary<ulong, IOperator> _loadedOperators = new();
    private readonly Dictionary<ulong, byte[]> _operatorDigests = new();
    private readonly Dictionary<int, LoadedModel> _models = new();
    private readonly ManualResetEventSlim _doorbell = new(false);
    private readonly object _executionGate = new();
    private readonly Thread _thread;
    private readonly ResolvedArgument[] _resolved = new ResolvedArgument[TaskWriter.MaxKernelOperands];
    private readonly long[] _scalars = new long[TaskWriter.MaxKernelOperands];
    private int _nextModelId = 1;
    private volatile bool _stopping;

    public TaskScheduler(HbmMemory hbm, Smmu.Smmu smmu, AiCoreGrid grid, HostBuffers hostBuffers, CompletionQueue completions, int streams, int events, int taskBufferBytes)
    {
        _hbm = hbm;
        _smmu = smmu;
        _grid = grid;
        _hostBuffers = hostBuffers;
        _completions = completions;
        _streams = new DeviceStream[streams];
        for (int i = 0; i < streams; i++)
        {
            _streams[i] = new DeviceStream(i, taskBufferBytes);
        }
        _events = new bool[events];
        _thread = new Thread(Run) { IsBackground = true, Name = "NPU task scheduler" };
        _thread.Start();
    }

    private readonly List<(string, byte[])> _profile = new();

    /// <summary>Debug: record the head of each kernel's first output (never on in CC mode On).</summary>
    public bool DataProfiling { get; set; }

    /// <summary>Device time per operator, for benchmarks (see <see cref="OperatorClock"/>).</summary>
    public OperatorClock Clock { get; } = new();

    /// <summary>Debug: the profile so far.</summary>
    public IReadOnlyList<(string Operator, byte[] OutputHead)> ProfileRecords()
    {
        lock (_profile)
        {
            return _profile.ToArray();
        }
    }

    /// <summary>The confidential-computing firmware; null on a device without fuses.</summary>
    public Confidential.ConfidentialFirmware? Firmware { get; set; }

    public DeviceStream Stream(int id)
    {
        if ((uint)id >= (uint)_streams.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"the device has streams 0..{_streams.Length - 1}");
        }
        return _streams[id];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Doorbell(int stream)
    {
        Stream(stream).Publish();
        _doorbell.Set();
    }

    /// <summary>Runs <paramref name="action"/> with no task in flight (device reset, debug).</summary>
    public void Quiesce(Action action)
    {
        lock (_executionGate)
        {
            action();
        }
    }

    /// <summary>Forgets all streams, events, operators and models (under <see cref="Quiesce"/>).</summary>
    public void ClearState()
    {
        foreach (DeviceStream s in _streams)
        {
            s.Clear();
        }
        Array.Clear(_events);
        // Profiling records hold output bytes of the last boot's kernels: they must not survive it.
        lock (_profile)
        {
            _profile.Clear();
        }
        DataProfiling = false;
        _loadedOperators.Clear();
        _operatorDigests.Clear();
        _models.Clear();
    }

    /// <summary>Loaded models (read under <see cref="Quiesce"/>).</summary>
    public IReadOnlyDictionary<int, LoadedModel> Models => _models;

    private void Run()
    {
        while (!_stopping)
        {
            _doorbell.Reset();
            bool worked = false;
            foreach (DeviceStream s in _streams)
            {
                if (s.WaitingEvent >= 0)
                {
                    if (!Volatile.Read(ref _events[s.WaitingEvent]))
                    {
                        continue;
                    }
                    s.WaitingEvent = -1;
                }
                lock (_executionGate)
                {
                    if (s.Fetch())
                    {
                        RunNext(s);
                        worked = true;
                    }
                }
            }
            if (!worked)
            {
                _grid.Rest();
                _doorbell.Wait();
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunNext(DeviceStream s)
    {
        ref DecodedTask task = ref s.Scratch;
        if (!TaskDecoder.TryDecode(s.Pending, ref task, ownArrays: false, out int consumed, out string? error))
        {
            if (consumed == 0)
            {
                s.DiscardPending();
                Post(s.Id, task.TaskId, 0, new TaskOutcome(CompletionStatus.StreamReset, 0, 0, $"task buffer discarded: {error}"));
            }
            else
            {
                s.Consume(consumed);
                Post(s.Id, task.TaskId, task.Kind, TaskOutcome.Fail(CompletionStatus.InvalidTask, error!));
            }
            return;
        }
        s.Consume(consumed);

        if (task.Kind == TaskKind.EventWait)
        {
            if ((ulong)_events.Length <= task.A)
            {
                Post(s.Id, task.TaskId, task.Kind, TaskOutcome.Fail(CompletionStatus.InvalidHandle, $"event {task.A} does not exist (0..{_events.Length - 1})"));
                return;
            }
            if (!Volatile.Read(ref _events[task.A]))
            {
                s.WaitingEvent = (int)task.A;
            }
            if ((task.Flags & TaskOptions.Notify) != 0)
            {
                Post(s.Id, task.TaskId, task.Kind, TaskOutcome.Ok);
            }
            return;
        }

        TaskOutcome outcome = Execute(ref task, s.Id, inModel: false);
        Firmware?.EagerTaskDone(outcome.Status == CompletionStatus.Success);
        if (outcome.Status != CompletionStatus.Success || (task.Flags & TaskOptions.Notify) != 0)
        {
            Post(s.Id, task.TaskId, task.Kind, outcome);
        }
    }

    private void Post(int stream, ulong taskId, TaskKind kind, TaskOutcome o) =>
        _completions.Post(new CompletionEntry(taskId, stream, kind, o.Status, o.Result, o.FaultAddress, o.Detail));

    /// <summary>Runs one decoded task (from a stream or from a model's task list).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private TaskOutcome Execute(ref DecodedTask t, int stream, bool inModel)
    {
        if (Firmware is { } firmware)
        {
            long checkStarted = Clock.Enabled ? Stopwatch.GetTimestamp() : 0;
            TaskOutcome? refusal = firmware.Check(ref t, stream, inModel);
            if (checkStarted != 0)
            {
                Clock.Add(OperatorClock.FirmwareChecks, Stopwatch.GetTimestamp() - checkStarted);
            }
            if (refusal is { } refused)
            {
                return refused;
            }
        }
        switch (t.Kind)
        {
            case TaskKind.Nop:
                return TaskOutcome.Ok;
            case TaskKind.Alloc:
                return Allocate((long)t.A, (long)t.B, t.C);
            case TaskKind.Free:
                return Free(t.A);
            case TaskKind.MemcpyHostToDevice:
            case TaskKind.MemcpyDeviceToHost:
            {
                long copyStarted = Clock.Enabled ? Stopwatch.GetTimestamp() : 0;
                TaskOutcome copied = HostCopy(toDevice: t.Kind == TaskKind.MemcpyHostToDevice, (int)t.A, (long)t.B, t.C, (long)t.D);
                if (copyStarted != 0)
                {
                    Clock.Add(OperatorClock.HostDma, Stopwatch.GetTimestamp() - copyStarted);
                }
                return copied;
            }
            case TaskKind.MemcpyDeviceToDevice:
                return DeviceCopy(t.A, t.B, (long)t.C);
            case TaskKind.Memset:
                return Memset(t.A, (long)t.B, (byte)t.C);
            case TaskKind.LoadOperator:
                return LoadOperator(t.A, (long)t.B);
            case TaskKind.KernelLaunch:
                return Launch(ref t);
            case TaskKind.EventRecord:
            case TaskKind.EventReset:
                if ((ulong)_events.Length <= t.A)
                {
                    return TaskOutcome.Fail(CompletionStatus.InvalidHandle, $"event {t.A} does not exist (0..{_events.Length - 1})");
                }
                Volatile.Write(ref _events[t.A], t.Kind == TaskKind.EventRecord);
                return TaskOutcome.Ok;
            case TaskKind.LoadModel:
                return LoadModel(t.A, (long)t.B);
            case TaskKind.ExecuteModel:
                return ExecuteModel((int)t.A, stream);
            case TaskKind.UnloadModel:
                if (!_models.Remove((int)t.A, out LoadedModel? unloaded))
                {
                    return TaskOutcome.Fail(CompletionStatus.InvalidHandle, $"model {t.A} is not loaded");
                }
                Confidential.ConfidentialFirmware.Release(unloaded);
                return TaskOutcome.Ok;
            case TaskKind.SetDmaAccess:
                return _smmu.SetAccess(t.A, (DmaAccess)t.B)
                    ? TaskOutcome.Ok
                    : TaskOutcome.Fail(CompletionStatus.InvalidAddress, $"no region starts at 0x{t.A:x}", t.A);
            default:
                return TaskOutcome.Fail(CompletionStatus.InvalidTask, $"{t.Kind} cannot run here");
        }
    }

    private TaskOutcome Allocate(long size, long alignment, ulong tag)
    {
        if (!Enum.IsDefined((RegionTag)tag))
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidTask, $"unknown region tag {tag}");
        }
        if (size <= 0 || alignment < 0 || (alignment & (alignment - 1)) != 0 || alignment > (1 << 30))
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidTask, $"cannot allocate {size} bytes at alignment {alignment}: size must be positive, alignment a power of two up to 1 GiB");
        }
        HbmRegion? region = _hbm.Allocate(size, alignment, (RegionTag)tag);
        if (region is not null)
        {
            Firmware?.OnAllocated(region);
        }
        if (region is null)
        {
            DeviceMemoryInfo info = _hbm.Info;
            return TaskOutcome.Fail(CompletionStatus.OutOfMemory,
                $"HBM exhausted: {size} bytes requested, {info.Allocated} of {info.Capacity} in use in {info.RegionCount} regions; free device memory, or use a smaller model or a narrower weight precision (BF16, Q8_0, Q4_K)");
        }
        return new TaskOutcome(CompletionStatus.Success, region.Address, 0, null);
    }

    private TaskOutcome Free(ulong address)
    {
        HbmRegion? region = _hbm.Find(address, 0);
        if (region is null || region.Address != address)
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidAddress, $"no region starts at 0x{address:x}", address);
        }
        _loadedOperators.Remove(address);
        _operatorDigests.Remove(address);
        Confidential.ConfidentialFirmware.OnFreed(region);
        _hbm.Free(address);
        return TaskOutcome.Ok;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private TaskOutcome HostCopy(bool toDevice, int hostBuffer, long hostOffset, ulong device, long bytes)
    {
        if (bytes < 0 || bytes > int.MaxValue)
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidTask, $"DMA length {bytes} is outside 0..2^31-1");
        }
        if (!_hostBuffers.TryGet(hostBuffer, out Memory<byte> host) || hostOffset < 0 || hostOffset > host.Length || bytes > host.Length - hostOffset)
        {
            return TaskOutcome.Fail(CompletionStatus.DmaFault,
                $"DMA fault: {Smmu.Smmu.Describe(Smmu.DmaFaultCause.HostBufferRange)} (host buffer {hostBuffer}, offset {hostOffset}, {bytes} bytes)", device);
        }
        HbmRegion? region = _smmu.Translate(device, bytes, toDevice ? DmaAccess.Write : DmaAccess.Read, out Smmu.DmaFaultCause cause);
        if (region is null)
        {
            return TaskOutcome.Fail(CompletionStatus.DmaFault, $"DMA fault at 0x{device:x}: {Smmu.Smmu.Describe(cause)}", device);
        }
        Span<byte> hostSpan = host.Span.Slice((int)hostOffset, (int)bytes);
        Span<byte> deviceSpan = region.Slice(device, bytes);
        if (toDevice)
        {
            region.CiphertextOnly = false;
            hostSpan.CopyTo(deviceSpan);
        }
        else
        {
            deviceSpan.CopyTo(hostSpan);
        }
        return TaskOutcome.Ok;
    }

    private TaskOutcome DeviceCopy(ulong source, ulong destination, long bytes)
    {
        if (bytes < 0 || bytes > int.MaxValue)
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidTask, $"copy length {bytes} is outside 0..2^31-1");
        }
        HbmRegion? from = _hbm.Find(source, bytes);
        if (from is null)
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidAddress, $"copy source 0x{source:x}+{bytes} is not inside one region", source);
        }
        HbmRegion? to = _hbm.Find(destination, bytes);
        if (to is null || to.Sealed)
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidAddress,
                to is null ? $"copy destination 0x{destination:x}+{bytes} is not inside one region" : "copy destination is a sealed operator binary", destination);
        }
        to.CiphertextOnly = false;
        from.Slice(source, bytes).CopyTo(to.Slice(destination, bytes));
        return TaskOutcome.Ok;
    }

    private TaskOutcome Memset(ulong address, long bytes, byte value)
    {
        HbmRegion? region = bytes is >= 0 and <= int.MaxValue ? _hbm.Find(address, bytes) : null;
        if (region is null || region.Sealed)
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidAddress, $"memset range 0x{address:x}+{bytes} is not inside one writable region", address);
        }
        region.CiphertextOnly = false;
        region.Slice(address, bytes).Fill(value);
        return TaskOutcome.Ok;
    }

    private TaskOutcome LoadOperator(ulong address, long bytes)
    {
        HbmRegion? region = bytes is > 0 and <= OperatorBinary.MaxSize ? _hbm.Find(address, bytes) : null;
        if (region is null)
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidAddress, $"operator binary 0x{address:x}+{bytes} is not inside one region (at most {OperatorBinary.MaxSize} bytes)", address);
        }
        if (region.Tag != RegionTag.OperatorBinary || region.Address != address)
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidAddress, $"operator binaries must start an {RegionTag.OperatorBinary} region; 0x{address:x} is in a {region.Tag} region", address);
        }
        Span<byte> binary = region.Slice(address, bytes);
        IOperator? op = OperatorTable.FindByDigest(SHA256.HashData(binary));
        if (op is null)
        {
            string name = OperatorBinary.TryReadName(binary) is { } n ? $"'{n}'" : "(malformed)";
            return TaskOutcome.Fail(CompletionStatus.IllegalOperator, $"operator binary {name} at 0x{address:x} is not in the AI Core microcode table (digest {Convert.ToHexString(SHA256.HashData(binary))})", address);
        }
        // Sealed: from now on neither the host nor a kernel may change what this handle runs.
        region.Sealed = true;
        region.HostAccess &= ~DmaAccess.Write;
        _loadedOperators[address] = op;
        _operatorDigests[address] = SHA256.HashData(binary);
        return new TaskOutcome(CompletionStatus.Success, address, 0, null);
    }

    /// <summary>The operator loaded at <paramref name="handle"/>, or null.</summary>
    public IOperator? LoadedOperator(ulong handle) => _loadedOperators.GetValueOrDefault(handle);

    /// <summary>Digest of the binary loaded at <paramref name="handle"/>, or null.</summary>
    public byte[]? OperatorDigest(ulong handle) => _operatorDigests.GetValueOrDefault(handle);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private TaskOutcome Launch(ref DecodedTask t)
    {
        if (!_loadedOperators.TryGetValue(t.A, out IOperator? op))
        {
            return TaskOutcome.Fail(CompletionStatus.IllegalOperator, $"no operator is loaded at 0x{t.A:x}", t.A);
        }
        if (t.ArgCount != op.ArgumentNames.Count || t.ScalarCount != op.ScalarCount)
        {
            return TaskOutcome.Fail(CompletionStatus.KernelError,
                $"{op.Name} takes {op.ArgumentNames.Count} buffers and {op.ScalarCount} scalars, the launch has {t.ArgCount} and {t.ScalarCount}");
        }
        for (int i = 0; i < t.ArgCount; i++)
        {
            KernelArgument a = t.Args![i];
            if (a.IsNone)
            {
                _resolved[i] = default;
                continue;
            }
            HbmRegion? region = _hbm.Find(a.Address, a.Bytes);
            if (region is null)
            {
                return TaskOutcome.Fail(CompletionStatus.InvalidAddress, $"{op.Name}: buffer '{op.ArgumentNames[i]}' 0x{a.Address:x}+{a.Bytes} is not inside one region", a.Address);
            }
            if (Contains(op.Outputs, i))
            {
                if (region.Sealed)
                {
                    return TaskOutcome.Fail(CompletionStatus.InvalidAddress, $"{op.Name}: output '{op.ArgumentNames[i]}' points into a sealed operator binary", a.Address);
                }
                region.CiphertextOnly = false;
            }
            _resolved[i] = new ResolvedArgument(region.Data + (long)(a.Address - region.Address), a.Bytes, region);
        }
        for (int i = 0; i < t.ScalarCount; i++)
        {
            KernelScalar s = t.Scalars![i];
            if (s.Source == ScalarSource.Immediate)
            {
                _scalars[i] = unchecked((long)s.Value);
                continue;
            }
            HbmRegion? region = _hbm.Find(s.Value, 8);
            if (region is null)
            {
                return TaskOutcome.Fail(CompletionStatus.InvalidAddress, $"{op.Name}: scalar {i} reads 0x{s.Value:x}, which is not inside a region", s.Value);
            }
            _scalars[i] = *(long*)(region.Data + (long)(s.Value - region.Address));
        }
        var context = new KernelContext(op, _grid, _resolved.AsSpan(0, t.ArgCount), _scalars.AsSpan(0, t.ScalarCount), Firmware);
        long started = Clock.Enabled ? Stopwatch.GetTimestamp() : 0;
        try
        {
            op.Execute(ref context);
        }
        catch (KernelArgumentException ex)
        {
            return TaskOutcome.Fail(CompletionStatus.KernelError, KernelErrorDetail(op, ex.Message));
        }
        catch (Confidential.ConfidentialOperatorException ex)
        {
            return TaskOutcome.Fail(CompletionStatus.AccessDenied, $"{op.Name}: {ex.Message}");
        }
        catch (System.Security.Cryptography.CryptographicException ex)
        {
            return TaskOutcome.Fail(CompletionStatus.AccessDenied, $"{op.Name}: {ex.Message}");
        }
        catch (Security.DeviceSecurityException ex)
        {
            return TaskOutcome.Fail(CompletionStatus.AccessDenied, $"{op.Name}: {ex.Message}");
        }
        catch (ArgumentException ex)
        {
            return TaskOutcome.Fail(CompletionStatus.KernelError, KernelErrorDetail(op, $"{op.Name}: {ex.Message}"));
        }
        if (started != 0)
        {
            Clock.Add(op.Name, Stopwatch.GetTimestamp() - started);
        }
        if (DataProfiling && !(Firmware?.DebugLocked ?? false) && op.Outputs.Count > 0)
        {
            ResolvedArgument o = _resolved[op.Outputs[0]];
            lock (_profile)
            {
                _profile.Add((op.Name, new ReadOnlySpan<byte>(o.Data, (int)Math.Min(o.Bytes, 64)).ToArray()));
            }
        }
        return TaskOutcome.Ok;
    }

    /// <summary>
    /// A kernel's own error text, or in confidential mode only the operator's name: kernels check data
    /// as well as shapes (an out-of-range token id, say), and their messages quote what they found, so
    /// in CC mode a completion never carries them to the host. The firmware's own refusals
    /// (ConfidentialOperatorException) are written to name rules and public sizes only, and pass through.
    /// </summary>
    private string KernelErrorDetail(IOperator op, string message) =>
        Firmware is { Active: true }
            ? $"{op.Name}: the kernel rejected its inputs; details are withheld in confidential mode because they can quote data values (reproduce with CC off to see them)"
            : message;

    private static bool Contains(IReadOnlyList<int> list, int value)
    {
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] == value)
            {
                return true;
            }
        }
        return false;
    }

    private TaskOutcome LoadModel(ulong address, long bytes)
    {
        HbmRegion? region = bytes is > 0 and <= int.MaxValue ? _hbm.Find(address, bytes) : null;
        if (region is null || region.Tag != RegionTag.TaskList)
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidAddress, $"a model's task list must lie inside one {RegionTag.TaskList} region; 0x{address:x}+{bytes} does not", address);
        }
        ReadOnlySpan<byte> list = region.Slice(address, bytes);
        var tasks = new List<DecodedTask>();
        int offset = 0;
        while (offset < list.Length)
        {
            var task = new DecodedTask();
            if (!TaskDecoder.TryDecode(list[offset..], ref task, ownArrays: true, out int consumed, out string? error))
            {
                return TaskOutcome.Fail(CompletionStatus.InvalidTask, $"task {tasks.Count} of the model at byte {offset}: {error}", address + (ulong)offset);
            }
            if (!LoadedModel.Allows(task.Kind))
            {
                return TaskOutcome.Fail(CompletionStatus.InvalidTask, $"task {tasks.Count} of the model is a {task.Kind}; a model may only hold kernel launches, device-to-device copies, memsets and no-ops");
            }
            if (task.Kind == TaskKind.KernelLaunch && !_loadedOperators.ContainsKey(task.A))
            {
                return TaskOutcome.Fail(CompletionStatus.IllegalOperator, $"task {tasks.Count} of the model launches 0x{task.A:x}, where no operator is loaded", task.A);
            }
            tasks.Add(task);
            offset += consumed;
        }
        int id = _nextModelId++;
        var model = new LoadedModel(id, tasks.ToArray(), SHA256.HashData(list));
        Firmware?.Attest(model);
        _models[id] = model;
        return new TaskOutcome(CompletionStatus.Success, (ulong)id, 0, null);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private TaskOutcome ExecuteModel(int id, int stream)
    {
        if (!_models.TryGetValue(id, out LoadedModel? model))
        {
            return TaskOutcome.Fail(CompletionStatus.InvalidHandle, $"model {id} is not loaded");
        }
        if (Firmware is { } firmware)
        {
            long checkStarted = Clock.Enabled ? Stopwatch.GetTimestamp() : 0;
            TaskOutcome? refusal = firmware.CheckExecute(model);
            if (checkStarted != 0)
            {
                Clock.Add(OperatorClock.FirmwareChecks, Stopwatch.GetTimestamp() - checkStarted);
            }
            if (refusal is { } refused)
            {
                return refused;
            }
        }
        DecodedTask[] tasks = model.Tasks;
        for (int i = 0; i < tasks.Length; i++)
        {
            TaskOutcome o = Execute(ref tasks[i], stream, inModel: true);
            if (o.Status != CompletionStatus.Success)
            {
                return o with { Detail = $"model {id}, task {i} ({tasks[i].Kind}): {o.Detail}" };
            }
        }
        return TaskOutcome.Ok;
    }

    public void Dispose()
    {
        _stopping = true;
        _doorbell.Set();
        _thread.Join();
        _doorbell.Dispose();
    }
}

/// <summary>A policy the firmware applies to every task before it runs (confidential computing).</summary>
internal interface ITaskGuard
{
    /// <summary>Null to let the task run, or the refusal to report. <paramref name="inModel"/>: the task is part of a loaded model's list.</summary>
    TaskOutcome? Check(ref DecodedTask task, int stream, bool inModel);
}
