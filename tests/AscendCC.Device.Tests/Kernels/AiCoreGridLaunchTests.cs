using AscendCC.Device.AiCore;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// The grid's hand-out: each core claims its own range of a launch's blocks, then what is left of the
/// others'. Every block must run exactly once whatever the block and core counts, a core that does not
/// run (asleep, descheduled, stuck in a block) must lose the rest of its range to the cores that do, and
/// a failing block must fail its launch alone.
/// </summary>
public unsafe class AiCoreGridLaunchTests
{
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4)]
    public void EveryBlockRunsOnceInEveryLaunch(int cores)
    {
        using var grid = new AiCoreGrid(cores);
        var random = new Random(cores);
        int[] counts = new int[600];
        for (int launch = 0; launch < 3000; launch++)
        {
            // Fewer blocks than cores, a few, and many; now and then blocks long enough for every core to join.
            int blocks = launch % 7 == 0 ? random.Next(1, cores + 1) : random.Next(1, counts.Length + 1);
            Array.Clear(counts, 0, blocks);
            fixed (int* p = counts)
            {
                var kernel = new CountingKernel { Counts = p, Spin = launch % 5 == 0 ? 200 : 0 };
                grid.Launch(blocks, ref kernel);
            }
            for (int b = 0; b < blocks; b++)
            {
                Assert.That(counts[b], Is.EqualTo(1), $"launch {launch}: block {b} of {blocks} on {cores} cores");
            }
        }
    }

    /// <summary>
    /// Every block a worker thread claims waits until all the others have run: the launching core must
    /// run every block but those, its own range and the workers' ranges alike. Without taking over the
    /// others' ranges the launch would never end (the test gives it 20 seconds).
    /// </summary>
    [TestCase(2, 16)]
    [TestCase(3, 30)]
    [TestCase(4, 9)]
    public void ACoreThatDoesNotRunLosesItsRangeToTheOthers(int cores, int blocks)
    {
        using var grid = new AiCoreGrid(cores);
        for (int launch = 0; launch < 20; launch++)
        {
            StallState? launched = null;
            var run = Task.Run(() =>
            {
                launched = new StallState(blocks, Environment.CurrentManagedThreadId);
                var kernel = new StallingKernel { State = launched };
                grid.Launch(blocks, ref kernel);
            });
            Assert.That(run.Wait(20_000), Is.True, $"launch {launch} did not end: the blocks of a stuck core's range were left to it");
            using StallState state = launched!;
            Assert.Multiple(() =>
            {
                Assert.That(state.Runs, Is.All.EqualTo(1), $"launch {launch}: every block once");
                Assert.That(state.Held, Is.LessThanOrEqualTo(cores - 1), "a worker holds at most the one block it is stuck in");
                Assert.That(state.RunByLauncher, Is.EqualTo(blocks - state.Held), "the launching core ran every block the workers did not hold");
            });
        }
    }

    /// <summary>
    /// A claim word holds the low 32 bits of the launch count: a long-running device passes 2³¹ and
    /// 2³² launches (at 75 000 launches a second, after 8 and 16 hours), and must hand out every block
    /// there as before.
    /// </summary>
    [TestCase(int.MaxValue - 3L)]
    [TestCase(uint.MaxValue - 3L)]
    [TestCase(long.MaxValue / 2)]
    public void LaunchesPastTheCountersWrapRunEveryBlockOnce(long launchesSoFar)
    {
        using var grid = new AiCoreGrid(2);
        typeof(AiCoreGrid).GetField("_sequence", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.SetValue(grid, launchesSoFar);
        int[] counts = new int[40];
        for (int launch = 0; launch < 8; launch++)
        {
            Array.Clear(counts);
            fixed (int* p = counts)
            {
                var kernel = new CountingKernel { Counts = p, Spin = 500 };
                var run = Task.Run(() => grid.Launch(counts.Length, ref kernel));
                Assert.That(run.Wait(20_000), Is.True, $"launch {launchesSoFar + launch + 1} did not end");
            }
            Assert.That(counts, Is.All.EqualTo(1), $"launch {launchesSoFar + launch + 1}");
        }
    }

    [Test]
    public void AFailingBlockFailsItsLaunchAndTheNextLaunchRunsEveryBlock()
    {
        using var grid = new AiCoreGrid(2);
        int[] counts = new int[64];
        fixed (int* p = counts)
        {
            var failing = new FailingKernel { Counts = p, FailAt = 37 };
            var thrown = Assert.Throws<InvalidOperationException>(() => grid.Launch(64, ref failing));
            Assert.That(thrown!.Message, Does.Contain("block 37"));
            Assert.That(counts.Take(64), Is.All.LessThanOrEqualTo(1), "no block runs twice, even after a failure");

            Array.Clear(counts);
            var kernel = new CountingKernel { Counts = p };
            grid.Launch(64, ref kernel);
        }
        Assert.That(counts, Is.All.EqualTo(1));
    }

    private unsafe struct CountingKernel : IBlockKernel
    {
        public int* Counts;
        public int Spin;

        public readonly void Execute(int block)
        {
            Interlocked.Increment(ref Counts[block]);
            Thread.SpinWait(Spin);
        }
    }

    private unsafe struct FailingKernel : IBlockKernel
    {
        public int* Counts;
        public int FailAt;

        public readonly void Execute(int block)
        {
            Interlocked.Increment(ref Counts[block]);
            if (block == FailAt)
            {
                throw new InvalidOperationException($"block {block} failed");
            }
        }
    }

    private sealed class StallState(int blocks, int launcherThread) : IDisposable
    {
        private readonly ManualResetEventSlim _release = new();
        private int _runByLauncher;
        private int _held;

        public int[] Runs { get; } = new int[blocks];

        public int RunByLauncher => Volatile.Read(ref _runByLauncher);

        public int Held => Volatile.Read(ref _held);

        public void Run(int block)
        {
            Interlocked.Increment(ref Runs[block]);
            if (Environment.CurrentManagedThreadId == launcherThread)
            {
                Interlocked.Increment(ref _runByLauncher);
                ReleaseIfAllAccountedFor();
                return;
            }
            // A worker's block: stuck until every other block has run.
            Interlocked.Increment(ref _held);
            ReleaseIfAllAccountedFor();
            Assert.That(_release.Wait(15_000), Is.True, "the launching core never ran the blocks the stuck worker did not hold");
        }

        public void Dispose() => _release.Dispose();

        private void ReleaseIfAllAccountedFor()
        {
            if (Volatile.Read(ref _runByLauncher) + Volatile.Read(ref _held) == Runs.Length)
            {
                _release.Set();
            }
        }
    }

    private struct StallingKernel : IBlockKernel
    {
        public StallState State;

        public readonly void Execute(int block) => State.Run(block);
    }
}
