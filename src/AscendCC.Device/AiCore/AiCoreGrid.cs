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
/// Each core owns a contiguous range of a launch's blocks and claims them on its own cache line, then
/// takes what is left of the others' ranges, one block at a time: a core that runs late, slow or not
/// at all loses its blocks to the cores that run, as with one shared ticket, but a claim no longer
/// moves a line between cores. Measured (a harness of blocks that spin 1 µs, both cores, 2026-12-05,
/// builds alternated): 16 blocks 10.5 → 9.7 µs, 64 blocks 40.1 → 35.7 µs; the linears of one 110M
/// layer at one token from the L3 (Q4_0 panels) 50.3–51.5 → 45.6–46.6 µs.
/// A launch waits only for the blocks that were handed out, never for a worker to check in: on a
/// loaded machine a worker may be descheduled or asleep for milliseconds, and a launch of a few
/// microseconds of work must not wait for it (the launching core then simply runs every block).
/// </summary>
internal sealed unsafe class AiCoreGrid : IDisposable
{
    private const int SpinIterations = 20_000;

    /// <summary>Spins left to a worker once its launcher has said it has nothing queued (<see cref="Rest"/>).</summary>
    private const int RestSpinIterations = 100;

    /// <summary>Low half of a core's claim word while no launch is open: no block index is below it.</summary>
    private const uint Closed = uint.MaxValue;

    /// <summary>Bytes of one core's slot: its claim word, range end and done count, two cache lines apart from the next core's (the adjacent-line prefetcher pairs lines).</summary>
    private const int SlotBytes = 128;

    private static readonly Lazy<AiCoreGrid> SharedGrid = new(() => new AiCoreGrid(Environment.ProcessorCount));

    private readonly Thread[] _workers;
    private readonly SemaphoreSlim _wake;
    private readonly object _launchLock = new();

    // The launch in flight. Written by the launching thread only while every claim word is closed.
    private delegate*<void*, int, void> _invoke;
    private void* _state;

    // Per core (the launcher is core 0, worker i is core i + 1), in a slot of its own: the claim word
    // (high 32 bits the launch's sequence number, low 32 the next block of the core's range, or
    // Closed), the range's end, and the number of blocks the core has run, ever. A core claims a
    // block by compare-and-swap on a whole claim word — its own range's first, then, once that is
    // used up, the others' — so a claim succeeds only if no new launch was opened since the core read
    // the launch's fields (the launcher closes every word, and so changes it, before rewriting them).
    private readonly byte* _slots;

    // The sequence number of the launch in flight (or of the last one), published after its words.
    private long _sequence;
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
        _slots = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(coreCount * SlotBytes), 64);
        for (int c = 0; c < coreCount; c++)
        {
            *Word(c) = Closed;
            *End(c) = 0;
            *Done(c) = 0;
        }
        _wake = new SemaphoreSlim(0);
        _workers = new Thread[coreCount - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            int core = i + 1;
            _workers[i] = new Thread(() => WorkerLoop(core)) { IsBackground = true, Name = $"AI Core {core}" };
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
                long sequence = _sequence + 1;
                _invoke = &Invoke<TKernel>;
                _state = state;
                _failure = null;
                // Each core's range of blocks, and what the cores had run before this launch.
                long before = 0;
                for (int c = 0; c < CoreCount; c++)
                {
                    *End(c) = (int)((long)blocks * (c + 1) / CoreCount);
                    before += Volatile.Read(ref *Done(c));
                }
                // Open: the release writes publish the fields above to any core that reads a word.
                for (int c = 0; c < CoreCount; c++)
                {
                    Volatile.Write(ref *Word(c), OpenWord(sequence, (uint)((long)blocks * c / CoreCount)));
                }
                Volatile.Write(ref _sequence, sequence);
                Interlocked.Increment(ref _generation);
                if (Volatile.Read(ref _sleepingWorkers) > 0)
                {
                    _wake.Release(_workers.Length);
                }

                RunBlocks(0, sequence);

                var spin = new SpinWait();
                while (DoneSum() - before < blocks)
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                }
                // Close before the fields can change: a late core's claim now fails.
                for (int c = 0; c < CoreCount; c++)
                {
                    Volatile.Write(ref *Word(c), OpenWord(sequence, Closed));
                }
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

    /// <summary>
    /// Core <paramref name="core"/>'s part of launch <paramref name="sequence"/>: the blocks of its own
    /// range, then whatever is left of the others' (a core that is late, descheduled or asleep loses
    /// its range to those that are running), each claimed on the word of the range it belongs to.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunBlocks(int core, long sequence)
    {
        var invoke = _invoke;
        var state = _state;
        long* done = Done(core);
        for (int i = 0; i < CoreCount; i++)
        {
            int range = core + i < CoreCount ? core + i : core + i - CoreCount;
            long* word = Word(range);
            while (true)
            {
                long claim = Volatile.Read(ref *word);
                // A word of another launch: this core read the fields of one that is over.
                if ((uint)((ulong)claim >> 32) != (uint)sequence)
                {
                    return;
                }
                uint block = (uint)claim;
                if (block >= (uint)Volatile.Read(ref *End(range)))
                {
                    break;
                }
                if (Interlocked.CompareExchange(ref *word, claim + 1, claim) != claim)
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
                // Only this core writes its count; the launcher reads every core's.
                Volatile.Write(ref *done, *done + 1);
            }
        }
    }

    /// <summary>
    /// A claim word: the launch's sequence number in the high half (its low 32 bits: the count wraps,
    /// and only equality matters), <paramref name="next"/> in the low half.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long OpenWord(long sequence, uint next) => (long)(((ulong)(uint)sequence << 32) | next);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long* Word(int core) => (long*)(_slots + (core * SlotBytes));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int* End(int core) => (int*)(_slots + (core * SlotBytes) + 8);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long* Done(int core) => (long*)(_slots + (core * SlotBytes) + 64);

    private long DoneSum()
    {
        long sum = 0;
        for (int c = 0; c < CoreCount; c++)
        {
            sum += Volatile.Read(ref *Done(c));
        }
        return sum;
    }

    private void WorkerLoop(int core)
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
            RunBlocks(core, Volatile.Read(ref _sequence));
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
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_slots);
    }
}
