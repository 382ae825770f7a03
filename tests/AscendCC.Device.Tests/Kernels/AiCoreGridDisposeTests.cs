using AscendCC.Device.AiCore;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// The matrix tests create and dispose their own grids; disposal used to throw for a one-core grid
/// (SemaphoreSlim.Release(0)) and on a second call.
/// </summary>
public class AiCoreGridDisposeTests
{
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void DisposeIsCleanAndIdempotent(int cores)
    {
        var grid = new AiCoreGrid(cores);
        var kernel = new CountingKernel();
        grid.Launch(8, ref kernel);
        Assert.That(kernel.Count, Is.EqualTo(8));
        Assert.DoesNotThrow(grid.Dispose);
        Assert.DoesNotThrow(grid.Dispose);
    }

    private struct CountingKernel : IBlockKernel
    {
        private int _count;

        public readonly int Count => _count;

        public void Execute(int block) => Interlocked.Increment(ref _count);
    }
}
