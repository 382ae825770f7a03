using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>Row normalisations: Llama's RMSNorm and torch's LayerNorm.</summary>
internal static class Norms
{
    /// <summary>
    /// Llama RMSNorm per row: y = x / sqrt(mean(x²) + eps) * weight, as llama2.c's rmsnorm
    /// (sum of squares in float32, then weight[j] * (inv * x[j])). y may alias x.
    /// </summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, int dim, float eps)
    {
        Validate(x, weight, default, y, rows, dim, allowEmptyAffine: false);
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float py = ref MemoryMarshal.GetReference(y);
        for (int r = 0; r < rows; r++)
        {
            RmsNormRow(ref Unsafe.Add(ref px, (nint)r * dim), ref MemoryMarshal.GetReference(weight), ref Unsafe.Add(ref py, (nint)r * dim), dim, eps);
        }
    }

    /// <inheritdoc cref="RmsNorm(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, float)"/>
    public static unsafe void RmsNorm(AiCoreGrid grid, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, int dim, float eps)
    {
        ArgumentNullException.ThrowIfNull(grid);
        if (!Parallel(grid, rows, dim))
        {
            RmsNorm(x, weight, y, rows, dim, eps);
            return;
        }
        Validate(x, weight, default, y, rows, dim, allowEmptyAffine: false);
        fixed (float* px = x, pw = weight, py = y)
        {
            var kernel = new RowsKernel { X = px, W = pw, Y = py, Rows = rows, Dim = dim, Eps = eps, RowsPerBlock = RowsPerBlock(rows, dim), Rms = true };
            grid.Launch((rows + kernel.RowsPerBlock - 1) / kernel.RowsPerBlock, ref kernel);
        }
    }

    /// <summary>
    /// torch.nn.functional.layer_norm over the last dimension: y = (x - mean) / sqrt(var + eps) * weight + bias,
    /// with the biased variance. An empty <paramref name="weight"/> or <paramref name="bias"/> means none
    /// (as torch's None). y may alias x.
    /// </summary>
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y, int rows, int dim, float eps)
    {
        Validate(x, weight, bias, y, rows, dim, allowEmptyAffine: true);
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float py = ref MemoryMarshal.GetReference(y);
        for (int r = 0; r < rows; r++)
        {
            LayerNormRow(ref Unsafe.Add(ref px, (nint)r * dim), weight, bias, ref Unsafe.Add(ref py, (nint)r * dim), dim, eps);
        }
    }

    /// <inheritdoc cref="LayerNorm(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, float)"/>
    public static unsafe void LayerNorm(AiCoreGrid grid, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y, int rows, int dim, float eps)
    {
        ArgumentNullException.ThrowIfNull(grid);
        if (!Parallel(grid, rows, dim))
        {
            LayerNorm(x, weight, bias, y, rows, dim, eps);
            return;
        }
        Validate(x, weight, bias, y, rows, dim, allowEmptyAffine: true);
        fixed (float* px = x, pw = weight, pb = bias, py = y)
        {
            var kernel = new RowsKernel
            {
                X = px, W = pw, B = pb, WLength = weight.Length, BLength = bias.Length, Y = py,
                Rows = rows, Dim = dim, Eps = eps, RowsPerBlock = RowsPerBlock(rows, dim), Rms = false,
            };
            grid.Launch((rows + kernel.RowsPerBlock - 1) / kernel.RowsPerBlock, ref kernel);
        }
    }

    private static bool Parallel(AiCoreGrid grid, int rows, int dim) =>
        rows > 1 && grid.CoreCount > 1 && (long)rows * dim >= Elementwise.ParallelThreshold;

    private static int RowsPerBlock(int rows, int dim) => Math.Clamp((1 << 14) / Math.Max(dim, 1), 1, rows);

    private static void RmsNormRow(ref float x, ref float weight, ref float y, int dim, float eps)
    {
        float ss = Reductions.SumOfSquares(ref x, dim) / dim + eps;
        float inv = 1f / MathF.Sqrt(ss);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= dim - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                (Vector512.LoadUnsafe(ref weight, (nuint)i) * (Vector512.LoadUnsafe(ref x, (nuint)i) * inv)).StoreUnsafe(ref y, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= dim - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                (Vector256.LoadUnsafe(ref weight, (nuint)i) * (Vector256.LoadUnsafe(ref x, (nuint)i) * inv)).StoreUnsafe(ref y, (nuint)i);
            }
        }
        for (; i < dim; i++)
        {
            Unsafe.Add(ref y, i) = Unsafe.Add(ref weight, i) * (inv * Unsafe.Add(ref x, i));
        }
    }

    // Two passes (mean, then squared deviations) rather than E[x²] - E[x]²: the one-pass form
    // cancels catastrophically when |mean| is large relative to the spread.
    private static void LayerNormRow(ref float x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, ref float y, int dim, float eps)
    {
        float mean = Reductions.Sum(ref x, dim) / dim;
        float var = SumOfSquaredDeviations(ref x, dim, mean) / dim;
        float inv = 1f / MathF.Sqrt(var + eps);
        // (x - mean) * inv, then the affine part as separate in-place passes keeps one loop per case.
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= dim - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                ((Vector512.LoadUnsafe(ref x, (nuint)i) - Vector512.Create(mean)) * inv).StoreUnsafe(ref y, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= dim - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                ((Vector256.LoadUnsafe(ref x, (nuint)i) - Vector256.Create(mean)) * inv).StoreUnsafe(ref y, (nuint)i);
            }
        }
        for (; i < dim; i++)
        {
            Unsafe.Add(ref y, i) = (Unsafe.Add(ref x, i) - mean) * inv;
        }
        var row = MemoryMarshal.CreateSpan(ref y, dim);
        if (!weight.IsEmpty)
        {
            Elementwise.Binary(default(Elementwise.MulOp), row, weight, row);
        }
        if (!bias.IsEmpty)
        {
            Elementwise.Binary(default(Elementwise.AddOp), row, bias, row);
        }
    }

    private static float SumOfSquaredDeviations(ref float x, int n, float mean)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var acc = Vector512<float>.Zero;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var d = Vector512.LoadUnsafe(ref x, (nuint)i) - Vector512.Create(mean);
                acc = Vector512.FusedMultiplyAdd(d, d, acc);
            }
            sum = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var d = Vector256.LoadUnsafe(ref x, (nuint)i) - Vector256.Create(mean);
                acc = Vector256.FusedMultiplyAdd(d, d, acc);
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++)
        {
            float d = Unsafe.Add(ref x, i) - mean;
            sum = MathF.FusedMultiplyAdd(d, d, sum);
        }
        return sum;
    }

    private static void Validate(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y, int rows, int dim, bool allowEmptyAffine)
    {
        KernelArgs.RequireAtLeast(rows, 0, nameof(rows));
        KernelArgs.RequireAtLeast(dim, 1, nameof(dim));
        KernelArgs.RequireLength(x.Length, (long)rows * dim, nameof(x));
        KernelArgs.RequireLength(y.Length, (long)rows * dim, nameof(y));
        KernelArgs.RequireSameOrDisjoint(x, y, nameof(x), nameof(y));
        if (!(allowEmptyAffine && weight.IsEmpty))
        {
            KernelArgs.RequireLength(weight.Length, dim, nameof(weight));
        }
        if (allowEmptyAffine && !bias.IsEmpty)
        {
            KernelArgs.RequireLength(bias.Length, dim, nameof(bias));
        }
    }

    private unsafe struct RowsKernel : IBlockKernel
    {
        public float* X;
        public float* W;
        public float* B;
        public int WLength;
        public int BLength;
        public float* Y;
        public int Rows;
        public int Dim;
        public float Eps;
        public int RowsPerBlock;
        public bool Rms;

        public readonly void Execute(int block)
        {
            int first = block * RowsPerBlock;
            int end = Math.Min(first + RowsPerBlock, Rows);
            for (int r = first; r < end; r++)
            {
                float* x = X + (nint)r * Dim;
                float* y = Y + (nint)r * Dim;
                if (Rms)
                {
                    RmsNormRow(ref *x, ref *W, ref *y, Dim, Eps);
                }
                else
                {
                    LayerNormRow(ref *x, new ReadOnlySpan<float>(W, WLength), new ReadOnlySpan<float>(B, BLength), ref *y, Dim, Eps);
                }
            }
        }
    }
}
