using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using AscendCC.Device;

namespace AscendCC.Runtime.Driver;

/// <summary>
/// The kernel-mode driver's job, in user space: it numbers tasks, writes them into the device's
/// stream task buffers, rings doorbells, and drains the completion queue on a pump thread, waking
/// whoever waits on a task and keeping failures of fire-and-forget tasks for the stream's next
/// synchronisation. It holds no secret and is not trusted by anyone.
/// </summary>
public sealed class NpuDriver : IDisposable
{
    private readonly ConcurrentDictionary<ulong, Waiter> _waiters = new();
    private readonly ConcurrentDictionary<int, ConcurrentQueue<CompletionEntry>> _streamErrors = new();
    private readonly object _submitGate = new();
    private readonly TaskWriter _writer = new();
    private readonly Thread _pump;
    private long _nextTaskId;
    private volatile bool _stopping;

    /// <summary>Binds a driver to a device's hardware interface.</summary>
    public NpuDriver(NpuDevice device)
    {
        Device = device ?? throw new ArgumentNullException(nameof(device));
        _pump = new Thread(Pump) { IsBackground = true, Name = $"NPU completion pump ({device.Properties.Name})" };
        _pump.Start();
    }

    /// <summary>The device's hardware interface.</summary>
    public NpuDevice Device { get; }

    /// <summary>Optional observer of every byte the host hands the device or gets back (audit transcripts).</summary>
    public IHostTranscript? Transcript { get; set; }

    /// <summary>A fresh task id.</summary>
    public ulong NextTaskId() => (ulong)Interlocked.Increment(ref _nextTaskId);

    /// <summary>
    /// Encodes tasks with <paramref name="encode"/> (which receives the writer), submits them to
    /// <paramref name="stream"/> and rings its doorbell. Waits for room when the task buffer is full.
    /// </summary>
    public void Submit(int stream, Action<TaskWriter> encode)
    {
        lock (_submitGate)
        {
            _writer.Clear();
            encode(_writer);
            SubmitBytes(stream, _writer.Written);
        }
    }

    /// <summary>Submits raw task bytes and rings the doorbell.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void SubmitBytes(int stream, ReadOnlySpan<byte> tasks)
    {
        Transcript?.Record(TranscriptChannel.TaskBuffer, tasks);
        var spin = new SpinWait();
        while (!Device.Submit(stream, tasks))
        {
            Device.RingDoorbell(stream);
            spin.SpinOnce();
        }
        Device.RingDoorbell(stream);
    }

    /// <summary>
    /// Submits one task that posts a completion, and waits for it. Returns the completion's result;
    /// throws <see cref="NpuException"/> if the task (or an earlier unsynchronised task on the stream) failed.
    /// </summary>
    public ulong Call(int stream, Action<TaskWriter, ulong> encode)
    {
        ulong id = NextTaskId();
        using var waiter = new Waiter();
        _waiters[id] = waiter;
        try
        {
            Submit(stream, w => encode(w, id));
            waiter.Done.Wait();
        }
        finally
        {
            _waiters.TryRemove(id, out _);
        }
        CompletionEntry entry = waiter.Entry;
        ThrowPendingErrors(stream);
        if (!entry.Succeeded)
        {
            throw Failure(entry);
        }
        return entry.Result;
    }

    /// <summary>
    /// Submits <paramref name="tasks"/> exactly as given — any bytes, unchecked, as a malicious host
    /// may — and waits up to <paramref name="timeout"/> for the completion carrying
    /// <paramref name="taskId"/>. Never throws for a failed task: the entry is the answer. Returns an
    /// entry with <see cref="CompletionStatus.InvalidTask"/> and a "no completion" detail on timeout.
    /// </summary>
    public CompletionEntry SubmitRaw(int stream, ReadOnlySpan<byte> tasks, ulong taskId, TimeSpan timeout)
    {
        using var waiter = new Waiter();
        _waiters[taskId] = waiter;
        try
        {
            lock (_submitGate)
            {
                SubmitBytes(stream, tasks);
            }
            return waiter.Done.Wait(timeout)
                ? waiter.Entry
                : new CompletionEntry(taskId, stream, 0, CompletionStatus.InvalidTask, 0, 0, $"no completion for task {taskId} within {timeout}");
        }
        finally
        {
            _waiters.TryRemove(taskId, out _);
        }
    }

    /// <summary>
    /// Submits <paramref name="tasks"/> (already encoded; the task <paramref name="waitFor"/> among
    /// them must post a completion) and waits for that completion: one doorbell and one wake-up for a
    /// whole inference step. Reuses one waiter, so a step allocates no event.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ulong SubmitAndWait(int stream, ReadOnlySpan<byte> tasks, ulong waitFor)
    {
        lock (_stepGate)
        {
            _stepWaiter.Done.Reset();
            _waiters[waitFor] = _stepWaiter;
            try
            {
                SubmitBytes(stream, tasks);
                _stepWaiter.Done.Wait();
            }
            finally
            {
                _waiters.TryRemove(waitFor, out _);
            }
            CompletionEntry entry = _stepWaiter.Entry;
            ThrowPendingErrors(stream);
            if (!entry.Succeeded)
            {
                throw Failure(entry);
            }
            return entry.Result;
        }
    }

    private readonly object _stepGate = new();
    private readonly Waiter _stepWaiter = new();

    /// <summary>Waits until every task submitted to <paramref name="stream"/> so far has run; throws the first failure among them.</summary>
    public void Synchronize(int stream) => Call(stream, static (w, id) => w.Nop(id, TaskOptions.Notify));

    /// <summary>Throws (and clears) failures that fire-and-forget tasks on <paramref name="stream"/> reported.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void ThrowPendingErrors(int stream)
    {
        if (_streamErrors.TryGetValue(stream, out var errors) && errors.TryDequeue(out CompletionEntry first))
        {
            errors.Clear();
            throw Failure(first);
        }
    }

    private static NpuException Failure(CompletionEntry entry) =>
        entry.Status == CompletionStatus.OutOfMemory ? new NpuOutOfMemoryException(entry) : new NpuException(entry);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Pump()
    {
        while (!_stopping)
        {
            if (!Device.WaitForCompletion(TimeSpan.FromMilliseconds(100), out CompletionEntry entry))
            {
                continue;
            }
            Transcript?.RecordCompletion(entry);
            if (_waiters.TryGetValue(entry.TaskId, out Waiter? waiter) && entry.TaskId != 0)
            {
                waiter.Entry = entry;
                waiter.Done.Set();
            }
            else if (!entry.Succeeded)
            {
                _streamErrors.GetOrAdd(entry.Stream, _ => new ConcurrentQueue<CompletionEntry>()).Enqueue(entry);
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stopping = true;
        _pump.Join();
        _stepWaiter.Dispose();
    }

    private sealed class Waiter : IDisposable
    {
        public readonly ManualResetEventSlim Done = new(false);
        public CompletionEntry Entry;

        public void Dispose() => Done.Dispose();
    }
}
