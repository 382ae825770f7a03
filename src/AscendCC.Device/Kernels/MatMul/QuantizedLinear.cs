using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>
/// torch.nn.functional.linear with block-quantized weights (Q8_0 or Q4_0, see
/// <see cref="BlockMatrix{TFormat}"/>), in integer arithmetic as llama.cpp's Q8_0×Q8_0 and
/// Q4_0×Q8_0 vec_dot: x is quantized per block of 32 (<see cref="Q8_0Activations"/>), each block's
/// Σ q_w·q_x is formed exactly in int32 (<see cref="IInt8BlockDot"/>), and only then scaled by
/// d_w·d_x and accumulated in f32:
/// <code>y[t, j] = Σ_b (d_w[j, b] · d_x[t, b]) · Σ_{i in b} q_w[j, i] · q_x[t, i]  (+ bias[j])</code>
/// Decode (m ≤ <see cref="LinearKernel.GemvMaxRows"/>) streams W once in 4-row strips, 8.5 (Q8_0)
/// or 4.5 (Q4_0) bits a weight instead of bf16's 16, which is what makes it faster: decode is bound
/// by that stream. Prefill runs <see cref="QuantizedGemm"/> on VNNI machines; elsewhere the strip
/// kernel serves every m.
/// </summary>
internal static unsafe class QuantizedLinear
{
    /// <summary>y[m,n] = x[m,k] · W[n,k]ᵀ (+ bias) for W of <paramref name="wType"/> (Q8_0 or Q4_0); pointers valid and checked by the caller, k a multiple of 32.</summary>
    public static void Linear(AiCoreGrid grid, float* x, byte* w, ElementType wType, float* bias, float* y, int m, int k, int n, Int8DotIsa isa)
    {
        if (wType == ElementType.Q4_0)
        {
            Linear<Q4_0Format>(grid, x, w, bias, y, m, k, n, isa);
        }
        else
        {
            Linear<Q8_0Format>(grid, x, w, bias, y, m, k, n, isa);
        }
    }

    /// <summary>
    /// Up to three bias-free linears over one x (see <see cref="LinearKernel.LinearFused(AiCoreGrid, ReadOnlySpan{float}, ElementType, int, int, ReadOnlySpan{byte}, Span{float}, int, ReadOnlySpan{byte}, Span{float}, int, ReadOnlySpan{byte}, Span{float}, int)"/>):
    /// x is quantized once for all of them.
    /// </summary>
    public static void LinearFused(AiCoreGrid grid, float* x, ElementType wType, int m, int k, byte* w0, float* y0, int n0, byte* w1, float* y1, int n1, byte* w2, float* y2, int n2, Int8DotIsa isa)
    {
        if (wType == ElementType.Q4_0)
        {
            LinearFused<Q4_0Format>(grid, x, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, isa);
        }
        else
        {
            LinearFused<Q8_0Format>(grid, x, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, isa);
        }
    }

    private static void Linear<TF>(AiCoreGrid grid, float* x, byte* w, float* bias, float* y, int m, int k, int n, Int8DotIsa isa) where TF : struct, IBlockFormat
    {
        if (m == 0 || n == 0)
        {
            return;
        }
        if (k == 0)
        {
            FillWithBias(y, bias, m, n);
            return;
        }
        bool gemm = UsesGemm(m, isa);
        Activations a = Quantize(grid, x, m, k, offsetBinary: gemm, offsetSums: TF.OffsetBy8 && !gemm);
        if (gemm)
        {
            QuantizedGemm.Run<TF>(grid, a.Q, a.D, w, bias, y, m, k, n);
            return;
        }
        int rowsPerBlock = RowsPerBlock(grid, n);
        switch (isa)
        {
            case Int8DotIsa.AvxVnni:
                LaunchGemv<TF, Int8Dot.AvxVnniDot>(grid, a, w, bias, y, m, k, n, rowsPerBlock);
                break;
            case Int8DotIsa.Avx2:
                LaunchGemv<TF, Int8Dot.Avx2Dot>(grid, a, w, bias, y, m, k, n, rowsPerBlock);
                break;
            default:
                LaunchGemv<TF, Int8Dot.PortableDot>(grid, a, w, bias, y, m, k, n, rowsPerBlock);
                break;
        }
    }

    private static void LinearFused<TF>(AiCoreGrid grid, float* x, int m, int k, byte* w0, float* y0, int n0, byte* w1, float* y1, int n1, byte* w2, float* y2, int n2, Int8DotIsa isa)
        where TF : struct, IBlockFormat
    {
        if (m == 0)
        {
            return;
        }
        if (k == 0)
        {
            FillWithBias(y0, null, m, n0);
            FillWithBias(y1, null, m, n1);
            FillWithBias(y2, null, m, n2);
            return;
        }
        bool gemm = UsesGemm(m, isa);
        Activations a = Quantize(grid, x, m, k, offsetBinary: gemm, offsetSums: TF.OffsetBy8 && !gemm);
        if (gemm)
        {
            QuantizedGemm.Run<TF>(grid, a.Q, a.D, w0, null, y0, m, k, n0);
            QuantizedGemm.Run<TF>(grid, a.Q, a.D, w1, null, y1, m, k, n1);
            if (n2 > 0)
            {
                QuantizedGemm.Run<TF>(grid, a.Q, a.D, w2, null, y2, m, k, n2);
            }
            return;
        }
        int rowsPerBlock = RowsPerBlock(grid, n0 + n1 + n2);
        switch (isa)
        {
            case Int8DotIsa.AvxVnni:
                LaunchFused<TF, Int8Dot.AvxVnniDot>(grid, a, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, rowsPerBlock);
                break;
            case Int8DotIsa.Avx2:
                LaunchFused<TF, Int8Dot.Avx2Dot>(grid, a, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, rowsPerBlock);
                break;
            default:
                LaunchFused<TF, Int8Dot.PortableDot>(grid, a, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, rowsPerBlock);
                break;
        }
    }

    /// <summary>
    /// Prefill-sized inputs on VNNI hardware: there a packed, register-tiled product reuses each
    /// weight across many rows. Without VNNI the strip kernel serves every m (correct, not tuned).
    /// </summary>
    internal static bool UsesGemm(int m, Int8DotIsa isa) => m > LinearKernel.GemvMaxRows && isa == Int8DotIsa.AvxVnni;

    /// <summary>Quantized activations: q[m, k], d[m, k/32] and, for Q4_0's GEMV, the offset sums s[m, k/32, 8], in the launching thread's scratch.</summary>
    private readonly struct Activations(sbyte* q, float* d, int* s)
    {
        public readonly sbyte* Q = q;
        public readonly float* D = d;
        public readonly int* S = s;
    }

    private static Activations Quantize(AiCoreGrid grid, float* x, int m, int k, bool offsetBinary, bool offsetSums)
    {
        int blocks = k / BlockMatrix.BlockSize;
        long quantBytes = ((long)m * k + 63) & ~63L;
        long scaleBytes = (((long)m * blocks * sizeof(float)) + 63) & ~63L;
        long sumBytes = offsetSums ? (long)m * blocks * 8 * sizeof(int) : 0;
        byte* scratch = KernelScratch.QuantizedActivations(quantBytes + scaleBytes + sumBytes);
        var a = new Activations((sbyte*)scratch, (float*)(scratch + quantBytes), offsetSums ? (int*)(scratch + quantBytes + scaleBytes) : null);
        // Decode rows are a few microseconds of work: a launch would cost more than it saves.
        if (m <= LinearKernel.GemvMaxRows)
        {
            Q8_0Activations.QuantizeRows(x, k, 0, m, a.Q, a.D, offsetBinary);
            if (offsetSums)
            {
                Q8_0Activations.OffsetSums(a.Q, k, 0, m, a.S);
            }
        }
        else
        {
            var kernel = new QuantizeKernel { X = x, K = k, M = m, Q = a.Q, D = a.D, OffsetBinary = offsetBinary, RowsPerBlock = Math.Max(1, m / (4 * grid.CoreCount)) };
            grid.Launch((m + kernel.RowsPerBlock - 1) / kernel.RowsPerBlock, ref kernel);
        }
        if (offsetSums && m > LinearKernel.GemvMaxRows)
        {
            Q8_0Activations.OffsetSums(a.Q, k, 0, m, a.S);
        }
        return a;
    }

    private struct QuantizeKernel : IBlockKernel
    {
        public float* X;
        public sbyte* Q;
        public float* D;
        public int K, M, RowsPerBlock;
        public bool OffsetBinary;

        public readonly void Execute(int block)
        {
            int r0 = block * RowsPerBlock;
            Q8_0Activations.QuantizeRows(X, K, r0, Math.Min(M, r0 + RowsPerBlock), Q, D, OffsetBinary);
        }
    }

    private static void FillWithBias(float* y, float* bias, int m, int n)
    {
        for (int t = 0; t < m; t++)
        {
            var row = new Span<float>(y + (nint)t * n, n);
            if (bias != null)
            {
                new ReadOnlySpan<float>(bias, n).CopyTo(row);
            }
            else
            {
                row.Clear();
            }
        }
    }

    /// <summary>As the f32/bf16 GEMV: several blocks per core so the atomic hand-out evens out late starters; a multiple of the 4-row strip.</summary>
    private static int RowsPerBlock(AiCoreGrid grid, int rows) =>
        Math.Max(4, ((rows + 8 * grid.CoreCount - 1) / (8 * grid.CoreCount) + 3) & ~3);

    private static GemvKernel<TF, TDot> Part<TF, TDot>(Activations a, byte* w, float* bias, float* y, int m, int k, int n, int rowsPerBlock)
        where TF : struct, IBlockFormat
        where TDot : struct, IInt8BlockDot => new()
    {
        Xq = a.Q, Xd = a.D, Xs = a.S, Wq = BlockMatrix<TF>.Quants(w), Wd = BlockMatrix<TF>.Scales(w, n, k), Bias = bias, Y = y, M = m, K = k, N = n, RowsPerBlock = rowsPerBlock,
    };

    private static void LaunchGemv<TF, TDot>(AiCoreGrid grid, Activations a, byte* w, float* bias, float* y, int m, int k, int n, int rowsPerBlock)
        where TF : struct, IBlockFormat
        where TDot : struct, IInt8BlockDot
    {
        GemvKernel<TF, TDot> kernel = Part<TF, TDot>(a, w, bias, y, m, k, n, rowsPerBlock);
        grid.Launch((n + rowsPerBlock - 1) / rowsPerBlock, ref kernel);
    }

    private static void LaunchFused<TF, TDot>(AiCoreGrid grid, Activations a, int m, int k, byte* w0, float* y0, int n0, byte* w1, float* y1, int n1, byte* w2, float* y2, int n2, int rowsPerBlock)
        where TF : struct, IBlockFormat
        where TDot : struct, IInt8BlockDot
    {
        int blocks0 = (n0 + rowsPerBlock - 1) / rowsPerBlock, blocks1 = (n1 + rowsPerBlock - 1) / rowsPerBlock, blocks2 = (n2 + rowsPerBlock - 1) / rowsPerBlock;
        var kernel = new FusedBlocks<GemvKernel<TF, TDot>>
        {
            Part0 = Part<TF, TDot>(a, w0, null, y0, m, k, n0, rowsPerBlock),
            Part1 = Part<TF, TDot>(a, w1, null, y1, m, k, n1, rowsPerBlock),
            Part2 = Part<TF, TDot>(a, w2, null, y2, m, k, n2, rowsPerBlock),
            End0 = blocks0,
            End1 = blocks0 + blocks1,
        };
        grid.Launch(blocks0 + blocks1 + blocks2, ref kernel);
    }

    /// <summary>
    /// Each block owns a run of output rows, taken four at a time: four sequential quant streams keep
    /// the prefetchers busy, and each token's quantized x block is loaded once for the four rows.
    /// Tokens after the first re-read the strip from cache, so memory still sees W once.
    /// </summary>
    private struct GemvKernel<TF, TDot> : IBlockKernel
        where TF : struct, IBlockFormat
        where TDot : struct, IInt8BlockDot
    {
        public sbyte* Xq;
        public int* Xs;
        public byte* Wq;
        public float* Xd, Bias, Y;
        public ushort* Wd;
        public int M, K, N, RowsPerBlock;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int block)
        {
            int j0 = block * RowsPerBlock;
            int j1 = Math.Min(N, j0 + RowsPerBlock);
            int blocks = K / BlockMatrix.BlockSize;
            nint rowBytes = (nint)blocks * TF.QuantBytes;
            // The combined scales d_w·d_x of eight blocks for each of the four rows (and two tokens).
            float* scales = stackalloc float[2 * 4 * 8];
            float* sums = stackalloc float[8];
            int j = j0;
            for (; j + 4 <= j1; j += 4)
            {
                byte* w = Wq + j * rowBytes;
                ushort* d = Wd + (nint)j * blocks;
                int t = 0;
                // Two tokens per pass (a batched decode step): each block of the four rows is loaded
                // (and for Q4_0 unpacked) once for both. Each token's sums take the same steps as alone,
                // so the result is the single-token kernel's bit for bit.
                for (; t + 2 <= M; t += 2)
                {
                    Dot4x2(Xq + (nint)t * K, Xd + (nint)t * blocks, Xs + ((nint)t * blocks * 8), K, blocks, w, d, rowBytes, scales, sums);
                    for (int u = 0; u < 2; u++)
                    {
                        float* yt = Y + (nint)(t + u) * N + j;
                        for (int r = 0; r < 4; r++)
                        {
                            yt[r] = Bias != null ? sums[4 * u + r] + Bias[j + r] : sums[4 * u + r];
                        }
                    }
                }
                for (; t < M; t++)
                {
                    Dot4(Xq + (nint)t * K, Xd + (nint)t * blocks, Xs + ((nint)t * blocks * 8), w, d, rowBytes, blocks, scales, sums);
                    float* yt = Y + (nint)t * N + j;
                    for (int r = 0; r < 4; r++)
                    {
                        yt[r] = Bias != null ? sums[r] + Bias[j + r] : sums[r];
                    }
                }
            }
            for (; j < j1; j++)
            {
                for (int t = 0; t < M; t++)
                {
                    float s = Dot1(Xq + (nint)t * K, Xd + (nint)t * blocks, Xs + ((nint)t * blocks * 8), Wq + j * rowBytes, Wd + (nint)j * blocks, blocks, scales);
                    Y[(nint)t * N + j] = Bias != null ? s + Bias[j] : s;
                }
            }
        }

        /// <summary>
        /// sums[4u + r] = x_u · row r for two tokens (x, its block scales xd and offset sums xs; the
        /// second token's k, blocks and 8·blocks further on) and the four rows from <paramref name="w"/>.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Dot4x2(sbyte* x, float* xd, int* xs, int k, int blocks, byte* w, ushort* d, nint rowBytes, float* scales, float* sums)
        {
            sbyte* y = x + k;
            float* yd = xd + blocks;
            int* ys = xs + ((nint)blocks * 8);
            byte* w1 = w + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
            ushort* d1 = d + blocks, d2 = d1 + blocks, d3 = d2 + blocks;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
            byte* ahead = w + (4 * rowBytes);
            for (int g = 0; g < blocks; g += 8)
            {
                int count = Math.Min(8, blocks - g);
                CombineScales(d + g, xd + g, count, scales);
                CombineScales(d1 + g, xd + g, count, scales + 8);
                CombineScales(d2 + g, xd + g, count, scales + 16);
                CombineScales(d3 + g, xd + g, count, scales + 24);
                CombineScales(d + g, yd + g, count, scales + 32);
                CombineScales(d1 + g, yd + g, count, scales + 40);
                CombineScales(d2 + g, yd + g, count, scales + 48);
                CombineScales(d3 + g, yd + g, count, scales + 56);
                for (int b = 0; b < count; b++)
                {
                    nint at = (nint)(g + b) * TF.QuantBytes;
                    if (Sse.IsSupported && ((g + b) * TF.QuantBytes & 63) == 0)
                    {
                        Sse.Prefetch0(ahead + at);
                        Sse.Prefetch0(ahead + rowBytes + at);
                        Sse.Prefetch0(ahead + (2 * rowBytes) + at);
                        Sse.Prefetch0(ahead + (3 * rowBytes) + at);
                    }
                    nint xi = (nint)(g + b) * BlockMatrix.BlockSize;
                    Vector256<sbyte> xb = Vector256.Load(x + xi), yb = Vector256.Load(y + xi);
                    if (TF.OffsetBy8)
                    {
                        Vector256<int> cx = Vector256.Load(xs + ((nint)(g + b) * 8)), cy = Vector256.Load(ys + ((nint)(g + b) * 8));
                        Vector256<byte> n = TF.LoadOffset(w + at);
                        a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(cx, n, xb)), Vector256.Create(scales[b]), a0);
                        b0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(cy, n, yb)), Vector256.Create(scales[32 + b]), b0);
                        n = TF.LoadOffset(w1 + at);
                        a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(cx, n, xb)), Vector256.Create(scales[8 + b]), a1);
                        b1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(cy, n, yb)), Vector256.Create(scales[40 + b]), b1);
                        n = TF.LoadOffset(w2 + at);
                        a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(cx, n, xb)), Vector256.Create(scales[16 + b]), a2);
                        b2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(cy, n, yb)), Vector256.Create(scales[48 + b]), b2);
                        n = TF.LoadOffset(w3 + at);
                        a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(cx, n, xb)), Vector256.Create(scales[24 + b]), a3);
                        b3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(cy, n, yb)), Vector256.Create(scales[56 + b]), b3);
                        continue;
                    }
                    Vector256<sbyte> q = TF.Load(w + at);
                    a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(q, xb)), Vector256.Create(scales[b]), a0);
                    b0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(q, yb)), Vector256.Create(scales[32 + b]), b0);
                    q = TF.Load(w1 + at);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(q, xb)), Vector256.Create(scales[8 + b]), a1);
                    b1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(q, yb)), Vector256.Create(scales[40 + b]), b1);
                    q = TF.Load(w2 + at);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(q, xb)), Vector256.Create(scales[16 + b]), a2);
                    b2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(q, yb)), Vector256.Create(scales[48 + b]), b2);
                    q = TF.Load(w3 + at);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(q, xb)), Vector256.Create(scales[24 + b]), a3);
                    b3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(q, yb)), Vector256.Create(scales[56 + b]), b3);
                }
            }
            sums[0] = SumLanes(a0);
            sums[1] = SumLanes(a1);
            sums[2] = SumLanes(a2);
            sums[3] = SumLanes(a3);
            sums[4] = SumLanes(b0);
            sums[5] = SumLanes(b1);
            sums[6] = SumLanes(b2);
            sums[7] = SumLanes(b3);
        }

        /// <summary>sums[r] = x · row r for the four rows from <paramref name="w"/> (scales from <paramref name="d"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Dot4(sbyte* x, float* xd, int* xs, byte* w, ushort* d, nint rowBytes, int blocks, float* scales, float* sums)
        {
            byte* w1 = w + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
            ushort* d1 = d + blocks, d2 = d1 + blocks, d3 = d2 + blocks;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            // The next strip's rows at the same offset, as the f32/bf16 GEMV prefetches: rows of a
            // few KiB restart the hardware prefetchers at every 4 KiB page.
            byte* ahead = w + (4 * rowBytes);
            for (int g = 0; g < blocks; g += 8)
            {
                int count = Math.Min(8, blocks - g);
                CombineScales(d + g, xd + g, count, scales);
                CombineScales(d1 + g, xd + g, count, scales + 8);
                CombineScales(d2 + g, xd + g, count, scales + 16);
                CombineScales(d3 + g, xd + g, count, scales + 24);
                for (int b = 0; b < count; b++)
                {
                    nint at = (nint)(g + b) * TF.QuantBytes;
                    // One prefetch per 64-byte line of each row.
                    if (Sse.IsSupported && ((g + b) * TF.QuantBytes & 63) == 0)
                    {
                        Sse.Prefetch0(ahead + at);
                        Sse.Prefetch0(ahead + rowBytes + at);
                        Sse.Prefetch0(ahead + (2 * rowBytes) + at);
                        Sse.Prefetch0(ahead + (3 * rowBytes) + at);
                    }
                    Vector256<sbyte> xb = Vector256.Load(x + ((nint)(g + b) * BlockMatrix.BlockSize));
                    if (TF.OffsetBy8)
                    {
                        Vector256<int> c = Vector256.Load(xs + ((nint)(g + b) * 8));
                        a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(c, TF.LoadOffset(w + at), xb)), Vector256.Create(scales[b]), a0);
                        a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(c, TF.LoadOffset(w1 + at), xb)), Vector256.Create(scales[8 + b]), a1);
                        a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(c, TF.LoadOffset(w2 + at), xb)), Vector256.Create(scales[16 + b]), a2);
                        a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.DotOffset(c, TF.LoadOffset(w3 + at), xb)), Vector256.Create(scales[24 + b]), a3);
                        continue;
                    }
                    a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(TF.Load(w + at), xb)), Vector256.Create(scales[b]), a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(TF.Load(w1 + at), xb)), Vector256.Create(scales[8 + b]), a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(TF.Load(w2 + at), xb)), Vector256.Create(scales[16 + b]), a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(TDot.Dot(TF.Load(w3 + at), xb)), Vector256.Create(scales[24 + b]), a3);
                }
            }
            sums[0] = SumLanes(a0);
            sums[1] = SumLanes(a1);
            sums[2] = SumLanes(a2);
            sums[3] = SumLanes(a3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float Dot1(sbyte* x, float* xd, int* xs, byte* w, ushort* d, int blocks, float* scales)
        {
            Vector256<float> a = default;
            for (int g = 0; g < blocks; g += 8)
            {
                int count = Math.Min(8, blocks - g);
                CombineScales(d + g, xd + g, count, scales);
                for (int b = 0; b < count; b++)
                {
                    Vector256<sbyte> xb = Vector256.Load(x + ((nint)(g + b) * BlockMatrix.BlockSize));
                    byte* wb = w + ((nint)(g + b) * TF.QuantBytes);
                    Vector256<int> lanes = TF.OffsetBy8 ? TDot.DotOffset(Vector256.Load(xs + ((nint)(g + b) * 8)), TF.LoadOffset(wb), xb) : TDot.Dot(TF.Load(wb), xb);
                    a = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(lanes), Vector256.Create(scales[b]), a);
                }
            }
            return SumLanes(a);
        }
    }

    /// <summary>
    /// dst[i] = d_w[i] · d_x[i] for <paramref name="count"/> ≤ 8 blocks: eight f16 scales widened in one
    /// vector when a whole group is there. Both routes round the same single product, so which one a
    /// block takes never changes the result.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void CombineScales(ushort* dw, float* dx, int count, float* dst)
    {
        if (count == 8)
        {
            Vector256<float> w = WeightConversion.F16ToSingle(Vector256.WidenLower(Vector128.Load(dw).ToVector256()));
            (w * Vector256.Load(dx)).Store(dst);
            return;
        }
        for (int i = 0; i < count; i++)
        {
            dst[i] = ElementTypes.F16ToSingle(dw[i]) * dx[i];
        }
    }

    /// <summary>The eight lanes summed in a fixed order, so the hardware and software vector paths agree bit for bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float SumLanes(Vector256<float> v) =>
        ((v.GetElement(0) + v.GetElement(1)) + (v.GetElement(2) + v.GetElement(3))) + ((v.GetElement(4) + v.GetElement(5)) + (v.GetElement(6) + v.GetElement(7)));
}
