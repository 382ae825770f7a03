using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>
/// torch.nn.functional.linear on the AI Cores: y[m,n] = x[m,k] · W[n,k]^T (+ bias). Decode-sized
/// inputs (m ≤ <see cref="GemvMaxRows"/>) are bandwidth bound, so W is streamed exactly once from
/// memory in its stored precision and widened in registers; larger inputs (prefill) go through the
/// blocked GEMM, which widens W to f32 while packing it. Q8_0, Q4_0 and Q4_K weights go to
/// <see cref="QuantizedLinear"/>, which multiplies in int8.
/// </summary>
internal static unsafe class LinearKernel
{
    /// <summary>
    /// Decode batches (a batched decode step has a row per sequence): re-reading a 4-row strip of W
    /// from L1/L2 per group of four tokens is cheap, while the GEMM would first write all of W back out
    /// as f32 panels, which pays off only once many rows share them.
    /// </summary>
    internal const int GemvMaxRows = 8;

    /// <summary>y[m,n] = x[m,k] · W[n,k]^T (+ bias[n] when bias is non-empty); W given as raw bytes of <paramref name="wType"/>; fp32 accumulation.</summary>
    public static void Linear(AiCoreGrid grid, ReadOnlySpan<float> x, ReadOnlySpan<byte> w, ElementType wType, ReadOnlySpan<float> bias, Span<float> y, int m, int k, int n)
        => Linear(grid, x, w, wType, bias, y, m, k, n, Gemm.DefaultIsa);

    internal static void Linear(AiCoreGrid grid, ReadOnlySpan<float> x, ReadOnlySpan<byte> w, ElementType wType, ReadOnlySpan<float> bias, Span<float> y, int m, int k, int n, GemmIsa isa)
        => Linear(grid, x, w, wType, bias, y, m, k, n, isa, Int8Dot.DefaultIsa);

    /// <summary>As above, with the int8 dot-product form of block-quantized weights chosen (tests run every form the machine has).</summary>
    internal static void Linear(AiCoreGrid grid, ReadOnlySpan<float> x, ReadOnlySpan<byte> w, ElementType wType, ReadOnlySpan<float> bias, Span<float> y, int m, int k, int n, GemmIsa isa, Int8DotIsa int8Isa)
    {
        ArgumentNullException.ThrowIfNull(grid);
        RequireWeightType(wType, k, int8Isa);
        KernelArguments.RequireDimensions(m, k, n);
        KernelArguments.RequireLength(x.Length, (long)m * k, nameof(x));
        KernelArguments.RequireLength(w.Length, ElementTypes.MatrixBytes(wType, n, k), nameof(w));
        if (!bias.IsEmpty)
        {
            KernelArguments.RequireLength(bias.Length, n, nameof(bias));
        }
        KernelArguments.RequireLength(y.Length, (long)m * n, nameof(y));
        fixed (float* px = x, pbias = bias, py = y)
        fixed (byte* pw = w)
        {
            KernelArguments.RequireDisjoint(py, y.Length * 4L, px, x.Length * 4L, nameof(x));
            KernelArguments.RequireDisjoint(py, y.Length * 4L, pw, w.Length, nameof(w));
            KernelArguments.RequireDisjoint(py, y.Length * 4L, pbias, bias.Length * 4L, nameof(bias));
            float* biasOrNull = bias.IsEmpty ? null : pbias;
            if (ElementTypes.IsBlockQuantized(wType))
            {
                QuantizedLinear.Linear(grid, px, pw, wType, biasOrNull, py, m, k, n, int8Isa);
                return;
            }
            if (m == 0 || n == 0)
            {
                return;
            }
            if (m <= GemvMaxRows && k > 0)
            {
                if (wType == ElementType.BF16Panels)
                {
                    PanelGemv.Linear(grid, px, pw, biasOrNull, py, m, k, n);
                    return;
                }
                Gemv(grid, px, pw, wType, biasOrNull, py, m, k, n, isa);
                return;
            }
            var problem = new GemmProblem
            {
                A = px, Lda = k, B = pw, Ldb = k, Layout = wType == ElementType.BF16Panels ? BLayout.Panels : BLayout.NK, BType = wType,
                C = py, Ldc = n, Bias = biasOrNull, M = m, N = n, K = k,
            };
            Gemm.Run(grid, problem, isa);
        }
    }

    /// <summary>
    /// Two or three linears that share their input, as one launch: y_i[m,n_i] = x[m,k] · W_i[n_i,k]^T
    /// (no bias; <paramref name="n2"/> = 0 leaves out the third). Llama's q/k/v and gate/up projections
    /// read the same normalised activations: in decode, one grid launch over all their rows costs one
    /// hand-out and one barrier instead of three, and the cores stay busy across the small k/v matrices.
    /// Prefill sizes run the GEMM per weight, which is compute bound anyway.
    /// </summary>
    public static void LinearFused(AiCoreGrid grid, ReadOnlySpan<float> x, ElementType wType, int m, int k,
        ReadOnlySpan<byte> w0, Span<float> y0, int n0, ReadOnlySpan<byte> w1, Span<float> y1, int n1, ReadOnlySpan<byte> w2, Span<float> y2, int n2)
        => LinearFused(grid, x, wType, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, Gemm.DefaultIsa);

    internal static void LinearFused(AiCoreGrid grid, ReadOnlySpan<float> x, ElementType wType, int m, int k,
        ReadOnlySpan<byte> w0, Span<float> y0, int n0, ReadOnlySpan<byte> w1, Span<float> y1, int n1, ReadOnlySpan<byte> w2, Span<float> y2, int n2, GemmIsa isa)
        => LinearFused(grid, x, wType, m, k, w0, y0, n0, w1, y1, n1, w2, y2, n2, isa, Int8Dot.DefaultIsa);

    /// <summary>As above, with the int8 dot-product form of block-quantized weights chosen.</summary>
    internal static void LinearFused(AiCoreGrid grid, ReadOnlySpan<float> x, ElementType wType, int m, int k,
        ReadOnlySpan<byte> w0, Span<float> y0, int n0, ReadOnlySpan<byte> w1, Span<float> y1, int n1, ReadOnlySpan<byte> w2, Span<float> y2, int n2, GemmIsa isa, Int8DotIsa int8Isa)
    {
        ArgumentNullException.ThrowIfNull(grid);
        if (!ElementTypes.IsBlockQuantized(wType) && (m > GemvMaxRows || k == 0))
        {
            Linear(grid, x, w0, wType, default, y0, m, k, n0, isa);
            Linear(grid, x, w1, wType, default, y1, m, k, n1, isa);
            if (n2 > 0)
            {
                Linear(grid, x, w2, wType, default, y2, m, k, n2, isa);
            }
            return;
        }
        RequireWeightType(wType, k, int8Isa);
        KernelArguments.RequireDimensions(m, k, n0);
        KernelArguments.RequireDimensions(m, k, n1);
        KernelArguments.RequireDimensions(m, k, n2);
        KernelArguments.RequireLength(x.Length, (long)m * k, nameof(x));
        KernelArguments.RequireLength(w0.Length, ElementTypes.MatrixBytes(wType, n0, k), nameof(w0));
        KernelArguments.RequireLength(w1.Length, ElementTypes.MatrixBytes(wType, n1, k), nameof(w1));
        KernelArguments.RequireLength(w2.Length, ElementTypes.MatrixBytes(wType, n2, k), nameof(w2));
        KernelArguments.RequireLength(y0.Length, (long)m * n0, nameof(y0));
        KernelArguments.RequireLength(y1.Length, (long)m * n1, nameof(y1));
        KernelArguments.RequireLength(y2.Length, (long)m * n2, nameof(y2));
        fixed (float* px = x, py0 = y0, py1 = y1, py2 = y2)
        fixed (byte* pw0 = w0, pw1 = w1, pw2 = w2)
        {
            // Outputs must not alias the input or any weight, nor each other.
            RequireDisjointOutputs(py0, y0.Length, px, x.Length, pw0, w0.Length, pw1, w1.Length, pw2, w2.Length);
            RequireDisjointOutputs(py1, y1.Length, px, x.Length, pw0, w0.Length, pw1, w1.Length, pw2, w2.Length);
            RequireDisjointOutputs(py2, y2.Length, px, x.Length, pw0, w0.Length, pw1, w1.Length, pw2, w2.Length);
            KernelArguments.RequireDisjoint(py0, y0.Length * 4L, py1, y1.Length * 4L, nameof(y1));
            KernelArguments.RequireDisjoint(py0, y0.Length * 4L, py2, y2.Length * 4L, nameof(y2));
            KernelArguments.RequireDisjoint(py1, y1.Length * 4L, py2, y2.Length * 4L, nameof(y2));
            if (ElementTypes.IsBlockQuantized(wType))
            {
                QuantizedLinear.LinearFused(grid, px, wType, m, k, pw0, py0, n0, pw1, py1, n1, pw2, py2, n2, int8Isa);
                return;
            }
            if (wType == ElementType.BF16Panels)
            {
                PanelGemv.LinearFused(grid, px, m, k, pw0, py0, n0, pw1, py1, n1, pw2, py2, n2);
                return;
            }
            int rowsPerBlock = GemvRowsPerBlock(grid, n0 + n1 + n2);
            bool wide = isa == GemmIsa.Vector512;
            switch (wType)
            {
                case ElementType.F32:
                    LaunchFused<F32Weights>(grid, px, m, k, pw0, py0, n0, pw1, py1, n1, pw2, py2, n2, rowsPerBlock, wide);
                    break;
                case ElementType.BF16:
                    LaunchFused<BF16Weights>(grid, px, m, k, pw0, py0, n0, pw1, py1, n1, pw2, py2, n2, rowsPerBlock, wide);
                    break;
                default:
                    LaunchFused<F16Weights>(grid, px, m, k, pw0, py0, n0, pw1, py1, n1, pw2, py2, n2, rowsPerBlock, wide);
                    break;
            }
        }
    }

    /// <summary>
    /// The weight types the kernels read; a block-quantized weight's rows must be whole blocks of 32,
    /// and the chosen int8 form must exist on this machine.
    /// </summary>
    private static void RequireWeightType(ElementType wType, int k, Int8DotIsa int8Isa)
    {
        if (wType is not (ElementType.F32 or ElementType.F16 or ElementType.BF16 or ElementType.Q8_0 or ElementType.Q4_0 or ElementType.Q4_K or ElementType.BF16Panels
            or ElementType.Q4_0Panels or ElementType.Q4_KPanels))
        {
            throw new ArgumentOutOfRangeException(nameof(wType), wType, "Weights must be F32, F16, BF16, Q8_0, Q4_0, Q4_K, BF16Panels, Q4_0Panels or Q4_KPanels.");
        }
        if (ElementTypes.IsBlockQuantized(wType))
        {
            BlockMatrix.RequireWholeBlocks(k, $"the {wType} weight");
            if (ElementTypes.IsQ4_K(wType))
            {
                Q4_KMatrix.RequireWholeSuperBlocks(k, $"the {wType} weight");
            }
            if (!Int8Dot.IsSupported(int8Isa))
            {
                throw new PlatformNotSupportedException($"This CPU has no {int8Isa}; use Int8Dot.DefaultIsa ({Int8Dot.DefaultIsa}).");
            }
        }
    }

    private static void RequireDisjointOutputs(float* y, int yLength, float* x, int xLength, byte* w0, int w0Length, byte* w1, int w1Length, byte* w2, int w2Length)
    {
        KernelArguments.RequireDisjoint(y, yLength * 4L, x, xLength * 4L, "x");
        KernelArguments.RequireDisjoint(y, yLength * 4L, w0, w0Length, "w0");
        KernelArguments.RequireDisjoint(y, yLength * 4L, w1, w1Length, "w1");
        KernelArguments.RequireDisjoint(y, yLength * 4L, w2, w2Length, "w2");
    }

    private static void LaunchFused<TW>(AiCoreGrid grid, float* x, int m, int k, byte* w0, float* y0, int n0, byte* w1, float* y1, int n1, byte* w2, float* y2, int n2, int rowsPerBlock, bool wide)
        where TW : struct, IWeightReader
    {
        GemvKernel<TW> Part(byte* w, float* y, int n) => new() { X = x, W = w, Y = y, M = m, K = k, N = n, RowsPerBlock = rowsPerBlock, Wide = wide };
        int blocks0 = (n0 + rowsPerBlock - 1) / rowsPerBlock, blocks1 = (n1 + rowsPerBlock - 1) / rowsPerBlock, blocks2 = (n2 + rowsPerBlock - 1) / rowsPerBlock;
        var kernel = new FusedBlocks<GemvKernel<TW>>
        {
            Part0 = Part(w0, y0, n0), Part1 = Part(w1, y1, n1), Part2 = Part(w2, y2, n2),
            End0 = blocks0, End1 = blocks0 + blocks1,
        };
        grid.Launch(blocks0 + blocks1 + blocks2, ref kernel);
    }

    private static void Gemv(AiCoreGrid grid, float* x, byte* w, ElementType wType, float* bias, float* y, int m, int k, int n, GemmIsa isa)
    {
        int rowsPerBlock = GemvRowsPerBlock(grid, n);
        int blocks = (n + rowsPerBlock - 1) / rowsPerBlock;
        bool wide = isa == GemmIsa.Vector512;
        switch (wType)
        {
            case ElementType.F32:
                LaunchGemv<F32Weights>(grid, x, w, bias, y, m, k, n, rowsPerBlock, blocks, wide);
                break;
            case ElementType.BF16:
                LaunchGemv<BF16Weights>(grid, x, w, bias, y, m, k, n, rowsPerBlock, blocks, wide);
                break;
            default:
                LaunchGemv<F16Weights>(grid, x, w, bias, y, m, k, n, rowsPerBlock, blocks, wide);
                break;
        }
    }

    /// <summary>Several blocks per core so the atomic hand-out evens out cores that start late; a multiple of the 4-row strip.</summary>
    private static int GemvRowsPerBlock(AiCoreGrid grid, int rows) =>
        Math.Max(4, ((rows + 8 * grid.CoreCount - 1) / (8 * grid.CoreCount) + 3) & ~3);

    private static void LaunchGemv<TW>(AiCoreGrid grid, float* x, byte* w, float* bias, float* y, int m, int k, int n, int rowsPerBlock, int blocks, bool wide)
        where TW : struct, IWeightReader
    {
        var kernel = new GemvKernel<TW>
        {
            X = x, W = w, Bias = bias, Y = y, M = m, K = k, N = n, RowsPerBlock = rowsPerBlock, Wide = wide,
        };
        grid.Launch(blocks, ref kernel);
    }

    /// <summary>
    /// Reads weights of one storage type as f32 vectors; a static interface so each type gets its own
    /// specialised loop. Loads return a vector (no out parameters) so the JIT keeps everything in registers.
    /// </summary>
    internal interface IWeightReader
    {
        static abstract int ElementSize { get; }

        /// <summary>Elements [i, i+16) of the row.</summary>
        static abstract Vector512<float> Load16(byte* row, nint i);

        /// <summary>Elements [i, i+8) of the row.</summary>
        static abstract Vector256<float> Load8(byte* row, nint i);

        static abstract float Load(byte* row, nint i);
    }

    internal readonly struct F32Weights : IWeightReader, KvCache.IRowReader
    {
        public static int ElementSize => 4;

        public static nint Bytes(nint elements) => elements * 4;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(byte* row, nint i) => Vector512.Load((float*)row + i);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load8(byte* row, nint i) => Vector256.Load((float*)row + i);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* row, nint i) => ((float*)row)[i];
    }

    internal readonly struct BF16Weights : IWeightReader, KvCache.IRowReader
    {
        public static int ElementSize => 2;

        public static nint Bytes(nint elements) => elements * 2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(byte* row, nint i) => WeightConversion.BF16ToSingle(WidenLoad16((ushort*)row + i));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load8(byte* row, nint i) => WeightConversion.BF16ToSingle(WidenLoad8((ushort*)row + i));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* row, nint i) => ElementTypes.BF16ToSingle(((ushort*)row)[i]);
    }

    internal readonly struct F16Weights : IWeightReader, KvCache.IRowReader
    {
        public static int ElementSize => 2;

        public static nint Bytes(nint elements) => elements * 2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(byte* row, nint i) => Avx512F.IsSupported
            ? WeightConversion.F16ToSingle(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)row + i)))
            : WeightConversion.F16ToSingle(WidenLoad16((ushort*)row + i));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load8(byte* row, nint i) => WeightConversion.F16ToSingle(WidenLoad8((ushort*)row + i));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* row, nint i) => ElementTypes.F16ToSingle(((ushort*)row)[i]);
    }

    /// <summary>
    /// The sixteen horizontal sums of sixteen vectors in one vector, in 45 shuffles and adds where
    /// sixteen <see cref="Vector512.Sum{T}"/> take about 400: lane 4c + j holds the sum of input 4j + c
    /// (the inputs' order transposed as a 4×4 grid). Halves are added, then quarters, pairs and lanes,
    /// two inputs at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Sum16(
        Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3,
        Vector512<float> v4, Vector512<float> v5, Vector512<float> v6, Vector512<float> v7,
        Vector512<float> v8, Vector512<float> v9, Vector512<float> v10, Vector512<float> v11,
        Vector512<float> v12, Vector512<float> v13, Vector512<float> v14, Vector512<float> v15)
    {
        // 256-bit halves: r holds two inputs' 8 partial sums each, as 128-bit lanes (p.0+p.2, p.1+p.3, q.0+q.2, q.1+q.3).
        static Vector512<float> Halves(Vector512<float> p, Vector512<float> q) =>
            Avx512F.Shuffle4x128(p, q, 0b01_00_01_00) + Avx512F.Shuffle4x128(p, q, 0b11_10_11_10);
        // 128-bit lanes: four inputs, one 128-bit lane of 4 partial sums each.
        static Vector512<float> Quarters(Vector512<float> p, Vector512<float> q) =>
            Avx512F.Shuffle4x128(p, q, 0b10_00_10_00) + Avx512F.Shuffle4x128(p, q, 0b11_01_11_01);
        // 64-bit pairs within each lane, then single lanes.
        static Vector512<float> Pairs(Vector512<float> p, Vector512<float> q) =>
            Avx512F.UnpackLow(p.AsDouble(), q.AsDouble()).AsSingle() + Avx512F.UnpackHigh(p.AsDouble(), q.AsDouble()).AsSingle();
        static Vector512<float> Singles(Vector512<float> p, Vector512<float> q) =>
            Avx512F.Shuffle(p, q, 0b10_00_10_00) + Avx512F.Shuffle(p, q, 0b11_01_11_01);

        Vector512<float> s0 = Quarters(Halves(v0, v1), Halves(v2, v3));
        Vector512<float> s1 = Quarters(Halves(v4, v5), Halves(v6, v7));
        Vector512<float> s2 = Quarters(Halves(v8, v9), Halves(v10, v11));
        Vector512<float> s3 = Quarters(Halves(v12, v13), Halves(v14, v15));
        return Singles(Pairs(s0, s1), Pairs(s2, s3));
    }

    /// <summary>16 ushorts zero-extended to uint lanes: one vpmovzxwd straight from memory on AVX-512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<uint> WidenLoad16(ushort* p) => Avx512F.IsSupported
        ? Avx512F.ConvertToVector512UInt32(Vector256.Load(p))
        : Vector512.WidenLower(Vector256.Load(p).ToVector512());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> WidenLoad8(ushort* p) => Avx2.IsSupported
        ? Avx2.ConvertToVector256Int32(p).AsUInt32()
        : Vector256.WidenLower(Vector128.Load(p).ToVector256());

    /// <summary>
    /// Each block owns a run of output features (rows of W). One token reads the rows one after
    /// another (<see cref="Dot1"/>): memory-bound, it wants one sequential stream; so do two
    /// (<see cref="Dot1x2"/>, one token's arithmetic for each). Three or more
    /// tokens reduce four rows together with one accumulator per row and token, so each x vector
    /// loaded serves four rows: sixteen independent FMA chains per weight vector, compute-bound at
    /// eight tokens. For m &gt; 4 the same 4-row strip is re-read from cache per group of tokens, so
    /// DRAM still sees W once.
    /// </summary>
    private struct GemvKernel<TW> : IBlockKernel where TW : struct, IWeightReader
    {

        public float* X, Bias, Y;
        public byte* W;
        public int M, K, N, RowsPerBlock;
        public bool Wide;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int block)
        {
            int j0 = block * RowsPerBlock;
            int j1 = Math.Min(N, j0 + RowsPerBlock);
            nint rowBytes = (nint)K * TW.ElementSize;
            int j = j0;
            float* sums = stackalloc float[16];
            if (Wide && M == 2)
            {
                // Two tokens: also one row after another, each weight vector widened once for both
                // (Dot1x2). Measured on the 1.1B step's linears (bench -- gemv, alternated three times):
                // 40.4 → 35.0 ms with one token at 28.4–28.6, and 55.0–56.2 → 47.1–47.4 in the hours
                // memory is slower, against four rows at a time (Dot4x512Pair). Three tokens this way
                // (then one more Dot1 per row) were slower than Pair and a four-row pass: 50–57 against 37–50.
                for (; j < j1; j++)
                {
                    Dot1x2(X, X + K, W + j * rowBytes, K, out float s0, out float s1);
                    Y[j] = Bias != null ? s0 + Bias[j] : s0;
                    Y[N + j] = Bias != null ? s1 + Bias[j] : s1;
                }
                return;
            }
            if (Wide && M == 1)
            {
                // One token: the block's rows one after another, a single sequential stream (Dot1).
                for (; j < j1; j++)
                {
                    float s = Dot1(X, W + j * rowBytes, K, wide: true);
                    Y[j] = Bias != null ? s + Bias[j] : s;
                }
                return;
            }
            for (; j + 4 <= j1; j += 4)
            {
                byte* r0 = W + j * rowBytes;
                int t = 0;
                if (Wide)
                {
                    // Four tokens per pass: each widened weight vector feeds sixteen FMAs. Eight
                    // tokens (a batched decode step of eight sequences) are two such passes over the
                    // strip, the second reading it from cache: measured on the 1.1B step's linears
                    // (bench -- gemv), 8 tokens 81–89 → 63–65 ms, against 55–60 ms for one token, where
                    // one pass of eight tokens two rows at a time kept all eight x rows streaming
                    // through L1 (64 KiB of them at k = 2048, past its 48 KiB) on every weight vector.
                    // The next strip is prefetched as one forward sweep spread over the passes, and the
                    // sixteen sums reduced together (Sum16): 8 tokens 58.4–60.5 → 55.2–57.4 ms, 4 tokens
                    // 54.2–56.2 → 51.4–53.5 (bench -- gemv, alternated three times, slow-memory hour);
                    // the down projection (k = 5632) alone 14.3 → 12.9 ms per 512 MB at 8 tokens.
                    int quads = M / 4;
                    for (; t + 4 <= M; t += 4)
                    {
                        // The next strip in one forward sweep, its share per pass (see Dot4x512Quad).
                        byte* next = j + 8 <= j1 ? r0 + (4 * rowBytes) + (t / 4 * 4 * rowBytes / quads) : null;
                        Dot4x512Quad(X + (nint)t * K, K, r0, rowBytes, sums, next, 64 * TW.ElementSize / quads);
                        for (int u = 0; u < 4; u++)
                        {
                            Store4(Y + (nint)(t + u) * N + j, sums + 4 * u, j);
                        }
                    }
                    // Two tokens per pass: each widened weight vector feeds both, halving the
                    // conversion work that dominates F16 weights at m = 2..4.
                    for (; t + 2 <= M; t += 2)
                    {
                        Dot4x512Pair(X + (nint)t * K, X + (nint)(t + 1) * K, r0, rowBytes, K, sums);
                        Store4(Y + (nint)t * N + j, sums, j);
                        Store4(Y + (nint)(t + 1) * N + j, sums + 4, j);
                    }
                }
                for (; t < M; t++)
                {
                    float* xt = X + (nint)t * K;
                    if (Wide)
                    {
                        Dot4x512(xt, r0, rowBytes, K, out sums[0], out sums[1], out sums[2], out sums[3]);
                    }
                    else
                    {
                        Dot4x256(xt, r0, rowBytes, K, out sums[0], out sums[1], out sums[2], out sums[3]);
                    }
                    Store4(Y + (nint)t * N + j, sums, j);
                }
            }
            for (; j < j1; j++)
            {
                byte* row = W + j * rowBytes;
                for (int t = 0; t < M; t++)
                {
                    float s = Dot1(X + (nint)t * K, row, K, Wide);
                    Y[(nint)t * N + j] = Bias != null ? s + Bias[j] : s;
                }
            }
        }

        /// <summary>y[j..j+4) = sums (+ bias[j..j+4)).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void Store4(float* y, float* sums, int j)
        {
            for (int r = 0; r < 4; r++)
            {
                y[r] = Bias != null ? sums[r] + Bias[j + r] : sums[r];
            }
        }

        /// <summary>
        /// sums[4t + r] = x_t · row r, for the four tokens from x (rows k apart) and four rows from r0,
        /// while <paramref name="bytesPerStep"/> bytes from <paramref name="next"/> per 16 columns are
        /// prefetched (null: none). At four or more tokens the strip is compute-bound, so the next strip
        /// must arrive while this one computes: prefetched front to back as one sequential sweep,
        /// non-temporally so it does not push x out of L1 (four x rows are 32 KiB at k = 2048).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Dot4x512Quad(float* x, int k, byte* r0, nint rowBytes, float* sums, byte* next, int bytesPerStep)
        {
            byte* r1 = r0 + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
            float* x0 = x, x1 = x + k, x2 = x1 + k, x3 = x2 + k;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
            Vector512<float> d0 = default, d1 = default, d2 = default, d3 = default;
            nint i = 0;
            for (; i <= k - 16; i += 16)
            {
                if (next != null && Sse.IsSupported)
                {
                    byte* p = next + ((i >> 4) * bytesPerStep);
                    for (int l = 0; l < bytesPerStep; l += 64)
                    {
                        Sse.PrefetchNonTemporal(p + l);
                    }
                }
                Vector512<float> u0 = Vector512.Load(x0 + i), u1 = Vector512.Load(x1 + i), u2 = Vector512.Load(x2 + i), u3 = Vector512.Load(x3 + i);
                Vector512<float> w = TW.Load16(r0, i);
                a0 = Vector512.FusedMultiplyAdd(w, u0, a0);
                b0 = Vector512.FusedMultiplyAdd(w, u1, b0);
                c0 = Vector512.FusedMultiplyAdd(w, u2, c0);
                d0 = Vector512.FusedMultiplyAdd(w, u3, d0);
                w = TW.Load16(r1, i);
                a1 = Vector512.FusedMultiplyAdd(w, u0, a1);
                b1 = Vector512.FusedMultiplyAdd(w, u1, b1);
                c1 = Vector512.FusedMultiplyAdd(w, u2, c1);
                d1 = Vector512.FusedMultiplyAdd(w, u3, d1);
                w = TW.Load16(r2, i);
                a2 = Vector512.FusedMultiplyAdd(w, u0, a2);
                b2 = Vector512.FusedMultiplyAdd(w, u1, b2);
                c2 = Vector512.FusedMultiplyAdd(w, u2, c2);
                d2 = Vector512.FusedMultiplyAdd(w, u3, d2);
                w = TW.Load16(r3, i);
                a3 = Vector512.FusedMultiplyAdd(w, u0, a3);
                b3 = Vector512.FusedMultiplyAdd(w, u1, b3);
                c3 = Vector512.FusedMultiplyAdd(w, u2, c3);
                d3 = Vector512.FusedMultiplyAdd(w, u3, d3);
            }
            float* s = sums;
            // Input position 4r + t holds (token t, row r): the transposed reduction puts it at 4t + r.
            Sum16(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3).Store(s);
            for (; i < k; i++)
            {
                float w0 = TW.Load(r0, i), w1 = TW.Load(r1, i), w2 = TW.Load(r2, i), w3 = TW.Load(r3, i);
                for (int t = 0; t < 4; t++)
                {
                    float xt = x[t * k + i];
                    s[4 * t] = MathF.FusedMultiplyAdd(w0, xt, s[4 * t]);
                    s[4 * t + 1] = MathF.FusedMultiplyAdd(w1, xt, s[4 * t + 1]);
                    s[4 * t + 2] = MathF.FusedMultiplyAdd(w2, xt, s[4 * t + 2]);
                    s[4 * t + 3] = MathF.FusedMultiplyAdd(w3, xt, s[4 * t + 3]);
                }
            }
        }

        /// <summary>sums[4t + r] = x_t · row r, for tokens x0, x1 and four rows from r0.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Dot4x512Pair(float* x0, float* x1, byte* r0, nint rowBytes, int k, float* sums)
        {
            byte* r1 = r0 + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            nint i = 0;
            byte* ahead = r0 + (4 * rowBytes);
            for (; i <= k - 16; i += 16)
            {
                if (Sse.IsSupported)
                {
                    // The next strip, as Dot4x512 prefetches it.
                    nint at = i * TW.ElementSize;
                    Sse.Prefetch0(ahead + at);
                    Sse.Prefetch0(ahead + rowBytes + at);
                    Sse.Prefetch0(ahead + (2 * rowBytes) + at);
                    Sse.Prefetch0(ahead + (3 * rowBytes) + at);
                }
                Vector512<float> u = Vector512.Load(x0 + i);
                Vector512<float> v = Vector512.Load(x1 + i);
                Vector512<float> w = TW.Load16(r0, i);
                a0 = Vector512.FusedMultiplyAdd(w, u, a0);
                b0 = Vector512.FusedMultiplyAdd(w, v, b0);
                w = TW.Load16(r1, i);
                a1 = Vector512.FusedMultiplyAdd(w, u, a1);
                b1 = Vector512.FusedMultiplyAdd(w, v, b1);
                w = TW.Load16(r2, i);
                a2 = Vector512.FusedMultiplyAdd(w, u, a2);
                b2 = Vector512.FusedMultiplyAdd(w, v, b2);
                w = TW.Load16(r3, i);
                a3 = Vector512.FusedMultiplyAdd(w, u, a3);
                b3 = Vector512.FusedMultiplyAdd(w, v, b3);
            }
            float s0 = Vector512.Sum(a0), s1 = Vector512.Sum(a1), s2 = Vector512.Sum(a2), s3 = Vector512.Sum(a3);
            float t0 = Vector512.Sum(b0), t1 = Vector512.Sum(b1), t2 = Vector512.Sum(b2), t3 = Vector512.Sum(b3);
            for (; i < k; i++)
            {
                float w0 = TW.Load(r0, i), w1 = TW.Load(r1, i), w2 = TW.Load(r2, i), w3 = TW.Load(r3, i);
                s0 = MathF.FusedMultiplyAdd(w0, x0[i], s0);
                s1 = MathF.FusedMultiplyAdd(w1, x0[i], s1);
                s2 = MathF.FusedMultiplyAdd(w2, x0[i], s2);
                s3 = MathF.FusedMultiplyAdd(w3, x0[i], s3);
                t0 = MathF.FusedMultiplyAdd(w0, x1[i], t0);
                t1 = MathF.FusedMultiplyAdd(w1, x1[i], t1);
                t2 = MathF.FusedMultiplyAdd(w2, x1[i], t2);
                t3 = MathF.FusedMultiplyAdd(w3, x1[i], t3);
            }
            sums[0] = s0;
            sums[1] = s1;
            sums[2] = s2;
            sums[3] = s3;
            sums[4] = t0;
            sums[5] = t1;
            sums[6] = t2;
            sums[7] = t3;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Dot4x512(float* x, byte* r0, nint rowBytes, int k, out float s0, out float s1, out float s2, out float s3)
        {
            byte* r1 = r0 + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            nint i = 0;
            // Software prefetch of the next strip's four rows, at the same offset: four rows ahead is far
            // enough to hide DRAM latency, and the hardware prefetchers, which stop at 4 KiB
            // boundaries, restart on every row when rows are 4 KiB (bf16, k = 2048). Measured: 1.1B's
            // fused gate/up GEMV 1.41-1.59 → 1.03-1.21 ms, 8192² f32 7.8 → 6.7 ms.
            byte* ahead = r0 + (4 * rowBytes);
            for (; i <= k - 32; i += 32)
            {
                if (Sse.IsSupported)
                {
                    nint at = i * TW.ElementSize;
                    Sse.Prefetch0(ahead + at);
                    Sse.Prefetch0(ahead + rowBytes + at);
                    Sse.Prefetch0(ahead + (2 * rowBytes) + at);
                    Sse.Prefetch0(ahead + (3 * rowBytes) + at);
                    if (TW.ElementSize == 4)
                    {
                        Sse.Prefetch0(ahead + at + 64);
                        Sse.Prefetch0(ahead + rowBytes + at + 64);
                        Sse.Prefetch0(ahead + (2 * rowBytes) + at + 64);
                        Sse.Prefetch0(ahead + (3 * rowBytes) + at + 64);
                    }
                }
                Vector512<float> x0 = Vector512.Load(x + i);
                Vector512<float> x1 = Vector512.Load(x + i + 16);
                a0 = Vector512.FusedMultiplyAdd(TW.Load16(r0, i), x0, a0);
                b0 = Vector512.FusedMultiplyAdd(TW.Load16(r0, i + 16), x1, b0);
                a1 = Vector512.FusedMultiplyAdd(TW.Load16(r1, i), x0, a1);
                b1 = Vector512.FusedMultiplyAdd(TW.Load16(r1, i + 16), x1, b1);
                a2 = Vector512.FusedMultiplyAdd(TW.Load16(r2, i), x0, a2);
                b2 = Vector512.FusedMultiplyAdd(TW.Load16(r2, i + 16), x1, b2);
                a3 = Vector512.FusedMultiplyAdd(TW.Load16(r3, i), x0, a3);
                b3 = Vector512.FusedMultiplyAdd(TW.Load16(r3, i + 16), x1, b3);
            }
            s0 = Vector512.Sum(a0 + b0);
            s1 = Vector512.Sum(a1 + b1);
            s2 = Vector512.Sum(a2 + b2);
            s3 = Vector512.Sum(a3 + b3);
            for (; i < k; i++)
            {
                float xi = x[i];
                s0 = MathF.FusedMultiplyAdd(TW.Load(r0, i), xi, s0);
                s1 = MathF.FusedMultiplyAdd(TW.Load(r1, i), xi, s1);
                s2 = MathF.FusedMultiplyAdd(TW.Load(r2, i), xi, s2);
                s3 = MathF.FusedMultiplyAdd(TW.Load(r3, i), xi, s3);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Dot4x256(float* x, byte* r0, nint rowBytes, int k, out float s0, out float s1, out float s2, out float s3)
        {
            byte* r1 = r0 + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
            nint i = 0;
            for (; i <= k - 16; i += 16)
            {
                Vector256<float> x0 = Vector256.Load(x + i);
                Vector256<float> x1 = Vector256.Load(x + i + 8);
                a0 = Vector256.FusedMultiplyAdd(TW.Load8(r0, i), x0, a0);
                b0 = Vector256.FusedMultiplyAdd(TW.Load8(r0, i + 8), x1, b0);
                a1 = Vector256.FusedMultiplyAdd(TW.Load8(r1, i), x0, a1);
                b1 = Vector256.FusedMultiplyAdd(TW.Load8(r1, i + 8), x1, b1);
                a2 = Vector256.FusedMultiplyAdd(TW.Load8(r2, i), x0, a2);
                b2 = Vector256.FusedMultiplyAdd(TW.Load8(r2, i + 8), x1, b2);
                a3 = Vector256.FusedMultiplyAdd(TW.Load8(r3, i), x0, a3);
                b3 = Vector256.FusedMultiplyAdd(TW.Load8(r3, i + 8), x1, b3);
            }
            s0 = Vector256.Sum(a0 + b0);
            s1 = Vector256.Sum(a1 + b1);
            s2 = Vector256.Sum(a2 + b2);
            s3 = Vector256.Sum(a3 + b3);
            for (; i < k; i++)
            {
                float xi = x[i];
                s0 = MathF.FusedMultiplyAdd(TW.Load(r0, i), xi, s0);
                s1 = MathF.FusedMultiplyAdd(TW.Load(r1, i), xi, s1);
                s2 = MathF.FusedMultiplyAdd(TW.Load(r2, i), xi, s2);
                s3 = MathF.FusedMultiplyAdd(TW.Load(r3, i), xi, s3);
            }
        }

        /// <summary>
        /// How far ahead <see cref="Dot1"/> prefetches in the row's own stream (the next row, where this
        /// one ends). A block's rows are contiguous, so one token's GEMV is one sequential stream a core:
        /// measured on the 1.1B step's BF16 linears (bench -- gemv, variants alternated twice) 38.1–38.3
        /// → 28.6–29.1 ms, 97 % of the read bandwidth, where four rows at a time (four 4 KiB streams,
        /// the next strip prefetched) reached 74 %; 2, 8 or 16 KiB ahead was 91–99 %.
        /// </summary>
        private const int RowPrefetchAhead = 4096;

        /// <summary>The lines <see cref="RowPrefetchAhead"/> past element <paramref name="i"/>'s 32 elements of <paramref name="row"/> (one line of bf16/f16, two of f32).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void PrefetchRowAhead(byte* row, nint i)
        {
            if (Sse.IsSupported)
            {
                nint at = i * TW.ElementSize;
                Sse.Prefetch0(row + at + RowPrefetchAhead);
                if (TW.ElementSize == 4)
                {
                    Sse.Prefetch0(row + at + RowPrefetchAhead + 64);
                }
            }
        }

        /// <summary><see cref="Dot1"/> (wide) for two tokens at once: x0 · row and x1 · row, each widened weight vector used for both.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Dot1x2(float* x0, float* x1, byte* row, int k, out float s0, out float s1)
        {
            nint i = 0;
            Vector512<float> a = default, b = default, c = default, d = default;
            for (; i <= k - 32; i += 32)
            {
                PrefetchRowAhead(row, i);
                Vector512<float> w0 = TW.Load16(row, i), w1 = TW.Load16(row, i + 16);
                a = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x0 + i), a);
                b = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x0 + i + 16), b);
                c = Vector512.FusedMultiplyAdd(w0, Vector512.Load(x1 + i), c);
                d = Vector512.FusedMultiplyAdd(w1, Vector512.Load(x1 + i + 16), d);
            }
            s0 = Vector512.Sum(a + b);
            s1 = Vector512.Sum(c + d);
            for (; i < k; i++)
            {
                float w = TW.Load(row, i);
                s0 = MathF.FusedMultiplyAdd(w, x0[i], s0);
                s1 = MathF.FusedMultiplyAdd(w, x1[i], s1);
            }
        }

        /// <summary>x · row, front to back; on the wide path the FMA order is Dot4x512's (two accumulators, i and i + 16).</summary>
        // Inlined: one token calls it once a row, inside the block's loop.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float Dot1(float* x, byte* row, int k, bool wide)
        {
            nint i = 0;
            float s = 0f;
            if (wide)
            {
                Vector512<float> a = default, b = default;
                for (; i <= k - 32; i += 32)
                {
                    PrefetchRowAhead(row, i);
                    a = Vector512.FusedMultiplyAdd(TW.Load16(row, i), Vector512.Load(x + i), a);
                    b = Vector512.FusedMultiplyAdd(TW.Load16(row, i + 16), Vector512.Load(x + i + 16), b);
                }
                s = Vector512.Sum(a + b);
            }
            else
            {
                Vector256<float> a = default, b = default;
                for (; i <= k - 16; i += 16)
                {
                    a = Vector256.FusedMultiplyAdd(TW.Load8(row, i), Vector256.Load(x + i), a);
                    b = Vector256.FusedMultiplyAdd(TW.Load8(row, i + 8), Vector256.Load(x + i + 8), b);
                }
                s = Vector256.Sum(a + b);
            }
            for (; i < k; i++)
            {
                s = MathF.FusedMultiplyAdd(TW.Load(row, i), x[i], s);
            }
            return s;
        }
    }
}
