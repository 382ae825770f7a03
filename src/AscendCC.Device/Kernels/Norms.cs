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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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

    // Two passes rather than E[x²] - E[x]², which cancels catastrophically when |mean| ≫ spread. The second
    // pass also sums the deviations themselves: the float32 first-pass mean is off by Σd/n, and folding that
    // back (the corrected two-pass algorithm) removes the mean's rounding from both the centre and the variance.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LayerNormRow(ref float x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, ref float y, int dim, float eps)
    {
        float roughMean = Reductions.Sum(ref x, dim) / dim;
        float sumSquares = SumOfDeviations(ref x, dim, roughMean, out float sumDeviations);
        float correction = sumDeviations / dim;
        float mean = roughMean + correction;
        float var = MathF.Max(sumSquares / dim - correction * correction, 0f);
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

    /// <summary>Σ (x - c)², with Σ (x - c) in <paramref name="sumDeviations"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float SumOfDeviations(ref float x, int n, float c, out float sumDeviations)
    {
        int i = 0;
        float squares = 0f;
        float deviations = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var centre = Vector512.Create(c);
            var accSquares = Vector512<float>.Zero;
            var accDeviations = Vector512<float>.Zero;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var d = Vector512.LoadUnsafe(ref x, (nuint)i) - centre;
                accSquares = Vector512.FusedMultiplyAdd(d, d, accSquares);
                accDeviations += d;
            }
            squares = Vector512.Sum(accSquares);
            deviations = Vector512.Sum(accDeviations);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var centre = Vector256.Create(c);
            var accSquares = Vector256<float>.Zero;
            var accDeviations = Vector256<float>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var d = Vector256.LoadUnsafe(ref x, (nuint)i) - centre;
                accSquares = Vector256.FusedMultiplyAdd(d, d, accSquares);
                accDeviations += d;
            }
            squares = Vector256.Sum(accSquares);
            deviations = Vector256.Sum(accDeviations);
        }
        for (; i < n; i++)
        {
            float d = Unsafe.Add(ref x, i) - c;
            squares = MathF.FusedMultiplyAdd(d, d, squares);
            deviations += d;
        }
        sumDeviations = deviations;
        return squares;
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

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
