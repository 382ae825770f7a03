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
/// Decode (m ≤ <see cref="LinearKernel.GemvMaxRows"/>) streams W once, strip by strip (eight rows,
/// see <see cref="BlockMatrix{TFormat}"/>), 8.5 (Q8_0) or 4.5 (Q4_0) bits a weight instead of bf16's
/// 16, which is what makes it faster: decode is bound by that stream. Each (token, row) sum takes
/// the same steps as the GEMM's — the block's exact int32 sum, converted, times d_w·d_x, added in
/// block order — so decode and prefill agree bit for bit, and so do one token and a batch. Prefill
/// runs <see cref="QuantizedGemm"/> on VNNI machines; elsewhere the strip kernel serves every m.
/// </summary>
internal static unsafe class QuantizedLinear
{
    /// <summary>y[m,n] = x[m,k] · W[n,k]ᵀ (+ bias) for W of <paramref name="wType"/> (Q8_0 or Q4_0); pointers valid and checked by the caller, k a multiple of 32.</summary>
    public static void Linear(AiCoreGrid grid, float* x, byte* w, ElementType wType, float* bias, float* y, int m, int k, int n, Int8DotIsa isa)
    {
        switch (wType)
        {
            case ElementType.Q4_0:
                Linear<Q4_0Format>(grid, x, w, bias, y, m, k, n, isa);
                break;
            case ElementType.Q4_K:
                Linear<Q4_KFormat>(grid, x, w, bias, y, m, k, n, isa);
                break;
            case ElementType.Q4_0Panels:
                Linear<Q4_0PanelFormat>(grid, x, w, bias, y, m, k, n, isa);
                break;
            case ElementType.Q4_KPanels:
                Linear<Q4_KPanelFormat>(grid, x, w, bias, y, m, k, n, isa);
                break;
            default:
                Linear<Q8_0Format>(grid, x, w, bias, y, m, k, n, isa);
                break;
        }
    }

    /// <summary>
    /// Up to three bias-free linears over one x (see <see cref="LinearKernel.LinearFused(AiCoreGrid, ReadOnlySpan{float}, ElementType, int, int, ReadOnlySpan{byte}, Span{float}, int, ReadOnlySpan{byte}, Span{float}, int, ReadOnlySpan{byte}, Span{float}, int)"/>):
    /// x is quantized once for all of them.
    /// </summary>
    public static void LinearFused(AiCoreGrid grid, float* x, ElementType wType, int m, int k, byte* w0, float* y0, int n0, byte* w1, float* y1, int n1, byte* w2, float* y2, int n2, Int8DotIsa isa)
    {
        switch (wType)
        {
            case ElementType.Q4_0:
                LinearFused<Q4_0Format>(grid, x, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, isa);
                break;
            case ElementType.Q4_K:
                LinearFused<Q4_KFormat>(grid, x, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, isa);
                break;
            case ElementType.Q4_0Panels:
                LinearFused<Q4_0PanelFormat>(grid, x, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, isa);
                break;
            case ElementType.Q4_KPanels:
                LinearFused<Q4_KPanelFormat>(grid, x, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, isa);
                break;
            default:
                LinearFused<Q8_0Format>(grid, x, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, isa);
                break;
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
        Activations a = Quantize(grid, x, m, k, gemm, sums: !gemm || TF.HasMins, mins: TF.HasMins, TF.Offset);
        if (gemm)
        {
            QuantizedGemm.Run<TF>(grid, a.Q, a.D, a.M, w, bias, y, m, k, n);
            return;
        }
        int stripsPerBlock = StripsPerBlock<TF>(grid, n);
        switch (isa)
        {
            case Int8DotIsa.Avx512Bw:
                LaunchGemv<TF, Int8Dot.AvxVnniDot>(grid, a, w, bias, y, m, k, n, stripsPerBlock, nibblePairs: true);
                break;
            case Int8DotIsa.AvxVnni:
                LaunchGemv<TF, Int8Dot.AvxVnniDot>(grid, a, w, bias, y, m, k, n, stripsPerBlock);
                break;
            case Int8DotIsa.Avx2:
                LaunchGemv<TF, Int8Dot.Avx2Dot>(grid, a, w, bias, y, m, k, n, stripsPerBlock);
                break;
            default:
                LaunchGemv<TF, Int8Dot.PortableDot>(grid, a, w, bias, y, m, k, n, stripsPerBlock);
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
        Activations a = Quantize(grid, x, m, k, gemm, sums: !gemm || TF.HasMins, mins: TF.HasMins, TF.Offset);
        if (gemm)
        {
            QuantizedGemm.Run<TF>(grid, a.Q, a.D, a.M, w0, null, y0, m, k, n0);
            QuantizedGemm.Run<TF>(grid, a.Q, a.D, a.M, w1, null, y1, m, k, n1);
            if (n2 > 0)
            {
                QuantizedGemm.Run<TF>(grid, a.Q, a.D, a.M, w2, null, y2, m, k, n2);
            }
            return;
        }
        int stripsPerBlock = StripsPerBlock<TF>(grid, n0 + n1 + n2);
        switch (isa)
        {
            case Int8DotIsa.Avx512Bw:
                LaunchFused<TF, Int8Dot.AvxVnniDot>(grid, a, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, stripsPerBlock, nibblePairs: true);
                break;
            case Int8DotIsa.AvxVnni:
                LaunchFused<TF, Int8Dot.AvxVnniDot>(grid, a, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, stripsPerBlock);
                break;
            case Int8DotIsa.Avx2:
                LaunchFused<TF, Int8Dot.Avx2Dot>(grid, a, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, stripsPerBlock);
                break;
            default:
                LaunchFused<TF, Int8Dot.PortableDot>(grid, a, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, stripsPerBlock);
                break;
        }
    }

    /// <summary>
    /// Prefill-sized inputs on VNNI hardware: there a packed, register-tiled product reuses each
    /// weight across many rows. Without VNNI the strip kernel serves every m (correct, not tuned).
    /// </summary>
    internal static bool UsesGemm(int m, Int8DotIsa isa) => m > LinearKernel.GemvMaxRows && isa is Int8DotIsa.AvxVnni or Int8DotIsa.Avx512Bw;

    /// <summary>
    /// A block's min term's activation factor, −d_x·Σq_x (the block's activation sum, negated): a block
    /// with mins adds m_w·(−d_x·Σq_x). Formed by this one expression in the GEMV and the GEMM alike, so
    /// both round it the same.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float MinTerm(float d, int sum) => -(d * sum);

    /// <summary>
    /// Quantized activations in the launching thread's scratch: q, the blocks' scales d, and for the
    /// GEMV and formats with mins per block of each row its sums and min terms (<see cref="MinTerm"/>),
    /// formed once here for every row and strip that uses them. The GEMM reads them row by row
    /// (q[m, k], d, s and min terms [m, k/32]); the strip GEMV block by block, every row's block b
    /// together (q[k/32, m, 32], d, s and min terms [k/32, m]), with s holding each block's start
    /// −offset·Σq: one pointer a block then reaches every token's operands at constant offsets, where
    /// row-major operands cost each token's block a handful of address computations and a multiply
    /// of its sum, a third of its instructions. Measured on the 1.1B step's linears (bench -- gemv,
    /// alternated three times): eight tokens Q8_0 32.7–34.0 → 30.9–32.1 ms, Q4_K 30.3–31.8 → 28.6–29.3,
    /// four tokens Q4_K 20.9–21.8 → 18.3–18.7; Q4_0 and one token within the noise.
    /// </summary>
    private readonly struct Activations(sbyte* q, float* d, int* s, float* mins)
    {
        public readonly sbyte* Q = q;
        public readonly float* D = d;
        public readonly int* S = s;
        public readonly float* M = mins;
    }

    private static Activations Quantize(AiCoreGrid grid, float* x, int m, int k, bool gemm, bool sums, bool mins, int offset)
    {
        int blocks = k / BlockMatrix.BlockSize;
        long quantBytes = ((long)m * k + 63) & ~63L;
        long scaleBytes = (((long)m * blocks * sizeof(float)) + 63) & ~63L;
        long sumBytes = sums ? (((long)m * blocks * sizeof(int)) + 63) & ~63L : 0;
        long minBytes = mins ? (long)m * blocks * sizeof(float) : 0;
        byte* scratch = KernelScratch.LaunchScratch(quantBytes + scaleBytes + sumBytes + minBytes);
        var a = new Activations((sbyte*)scratch, (float*)(scratch + quantBytes), sums ? (int*)(scratch + quantBytes + scaleBytes) : null,
            mins ? (float*)(scratch + quantBytes + scaleBytes + sumBytes) : null);
        // The GEMV's operands are block-major (its blocks' rows side by side), the GEMM's row-major.
        int blockRows = gemm ? 0 : m;
        // Decode rows are a few microseconds of work: a launch would cost more than it saves.
        if (m <= LinearKernel.GemvMaxRows)
        {
            Q8_0Activations.QuantizeRows(x, k, 0, m, a.Q, a.D, offsetBinary: gemm, blockRows);
        }
        else
        {
            var kernel = new QuantizeKernel { X = x, K = k, M = m, Q = a.Q, D = a.D, OffsetBinary = gemm, BlockRows = blockRows, RowsPerBlock = Math.Max(1, m / (4 * grid.CoreCount)) };
            grid.Launch((m + kernel.RowsPerBlock - 1) / kernel.RowsPerBlock, ref kernel);
        }
        if (!gemm)
        {
            Q8_0Activations.BlockStarts(a.Q, a.D, k, m, offset, a.S, a.M);
            return a;
        }
        if (sums)
        {
            Q8_0Activations.BlockSums(a.Q, k, m, a.S);
        }
        if (mins)
        {
            for (long i = 0; i < (long)m * blocks; i++)
            {
                a.M[i] = MinTerm(a.D[i], a.S[i]);
            }
        }
        return a;
    }

    private struct QuantizeKernel : IBlockKernel
    {
        public float* X;
        public sbyte* Q;
        public float* D;
        public int K, M, RowsPerBlock, BlockRows;
        public bool OffsetBinary;

        public readonly void Execute(int block)
        {
            int r0 = block * RowsPerBlock;
            Q8_0Activations.QuantizeRows(X, K, r0, Math.Min(M, r0 + RowsPerBlock), Q, D, OffsetBinary, BlockRows);
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

    /// <summary>
    /// As the f32/bf16 GEMV: several blocks per core so the atomic hand-out evens out late starters; in a
    /// panel form an even number, so that every work block starts at a panel.
    /// </summary>
    private static int StripsPerBlock<TF>(AiCoreGrid grid, int rows) where TF : struct, IBlockFormat
    {
        int strips = Math.Max(1, (rows / BlockMatrix.StripRows + (8 * grid.CoreCount) - 1) / (8 * grid.CoreCount));
        return TF.InPanels ? (strips + 1) & ~1 : strips;
    }

    /// <summary>Strips of an n-row matrix (the last one padded when the format pads).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Strips<TF>(int n) where TF : struct, IBlockFormat =>
        TF.PadsToWholeStrips ? (n + BlockMatrix.StripRows - 1) / BlockMatrix.StripRows : n / BlockMatrix.StripRows;

    /// <summary>Work blocks of one matrix: its strips in runs of <paramref name="stripsPerBlock"/>, and one more for row-form tail rows if any.</summary>
    private static int WorkBlocks<TF>(int n, int stripsPerBlock) where TF : struct, IBlockFormat =>
        (Strips<TF>(n) + stripsPerBlock - 1) / stripsPerBlock + (!TF.PadsToWholeStrips && n % BlockMatrix.StripRows != 0 ? 1 : 0);

    private static GemvKernel<TF, TDot> Part<TF, TDot>(Activations a, byte* w, float* bias, float* y, int m, int k, int n, int stripsPerBlock, bool nibblePairs)
        where TF : struct, IBlockFormat
        where TDot : struct, IInt8BlockDot => new()
    {
        Xq = a.Q, Xd = a.D, Xs = a.S, Xm = a.M, W = w, Bias = bias, Y = y, M = m, K = k, N = n, StripsPerBlock = stripsPerBlock,
        NibblePairs = nibblePairs && TF.QuantBytes == BlockMatrix.BlockSize / 2,
    };

    private static void LaunchGemv<TF, TDot>(AiCoreGrid grid, Activations a, byte* w, float* bias, float* y, int m, int k, int n, int stripsPerBlock, bool nibblePairs = false)
        where TF : struct, IBlockFormat
        where TDot : struct, IInt8BlockDot
    {
        GemvKernel<TF, TDot> kernel = Part<TF, TDot>(a, w, bias, y, m, k, n, stripsPerBlock, nibblePairs);
        grid.Launch(WorkBlocks<TF>(n, stripsPerBlock), ref kernel);
    }

    private static void LaunchFused<TF, TDot>(AiCoreGrid grid, Activations a, int m, int k, byte* w0, float* y0, int n0, byte* w1, float* y1, int n1, byte* w2, float* y2, int n2, int stripsPerBlock, bool nibblePairs = false)
        where TF : struct, IBlockFormat
        where TDot : struct, IInt8BlockDot
    {
        int blocks0 = WorkBlocks<TF>(n0, stripsPerBlock), blocks1 = WorkBlocks<TF>(n1, stripsPerBlock), blocks2 = WorkBlocks<TF>(n2, stripsPerBlock);
        var kernel = new FusedBlocks<GemvKernel<TF, TDot>>
        {
            Part0 = Part<TF, TDot>(a, w0, null, y0, m, k, n0, stripsPerBlock, nibblePairs),
            Part1 = Part<TF, TDot>(a, w1, null, y1, m, k, n1, stripsPerBlock, nibblePairs),
            Part2 = Part<TF, TDot>(a, w2, null, y2, m, k, n2, stripsPerBlock, nibblePairs),
            End0 = blocks0,
            End1 = blocks0 + blocks1,
        };
        grid.Launch(blocks0 + blocks1 + blocks2, ref kernel);
    }

    /// <summary>
    /// Each work block owns a run of strips (or the tail rows). Per strip block: the eight rows'
    /// scales in one load, the quants unpacked once (Q4_0) for every token, then per token eight
    /// vpdpbusd of a broadcast of four activations against a group, so each int32 lane ends as one
    /// row's exact block sum. A run of strips is one sequential stream.
    /// </summary>
    internal struct GemvKernel<TF, TDot> : IBlockKernel
        where TF : struct, IBlockFormat
        where TDot : struct, IInt8BlockDot
    {
        /// <summary>
        /// How far ahead of the strip block being read the next lines are requested: the hardware
        /// prefetchers restart at every 4 KiB page. Measured one token over the 1.1B step's linears
        /// (bench -- gemv, 1, 2, 4 and 8 KiB alternated): 4 KiB against 2 KiB Q8_0 18.6–19.1 → 17.0–17.2 ms,
        /// Q4_0 12.4–12.8 → 11.7–11.9, Q4_K 12.7–12.9 → 12.3–12.5; 8 KiB the same as 4, 1 KiB slower than 2.
        /// </summary>
        private const int PrefetchDistance = 4096;

        public sbyte* Xq;
        public int* Xs;
        public float* Xm;
        public byte* W;
        public float* Xd, Bias, Y;
        public int M, K, N, StripsPerBlock;

        /// <summary>4-bit weights on AVX-512BW: strips two at a time (<see cref="StripPair{TM}"/>) for <see cref="PairedMinTokens"/> or more tokens.</summary>
        public bool NibblePairs;

        /// <summary>
        /// Fewer tokens read strips one at a time: there the step is bound by the weight stream, and
        /// reading two strips side by side streamed slower. Measured on the 1.1B step's linears (bench --
        /// gemv, alternated): Q4_0 one token 12.9–13.0 → 16.2–16.7 ms paired, two 14.4 → 16.5–17.0;
        /// three 18.4–18.5 → 17.1–18.2, four 21.9–22.8 → 18.0–19.4, eight 34.5–36.5 → 25.0–27.1; Q4_K
        /// one 13.9–14.2 → 20.3–20.6, two 20.7 → 20.3–20.6, three 26.4–27.6 → 23.1–23.2, four
        /// 31.2–32.8 → 24.2–25.0, eight 52.5–54.9 → 38.5–40.2. With every token's sum in registers
        /// (2026-12-04), single strips won at four tokens again (Q4_0 18.6–20.0 → 17.7–18.1 ms, Q4_K
        /// 23.4–24.0 → 20.3–20.7) and pairs still win at eight (Q4_K 29.8–30.3 against 33.7–35.7 single,
        /// Q4_0 25.4–28.7 against 27.7–28.8), so pairs start at five.
        /// </summary>
        private const int PairedMinTokens = 5;

        /// <summary>A panel form's strips are one stream, read in pairs from this many tokens on.</summary>
        private const int PanelPairedMinTokens = 1;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int block)
        {
            int strips = Strips<TF>(N);
            int s0 = block * StripsPerBlock;
            if (s0 >= strips)
            {
                TailRows(strips * BlockMatrix.StripRows);
                return;
            }
            int s1 = Math.Min(strips, s0 + StripsPerBlock);
            Vector256<float>* sums = stackalloc Vector256<float>[LinearKernel.GemvMaxRows];
            for (int s = s0; s < s1; s++)
            {
                if (NibblePairs && Avx512BW.IsSupported && s + 1 < s1 && M >= (TF.InPanels ? PanelPairedMinTokens : PairedMinTokens))
                {
                    for (int t0 = 0; t0 < M; t0 += LinearKernel.GemvMaxRows)
                    {
                        switch (Math.Min(LinearKernel.GemvMaxRows, M - t0))
                        {
                            case 1: StripPair<OneToken>(s, t0); break;
                            case 2: StripPair<TwoTokens>(s, t0); break;
                            case 3: StripPair<ThreeTokens>(s, t0); break;
                            case 4: StripPair<FourTokens>(s, t0); break;
                            case 5: StripPair<FiveTokens>(s, t0); break;
                            case 6: StripPair<SixTokens>(s, t0); break;
                            case 7: StripPair<SevenTokens>(s, t0); break;
                            default: StripPair<EightTokens>(s, t0); break;
                        }
                    }
                    s++;
                    continue;
                }
                // Tokens in groups of at most GemvMaxRows (more only without VNNI, where this kernel also serves prefill).
                for (int t0 = 0; t0 < M; t0 += LinearKernel.GemvMaxRows)
                {
                    int tokens = Math.Min(LinearKernel.GemvMaxRows, M - t0);
                    if (tokens == 1)
                    {
                        Vector256<float> sum = StripOneToken(s, t0);
                        Store(sum, t0, s);
                        continue;
                    }
                    if (tokens == 2)
                    {
                        StripTwoTokens(s, t0, out Vector256<float> sum0, out Vector256<float> sum1);
                        Store(sum0, t0, s);
                        Store(sum1, t0 + 1, s);
                        continue;
                    }
                    StripTokens(s, t0, tokens, sums);
                    for (int t = 0; t < tokens; t++)
                    {
                        Store(sums[t], t0 + t, s);
                    }
                }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly Vector256<float> StripOneToken(int s, int t)
        {
            int blocks = K / BlockMatrix.BlockSize;
            byte* quants = BlockMatrix<TF>.Quants(W) + BlockMatrix<TF>.StripBlock(s, blocks, 0);
            byte* plane = TF.ScalePlane(W, N, K);
            // Token t's operands of block b, block-major (see Activations): one step of m a block.
            nint m = M, xStep = m * BlockMatrix.BlockSize;
            sbyte* x = Xq + ((nint)t * BlockMatrix.BlockSize);
            float* xd = Xd + t, xm = Xm + t;
            int* xs = Xs + t;
            Vector256<float> sum = default;
            for (int b = 0; b < blocks; b++)
            {
                byte* wb = quants + ((nint)b * BlockMatrix<TF>.BlockStride);
                Prefetch(wb);
                PrefetchScales(plane, s, blocks, b);
                Vector256<float> dw = TF.StripScales(plane, s, blocks, b);
                Vector256<int> p = BlockProducts(
                    TF.StripGroup(wb, 0), TF.StripGroup(wb, 1), TF.StripGroup(wb, 2), TF.StripGroup(wb, 3),
                    TF.StripGroup(wb, 4), TF.StripGroup(wb, 5), TF.StripGroup(wb, 6), TF.StripGroup(wb, 7),
                    x, xs);
                sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p), dw * Vector256.Create(*xd), sum);
                if (TF.HasMins)
                {
                    sum = Vector256.FusedMultiplyAdd(TF.StripMins(plane, s, blocks, b), Vector256.Create(*xm), sum);
                }
                x += xStep;
                xd += m;
                xs += m;
                xm += m;
            }
            return sum;
        }

        /// <summary>
        /// <see cref="StripTokens"/> for exactly two tokens, step for step, with both sums in registers:
        /// there a sum kept in memory puts a store and a load in every block's chain of FMAs (two with
        /// Q4_K's mins), and two chains are too few to hide it. Measured on the 1.1B step's linears
        /// (bench -- gemv, alternated three times): two tokens Q4_K 21.2–22.1 → 13.8–14.2 ms, Q4_0
        /// 14.7–15.8 → 13.0–13.4, Q8_0 17.9–18.2 → 17.5–17.6. Four and eight tokens hide it: run as
        /// pairs of this, Q8_0 took 27–28 ms and 45 ms against 25.5–26 and 38.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void StripTwoTokens(int s, int t0, out Vector256<float> sum0, out Vector256<float> sum1)
        {
            int blocks = K / BlockMatrix.BlockSize;
            byte* quants = BlockMatrix<TF>.Quants(W) + BlockMatrix<TF>.StripBlock(s, blocks, 0);
            byte* plane = TF.ScalePlane(W, N, K);
            nint m = M, xStep = m * BlockMatrix.BlockSize;
            sbyte* x = Xq + ((nint)t0 * BlockMatrix.BlockSize);
            float* xd = Xd + t0, xm = Xm + t0;
            int* xs = Xs + t0;
            sum0 = default;
            sum1 = default;
            for (int b = 0; b < blocks; b++)
            {
                byte* wb = quants + ((nint)b * BlockMatrix<TF>.BlockStride);
                Prefetch(wb);
                PrefetchScales(plane, s, blocks, b);
                Vector256<float> dw = TF.StripScales(plane, s, blocks, b);
                Vector256<byte> g0 = TF.StripGroup(wb, 0), g1 = TF.StripGroup(wb, 1), g2 = TF.StripGroup(wb, 2), g3 = TF.StripGroup(wb, 3);
                Vector256<byte> g4 = TF.StripGroup(wb, 4), g5 = TF.StripGroup(wb, 5), g6 = TF.StripGroup(wb, 6), g7 = TF.StripGroup(wb, 7);
                Vector256<int> p0 = BlockProducts(g0, g1, g2, g3, g4, g5, g6, g7, x, xs);
                Vector256<int> p1 = BlockProducts(g0, g1, g2, g3, g4, g5, g6, g7, x + BlockMatrix.BlockSize, xs + 1);
                sum0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p0), dw * Vector256.Create(xd[0]), sum0);
                sum1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p1), dw * Vector256.Create(xd[1]), sum1);
                if (TF.HasMins)
                {
                    Vector256<float> mw = TF.StripMins(plane, s, blocks, b);
                    sum0 = Vector256.FusedMultiplyAdd(mw, Vector256.Create(xm[0]), sum0);
                    sum1 = Vector256.FusedMultiplyAdd(mw, Vector256.Create(xm[1]), sum1);
                }
                x += xStep;
                xd += m;
                xs += m;
                xm += m;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void StripTokens(int s, int t0, int tokens, Vector256<float>* sums)
        {
            int blocks = K / BlockMatrix.BlockSize;
            byte* quants = BlockMatrix<TF>.Quants(W) + BlockMatrix<TF>.StripBlock(s, blocks, 0);
            byte* plane = TF.ScalePlane(W, N, K);
            // Locals, not fields, and the sums in registers: see StripPair.
            nint m = M, xStep = m * BlockMatrix.BlockSize;
            sbyte* xb = Xq + ((nint)t0 * BlockMatrix.BlockSize);
            float* xd = Xd + t0, xm = Xm + t0;
            int* xs = Xs + t0;
            Vector256<float> sum0 = default, sum1 = default, sum2 = default, sum3 = default, sum4 = default, sum5 = default, sum6 = default, sum7 = default;
            for (int b = 0; b < blocks; b++)
            {
                byte* wb = quants + ((nint)b * BlockMatrix<TF>.BlockStride);
                Prefetch(wb);
                PrefetchScales(plane, s, blocks, b);
                Vector256<float> dw = TF.StripScales(plane, s, blocks, b);
                Vector256<float> mw = TF.HasMins ? TF.StripMins(plane, s, blocks, b) : default;
                // The block's groups stay in registers for every token.
                Vector256<byte> g0 = TF.StripGroup(wb, 0), g1 = TF.StripGroup(wb, 1), g2 = TF.StripGroup(wb, 2), g3 = TF.StripGroup(wb, 3);
                Vector256<byte> g4 = TF.StripGroup(wb, 4), g5 = TF.StripGroup(wb, 5), g6 = TF.StripGroup(wb, 6), g7 = TF.StripGroup(wb, 7);
                sum0 = TokenBlock(sum0, g0, g1, g2, g3, g4, g5, g6, g7, xb, xs, xd, xm, dw, mw);
                if (tokens > 1)
                {
                    sum1 = TokenBlock(sum1, g0, g1, g2, g3, g4, g5, g6, g7, xb + BlockMatrix.BlockSize, xs + 1, xd + 1, xm + 1, dw, mw);
                }
                if (tokens > 2)
                {
                    sum2 = TokenBlock(sum2, g0, g1, g2, g3, g4, g5, g6, g7, xb + (2 * BlockMatrix.BlockSize), xs + 2, xd + 2, xm + 2, dw, mw);
                }
                if (tokens > 3)
                {
                    sum3 = TokenBlock(sum3, g0, g1, g2, g3, g4, g5, g6, g7, xb + (3 * BlockMatrix.BlockSize), xs + 3, xd + 3, xm + 3, dw, mw);
                }
                if (tokens > 4)
                {
                    sum4 = TokenBlock(sum4, g0, g1, g2, g3, g4, g5, g6, g7, xb + (4 * BlockMatrix.BlockSize), xs + 4, xd + 4, xm + 4, dw, mw);
                }
                if (tokens > 5)
                {
                    sum5 = TokenBlock(sum5, g0, g1, g2, g3, g4, g5, g6, g7, xb + (5 * BlockMatrix.BlockSize), xs + 5, xd + 5, xm + 5, dw, mw);
                }
                if (tokens > 6)
                {
                    sum6 = TokenBlock(sum6, g0, g1, g2, g3, g4, g5, g6, g7, xb + (6 * BlockMatrix.BlockSize), xs + 6, xd + 6, xm + 6, dw, mw);
                }
                if (tokens > 7)
                {
                    sum7 = TokenBlock(sum7, g0, g1, g2, g3, g4, g5, g6, g7, xb + (7 * BlockMatrix.BlockSize), xs + 7, xd + 7, xm + 7, dw, mw);
                }
                xb += xStep;
                xd += m;
                xs += m;
                xm += m;
            }
            sums[0] = sum0;
            sums[1] = sum1;
            sums[2] = sum2;
            sums[3] = sum3;
            sums[4] = sum4;
            sums[5] = sum5;
            sums[6] = sum6;
            sums[7] = sum7;
        }

        /// <summary>One token's step of <see cref="StripTokens"/> for one strip block: <see cref="StripOneToken"/>'s arithmetic.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static Vector256<float> TokenBlock(Vector256<float> sum, Vector256<byte> g0, Vector256<byte> g1, Vector256<byte> g2, Vector256<byte> g3,
            Vector256<byte> g4, Vector256<byte> g5, Vector256<byte> g6, Vector256<byte> g7, sbyte* x, int* xs, float* xd, float* xm, Vector256<float> dw, Vector256<float> mw)
        {
            Vector256<int> p = BlockProducts(g0, g1, g2, g3, g4, g5, g6, g7, x, xs);
            sum = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p), dw * Vector256.Create(*xd), sum);
            return TF.HasMins ? Vector256.FusedMultiplyAdd(mw, Vector256.Create(*xm), sum) : sum;
        }

        /// <summary>
        /// Strips <paramref name="s"/> and s + 1 of a 4-bit format for tokens t0..t0 + TM.Count, lanes 0..7 the
        /// first strip's rows and 8..15 the second's. Per block: the two strip blocks side by side in 512-bit
        /// vectors, unpacked once for every token (<see cref="IBlockFormat.StripGroupPair"/>: one load a group in
        /// a panel form, two and an insert in a strip form); per token, eight vpmaddubsw of a broadcast of four
        /// activations against a group, their int16 pair sums added in int16 (at most 8·2·15·127 = 30480),
        /// one vpmaddwd to int32, and from there <see cref="StripTokens"/>'s steps lane for lane: the same
        /// exact block sums, so the same bits, with half the multiply instructions of two 256-bit strips.
        /// The token count is a type, so each count's loop has only its tokens' products and keeps their
        /// sums in registers; and not inlined, so the JIT allocates this loop's registers alone. Measured on
        /// the 1.1B step's linears (a harness over 546 MB of Q4_0 weights, strips and panels alternated,
        /// 2026-12-04): panels against strips, one token 12.96 against 12.62 ms, two 13.47 / 12.68, four
        /// 13.79 / 15.26, eight 17.49 / 25.53. Q4_K in panels (the same kernel) read eight tokens in 23.0
        /// against 26.0 ms but one and two in 15.2–16.6 against 13.3, so Q4_K stays in strips.
        /// </summary>
        [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
        private readonly void StripPair<TM>(int s, int t0) where TM : struct, ITokenCount
        {
            int blocks = K / BlockMatrix.BlockSize;
            byte* quants0 = BlockMatrix<TF>.Quants(W) + BlockMatrix<TF>.StripBlock(s, blocks, 0);
            byte* quants1 = BlockMatrix<TF>.Quants(W) + BlockMatrix<TF>.StripBlock(s + 1, blocks, 0);
            byte* plane = TF.ScalePlane(W, N, K);
            // Locals, not fields: the stores of the sums cannot move them, so they are not reloaded.
            nint m = M, xStep = m * BlockMatrix.BlockSize;
            sbyte* xb = Xq + ((nint)t0 * BlockMatrix.BlockSize);
            float* xd = Xd + t0, xm = Xm + t0;
            int* xs = Xs + t0;
            Vector512<float> sum0 = default, sum1 = default, sum2 = default, sum3 = default, sum4 = default, sum5 = default, sum6 = default, sum7 = default;
            for (int b = 0; b < blocks; b++)
            {
                byte* wb0 = quants0 + ((nint)b * BlockMatrix<TF>.BlockStride);
                byte* wb1 = quants1 + ((nint)b * BlockMatrix<TF>.BlockStride);
                Prefetch(wb0);
                if (!TF.InPanels)
                {
                    // A panel's block holds both strips' blocks, and Prefetch covers the whole of it.
                    Prefetch(wb1);
                }
                PrefetchScales(plane, s, blocks, b);
                if (!TF.InPanels)
                {
                    // A panel's block keeps both strips' scales on one line.
                    PrefetchScales(plane, s + 1, blocks, b);
                }
                Vector512<float> dw = TF.StripScalesPair(plane, s, blocks, b);
                Vector512<byte> g0 = TF.StripGroupPair(wb0, wb1, 0), g1 = TF.StripGroupPair(wb0, wb1, 1);
                Vector512<byte> g2 = TF.StripGroupPair(wb0, wb1, 2), g3 = TF.StripGroupPair(wb0, wb1, 3);
                Vector512<byte> g4 = TF.StripGroupPair(wb0, wb1, 4), g5 = TF.StripGroupPair(wb0, wb1, 5);
                Vector512<byte> g6 = TF.StripGroupPair(wb0, wb1, 6), g7 = TF.StripGroupPair(wb0, wb1, 7);
                Vector512<float> mw = TF.HasMins ? TF.StripMinsPair(plane, s, blocks, b) : default;
                // Token t's activations are at t·32 from the block's, its scalars at t.
                sum0 = TokenBlock(sum0, g0, g1, g2, g3, g4, g5, g6, g7, xb, xs, xd, xm, dw, mw);
                if (TM.Count > 1)
                {
                    sum1 = TokenBlock(sum1, g0, g1, g2, g3, g4, g5, g6, g7, xb + BlockMatrix.BlockSize, xs + 1, xd + 1, xm + 1, dw, mw);
                }
                if (TM.Count > 2)
                {
                    sum2 = TokenBlock(sum2, g0, g1, g2, g3, g4, g5, g6, g7, xb + (2 * BlockMatrix.BlockSize), xs + 2, xd + 2, xm + 2, dw, mw);
                }
                if (TM.Count > 3)
                {
                    sum3 = TokenBlock(sum3, g0, g1, g2, g3, g4, g5, g6, g7, xb + (3 * BlockMatrix.BlockSize), xs + 3, xd + 3, xm + 3, dw, mw);
                }
                if (TM.Count > 4)
                {
                    sum4 = TokenBlock(sum4, g0, g1, g2, g3, g4, g5, g6, g7, xb + (4 * BlockMatrix.BlockSize), xs + 4, xd + 4, xm + 4, dw, mw);
                }
                if (TM.Count > 5)
                {
                    sum5 = TokenBlock(sum5, g0, g1, g2, g3, g4, g5, g6, g7, xb + (5 * BlockMatrix.BlockSize), xs + 5, xd + 5, xm + 5, dw, mw);
                }
                if (TM.Count > 6)
                {
                    sum6 = TokenBlock(sum6, g0, g1, g2, g3, g4, g5, g6, g7, xb + (6 * BlockMatrix.BlockSize), xs + 6, xd + 6, xm + 6, dw, mw);
                }
                if (TM.Count > 7)
                {
                    sum7 = TokenBlock(sum7, g0, g1, g2, g3, g4, g5, g6, g7, xb + (7 * BlockMatrix.BlockSize), xs + 7, xd + 7, xm + 7, dw, mw);
                }
                xb += xStep;
                xd += m;
                xs += m;
                xm += m;
            }
            StorePair(sum0, t0, s);
            if (TM.Count > 1)
            {
                StorePair(sum1, t0 + 1, s);
            }
            if (TM.Count > 2)
            {
                StorePair(sum2, t0 + 2, s);
            }
            if (TM.Count > 3)
            {
                StorePair(sum3, t0 + 3, s);
            }
            if (TM.Count > 4)
            {
                StorePair(sum4, t0 + 4, s);
            }
            if (TM.Count > 5)
            {
                StorePair(sum5, t0 + 5, s);
            }
            if (TM.Count > 6)
            {
                StorePair(sum6, t0 + 6, s);
            }
            if (TM.Count > 7)
            {
                StorePair(sum7, t0 + 7, s);
            }
        }

        /// <summary>Token t's outputs of strips s (the lower lanes) and s + 1.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void StorePair(Vector512<float> sum, int t, int s)
        {
            Store(sum.GetLower(), t, s);
            Store(sum.GetUpper(), t, s + 1);
        }

        /// <summary>
        /// One token's step of <see cref="StripPair{TM}"/> for one block pair: its exact sums, converted,
        /// times d_w·d_x, added to <paramref name="sum"/>, then (Q4_K) the mins' term.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static Vector512<float> TokenBlock(Vector512<float> sum, Vector512<byte> g0, Vector512<byte> g1, Vector512<byte> g2, Vector512<byte> g3,
            Vector512<byte> g4, Vector512<byte> g5, Vector512<byte> g6, Vector512<byte> g7, sbyte* x, int* xs, float* xd, float* xm, Vector512<float> dw, Vector512<float> mw)
        {
            Vector512<short> pairs = Avx512BW.MultiplyAddAdjacent(g0, Vector512.Create(*(int*)x).AsSByte())
                + Avx512BW.MultiplyAddAdjacent(g1, Vector512.Create(*(int*)(x + 4)).AsSByte())
                + Avx512BW.MultiplyAddAdjacent(g2, Vector512.Create(*(int*)(x + 8)).AsSByte())
                + Avx512BW.MultiplyAddAdjacent(g3, Vector512.Create(*(int*)(x + 12)).AsSByte())
                + Avx512BW.MultiplyAddAdjacent(g4, Vector512.Create(*(int*)(x + 16)).AsSByte())
                + Avx512BW.MultiplyAddAdjacent(g5, Vector512.Create(*(int*)(x + 20)).AsSByte())
                + Avx512BW.MultiplyAddAdjacent(g6, Vector512.Create(*(int*)(x + 24)).AsSByte())
                + Avx512BW.MultiplyAddAdjacent(g7, Vector512.Create(*(int*)(x + 28)).AsSByte());
            Vector512<int> p = Avx512BW.MultiplyAddAdjacent(pairs, Vector512<short>.One);
            if (TF.Offset != 0)
            {
                p += Vector512.Create(*xs);
            }
            sum = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(p), dw * Vector512.Create(*xd), sum);
            return TF.HasMins ? Vector512.FusedMultiplyAdd(mw, Vector512.Create(*xm), sum) : sum;
        }

        /// <summary>
        /// Each lane r: *<paramref name="start"/> + Σ over the block of row r's (q + offset)·x, exact —
        /// with the block's start −offset·Σx, row r's Σ q·x. Two chains of four so consecutive products overlap.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<int> BlockProducts(
            Vector256<byte> g0, Vector256<byte> g1, Vector256<byte> g2, Vector256<byte> g3, Vector256<byte> g4, Vector256<byte> g5, Vector256<byte> g6, Vector256<byte> g7, sbyte* x, int* start)
        {
            Vector256<int> even = TF.Offset != 0 ? Vector256.Create(*start) : Vector256<int>.Zero, odd = Vector256<int>.Zero;
            even = TDot.DotUnsigned(even, g0, Vector256.Create(*(int*)x).AsSByte());
            odd = TDot.DotUnsigned(odd, g1, Vector256.Create(*(int*)(x + 4)).AsSByte());
            even = TDot.DotUnsigned(even, g2, Vector256.Create(*(int*)(x + 8)).AsSByte());
            odd = TDot.DotUnsigned(odd, g3, Vector256.Create(*(int*)(x + 12)).AsSByte());
            even = TDot.DotUnsigned(even, g4, Vector256.Create(*(int*)(x + 16)).AsSByte());
            odd = TDot.DotUnsigned(odd, g5, Vector256.Create(*(int*)(x + 20)).AsSByte());
            even = TDot.DotUnsigned(even, g6, Vector256.Create(*(int*)(x + 24)).AsSByte());
            odd = TDot.DotUnsigned(odd, g7, Vector256.Create(*(int*)(x + 28)).AsSByte());
            return even + odd;
        }


        /// <summary>
        /// How far ahead in the scale plane its next line is requested (formats that
        /// <see cref="IBlockFormat.PrefetchesScalePlane"/>). Q4_0's plane is a second stream, 16 bytes for
        /// each 128 of quants, that the hardware prefetchers did not keep ahead of: every fourth block's
        /// scales waited on a miss with the block's whole chain behind them. Measured, one token over
        /// 8192×2048 weights in the L3 (the kernel's own ceiling; alternated four times): Q4_0 7.9–9.2 →
        /// 6.4–6.5 ms (65 → 82 GB/s of weights), from memory 13.4–14.1 → 12.3–13.5; but Q8_0 3.7–3.8 →
        /// 4.0–4.5 and Q4_K 7.6–7.8 → 8.1–8.2 (its records come 192 bytes at a time), so they do not.
        /// </summary>
        private const int ScalePrefetchDistance = 1024;

        /// <summary>Requests the scale plane's line <see cref="ScalePrefetchDistance"/> ahead of block <paramref name="b"/>'s scales, once per line.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void PrefetchScales(byte* plane, nint s, int blocks, int b)
        {
            nint at = TF.ScaleAt(s, blocks, b);
            // Only the block whose scales start a line asks: in a harness, asking on every block (four
            // requests a line) was as slow as not asking at all.
            if (TF.PrefetchesScalePlane && Sse.IsSupported && (at & 63) < TF.ScaleBytesPerBlock)
            {
                Sse.Prefetch0(plane + at + ScalePrefetchDistance);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Prefetch(byte* stripBlock)
        {
            if (Sse.IsSupported)
            {
                for (int line = 0; line < BlockMatrix<TF>.BlockStride; line += 64)
                {
                    Sse.Prefetch0(stripBlock + PrefetchDistance + line);
                }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void Store(Vector256<float> sum, int t, int s)
        {
            int j = s * BlockMatrix.StripRows;
            if (TF.PadsToWholeStrips && j + BlockMatrix.StripRows > N)
            {
                // The padded last strip: only its real rows exist in y.
                for (int r = 0; j + r < N; r++)
                {
                    Y[((nint)t * N) + j + r] = Bias != null ? sum.GetElement(r) + Bias[j + r] : sum.GetElement(r);
                }
                return;
            }
            if (Bias != null)
            {
                sum += Vector256.Load(Bias + j);
            }
            sum.Store(Y + ((nint)t * N) + j);
        }

        /// <summary>Rows past the last whole strip, in row form: per block the exact sum of the signed products, then the same scaling.</summary>
        private readonly void TailRows(int firstRow)
        {
            int blocks = K / BlockMatrix.BlockSize;
            for (int j = firstRow; j < N; j++)
            {
                for (int t = 0; t < M; t++)
                {
                    float sum = 0f;
                    for (int b = 0; b < blocks; b++)
                    {
                        BlockLocation at = BlockMatrix<TF>.Locate(W, N, K, j, b);
                        // Block-major activations (see Activations).
                        nint xAt = ((nint)b * M) + t;
                        int p = Vector256.Sum(TDot.Dot(TF.Load(at.Quants), Vector256.Load(Xq + (xAt * BlockMatrix.BlockSize))));
                        float d = ElementTypes.F16ToSingle(*at.Scale) * Xd[xAt];
                        sum = MathF.FusedMultiplyAdd(p, d, sum);
                    }
                    Y[((nint)t * N) + j] = Bias != null ? sum + Bias[j] : sum;
                }
            }
        }
    }
}
