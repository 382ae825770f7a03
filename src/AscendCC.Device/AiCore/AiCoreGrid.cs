using System.Runtime.CompilerServices;

// Kernel structs may hold managed references (arrays); we pin them for the launch, which is safe.
#pragma warning disable CS8500

namespace AscendCC.Device.AiCore;

/// <summary>
/// A block of work a kernel splits across AI Cores. Implemented by small structs so that a launch
/// allocates nothing: the grid passes a pointer to the caller's struct to every core.
/// <para>
/// Kernel bodies (and the grid's and scheduler's launch path) carry
/// <see cref="MethodImplOptions.AggressiveOptimization"/>: a kernel is hot from its first launch,
/// and tiered compilation left many at tier 0 (or instrumented tier 0) for the whole of a short
/// generation — stories260K decode steps took 1.2 ms instead of 0.3 ms in a fresh process. The
/// exception is attention's prefill path, where tier 1 with profile-guided optimisation was faster
/// (see <c>Attention.SingleRow</c>).
/// </para>
/// </summary>
internal interface IBlockKernel
{
    /// <summary>Runs block <paramref name="block"/> of the launch; blocks may run in any order and concurrently.</summary>
    void Execute(int block);
}

/// <summary>
/// The device's AI Cores, mapped onto CPU threads. Core 0 is the thread that launches the kernel
/// (the task scheduler); cores 1..N-1 are dedicated worker threads that spin briefly and then sleep,
/// so back-to-back decode kernels do not pay a futex wake-up each, and an idle device burns no CPU.
/// When the launcher runs out of queued work it says so (<see cref="Rest"/>) and the workers sleep
/// at once, handing their CPUs to the host threads that collect the result.
/// Blocks are handed out through one atomic ticket: cheap, and balanced when blocks are uneven.
/// A launch waits only for the blocks that were handed out, never for a worker to check in: on a
/// loaded machine a worker may be descheduled or asleep for milliseconds, and a launch of a few
/// microseconds of work must not wait for it (the launching core then simply runs every block).
/// </summary>
internal sealed unsafe class AiCoreGrid : IDisposable
{
    private const int SpinIterations = 20_000;

    /// <summary>Spins left to a worker once its launcher has said it has nothing queued (<see cref="Rest"/>).</summary>
    private const int RestSpinIterations = 100;

    /// <summary>Low half of <see cref="_ticket"/> while no launch is open: no block index is below it.</summary>
    private const uint Closed = uint.MaxValue;

    private static readonly Lazy<AiCoreGrid> SharedGrid = new(() => new AiCoreGrid(Environment.ProcessorCount));

    private readonly Thread[] _workers;
    private readonly SemaphoreSlim _wake;
    private readonly object _launchLock = new();

    // The launch in flight. Written by the launching thread only while the ticket is closed.
    private delegate*<void*, int, void> _invoke;
    private void* _state;
    private int _blockCount;
    private int _doneBlocks;

    // High 32 bits: the launch's sequence number; low 32: the next block to hand out, or Closed. A
    // core claims a block by compare-and-swap on the whole word, so a claim succeeds only if no new
    // launch was opened since the core read the launch's fields (the launcher closes the ticket, and
    // so changes it, before rewriting them).
    private long _ticket = Closed;
    private long _generation;

    // The generation at which a launcher last said it had nothing more queued.
    private long _restAt = -1;
    private volatile bool _disposed;

    /// <summary>The grid shared by every device in the process: one AI Core per CPU thread.</summary>
    public static AiCoreGrid Shared => SharedGrid.Value;

    /// <summary>Creates a grid with <paramref name="coreCount"/> cores (including the calling thread).</summary>
    public AiCoreGrid(int coreCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(coreCount, 1);
        CoreCount = coreCount;
        _wake = new SemaphoreSlim(0);
        _workers = new Thread[coreCount - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"AI Core {i + 1}" };
            _workers[i].Start();
        }
    }

    /// <summary>Number of AI Cores, the launching thread included.</summary>
    public int CoreCount { get; }

    /// <summary>
    /// Runs <paramref name="blocks"/> blocks of <paramref name="kernel"/> across the cores and returns
    /// when all have finished. Exceptions from a block are rethrown on the launching thread.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Launch<TKernel>(int blocks, ref TKernel kernel) where TKernel : struct, IBlockKernel
    {
        if (blocks <= 0)
        {
            return;
        }
        if (blocks == 1 || _workers.Length == 0)
        {
            for (int b = 0; b < blocks; b++)
            {
                kernel.Execute(b);
            }
            return;
        }

        lock (_launchLock)
        {
            fixed (TKernel* state = &kernel)
            {
                long sequence = (Volatile.Read(ref _ticket) >> 32) + 1;
                _invoke = &Invoke<TKernel>;
                _state = state;
                _blockCount = blocks;
                _doneBlocks = 0;
                _failure = null;
                // Open: the release write publishes the fields above to any core that reads the ticket.
                Volatile.Write(ref _ticket, sequence << 32);
                Interlocked.Increment(ref _generation);
                if (Volatile.Read(ref _sleepingWorkers) > 0)
                {
                    _wake.Release(_workers.Length);
                }

                RunBlocks();

                var spin = new SpinWait();
                while (Volatile.Read(ref _doneBlocks) != blocks)
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                }
                // Close before the fields can change: a late core's claim now fails.
                Volatile.Write(ref _ticket, (sequence << 32) | Closed);
                _state = null;
            }
            if (_failure is { } failure)
            {
                _failure = null;
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            }
        }
    }

    /// <summary>
    /// Tells the workers that the launcher has nothing more queued (its task buffers are empty), so
    /// they stop spinning almost at once and sleep. Between two inference steps the CPU a spinning
    /// worker holds is exactly the one the host's driver and runtime threads need to hand the
    /// result back and submit the next step; on a machine with as many CPUs as AI Cores, the woken
    /// thread would otherwise queue behind the spinner until the operating system's next tick
    /// (milliseconds, against a step of a fraction of one). The next launch pays one wake-up, and
    /// its launcher does not wait for it.
    /// </summary>
    public void Rest() => Volatile.Write(ref _restAt, Volatile.Read(ref _generation));

    private Exception? _failure;
    private int _sleepingWorkers;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunBlocks()
    {
        while (true)
        {
            long ticket = Volatile.Read(ref _ticket);
            var invoke = _invoke;
            var state = _state;
            int count = _blockCount;
            uint block = (uint)ticket;
            if (block >= (uint)count)
            {
                return;
            }
            if (Interlocked.CompareExchange(ref _ticket, ticket + 1, ticket) != ticket)
            {
                continue;
            }
            // After a failure the remaining blocks are claimed but skipped, so every core finishes promptly.
            if (Volatile.Read(ref _failure) is null)
            {
                try
                {
                    invoke(state, (int)block);
                }
                catch (Exception ex)
                {
                    Interlocked.CompareExchange(ref _failure, ex, null);
                }
            }
            Interlocked.Increment(ref _doneBlocks);
        }
    }

    private void WorkerLoop()
    {
        long seen = 0;
        while (!_disposed)
        {
            long gen = Volatile.Read(ref _generation);
            if (gen == seen)
            {
                int spins = 0;
                while ((gen = Volatile.Read(ref _generation)) == seen && spins < SpinIterations && !_disposed)
                {
                    if (spins >= RestSpinIterations && Volatile.Read(ref _restAt) == seen)
                    {
                        break;
                    }
                    Thread.SpinWait(8);
                    spins++;
                }
                if (gen == seen)
                {
                    Interlocked.Increment(ref _sleepingWorkers);
                    // Re-check after announcing sleep: a launch may have started in between.
                    if (Volatile.Read(ref _generation) == seen && !_disposed)
                    {
                        _wake.Wait(50);
                    }
                    Interlocked.Decrement(ref _sleepingWorkers);
                    continue;
                }
            }
            seen = gen;
            // The launch may already be over (its launcher ran every block): then there is nothing to claim.
            RunBlocks();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Invoke<TKernel>(void* state, int block) where TKernel : struct, IBlockKernel
        => Unsafe.AsRef<TKernel>(state).Execute(block);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (_workers.Length > 0)
        {
            _wake.Release(_workers.Length);
        }
        // A worker may be just about to wait on the semaphore; disposing it under that worker would
        // throw ObjectDisposedException on a background thread and take the process down.
        foreach (Thread worker in _workers)
        {
            worker.Join();
        }
        _wake.Dispose();
    }
}
