using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>Row-wise softmax on the vector unit.</summary>
internal static class SoftmaxKernels
{
    /// <summary>
    /// y[r, :] = exp(x[r, :] - max) / Σ exp(x[r, :] - max) for each of <paramref name="rows"/> rows of
    /// <paramref name="cols"/> columns. Subtracting the row maximum keeps every exponent ≤ 0, so large
    /// logits cannot overflow. y may alias x.
    /// </summary>
    public static void Softmax(ReadOnlySpan<float> x, Span<float> y, int rows, int cols)
    {
        Validate(x, y, rows, cols);
        RowRange(ref MemoryMarshal.GetReference(x), ref MemoryMarshal.GetReference(y), 0, rows, cols);
    }

    /// <summary>As <see cref="Softmax(ReadOnlySpan{float}, Span{float}, int, int)"/>, blocks of rows across the grid.</summary>
    public static unsafe void Softmax(AiCoreGrid grid, ReadOnlySpan<float> x, Span<float> y, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(grid);
        Validate(x, y, rows, cols);
        long total = (long)rows * cols;
        if (total < Elementwise.ParallelThreshold || rows == 1 || grid.CoreCount == 1)
        {
            RowRange(ref MemoryMarshal.GetReference(x), ref MemoryMarshal.GetReference(y), 0, rows, cols);
            return;
        }
        // About 16K elements per block: enough to amortise the hand-out, small enough to balance.
        int rowsPerBlock = (int)Math.Clamp((1 << 14) / Math.Max(cols, 1), 1, rows);
        fixed (float* px = x, py = y)
        {
            var kernel = new RowsKernel { X = px, Y = py, Rows = rows, Cols = cols, RowsPerBlock = rowsPerBlock };
            grid.Launch((rows + rowsPerBlock - 1) / rowsPerBlock, ref kernel);
        }
    }

    /// <summary>Softmax of one row in place.</summary>
    public static void SoftmaxInPlace(Span<float> x) => Row(ref MemoryMarshal.GetReference(x), ref MemoryMarshal.GetReference(x), x.Length);

    internal static void Row(ref float x, ref float y, int n)
    {
        if (n == 0)
        {
            return;
        }
        float max = Reductions.Max(ref x, n);
        float sum = Reductions.ExpShiftedSum(ref x, ref y, n, max);
        Reductions.ScaleInPlace(ref y, n, 1f / sum);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowRange(ref float x, ref float y, int first, int end, int cols)
    {
        for (int r = first; r < end; r++)
        {
            nint offset = (nint)r * cols;
            Row(ref Unsafe.Add(ref x, offset), ref Unsafe.Add(ref y, offset), cols);
        }
    }

    private static void Validate(ReadOnlySpan<float> x, Span<float> y, int rows, int cols)
    {
        KernelArgs.RequireAtLeast(rows, 0, nameof(rows));
        KernelArgs.RequireAtLeast(cols, 0, nameof(cols));
        KernelArgs.RequireLength(x.Length, (long)rows * cols, nameof(x));
        KernelArgs.RequireLength(y.Length, (long)rows * cols, nameof(y));
        KernelArgs.RequireSameOrDisjoint(x, y, nameof(x), nameof(y));
    }

    private unsafe struct RowsKernel : IBlockKernel
    {
        public float* X;
        public float* Y;
        public int Rows;
        public int Cols;
        public int RowsPerBlock;

        public readonly void Execute(int block)
        {
            int first = block * RowsPerBlock;
            RowRange(ref *X, ref *Y, first, Math.Min(first + RowsPerBlock, Rows), Cols);
        }
    }
}
