using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>
/// y[m,n] = x[m,k] · W[n,k]ᵀ (+ bias) for m ≤ <see cref="LinearKernel.GemvMaxRows"/> tokens and W in
/// <see cref="ElementType.BF16Panels"/>: panels of 32 rows stored column by column, so input position i
/// of a panel is 64 contiguous bytes, two zmm of 16 rows once widened. Each of them is multiplied by
/// every token's x[t, i], broadcast, into that token's 32 output rows: y_t[panel] += w_i · x[t, i].
/// <para>
/// The row-major GEMV (<see cref="LinearKernel"/>) takes dot products: at eight tokens it reads four
/// rows (four streams) per pass, widens each weight vector twice (two passes of four tokens) and ends
/// every pass with horizontal sums. Here a core reads its panels as one sequential stream, widens each
/// weight vector once for all tokens and keeps every sum in its output lane. Measured in a harness
/// (2026-12-04, eight tokens, 2048×2048 bf16 matrices, both cores): from the L3 235 against 178 GMAC/s,
/// from memory 155–167 against 126–147 (with 48-row panels 171–178, but 48 divides none of a Llama's
/// widths); on the 1.1B step's linears (bench -- gemv, slow memory) eight tokens 61.3 → 48.0 ms, the
/// read bandwidth's rate, and one token 44.2 → 45.0 (the same).
/// </para>
/// Every lane adds its products in input order, one FMA a position, whatever the number of tokens:
/// a token's sums do not depend on how many others share the launch.
/// </summary>
internal static unsafe class PanelGemv
{
    /// <summary>Rows per panel: two zmm of f32 lanes.</summary>
    public const int PanelRows = 32;

    /// <summary>
    /// How far ahead of the position being read its panel's next line is requested: the hardware
    /// prefetchers stop at each 4 KiB page. As the row-major one-token GEMV (<see cref="LinearKernel"/>).
    /// </summary>
    private const int PrefetchDistance = 4096;

    /// <summary>Bytes of a [rows, cols] matrix in panels; the rows must be whole panels.</summary>
    public static long Bytes(long rows, long cols)
    {
        if (rows % PanelRows != 0)
        {
            throw new ArgumentException($"a BF16Panels matrix has whole panels of {PanelRows} rows; {rows} rows are not, so keep this matrix in BF16", nameof(rows));
        }
        return rows * cols * 2;
    }

    /// <summary>
    /// A row-major [rows, cols] bf16 matrix (raw bits) in panels: panel p's position i holds rows
    /// 32p..32p+31 of column i.
    /// </summary>
    public static void FromRows(ReadOnlySpan<ushort> rowMajor, Span<ushort> panels, int rows, int cols)
    {
        long bytes = Bytes(rows, cols);
        KernelArgs.RequireLength(rowMajor.Length, bytes / 2, nameof(rowMajor));
        KernelArgs.RequireLength(panels.Length, bytes / 2, nameof(panels));
        for (int p = 0; p < rows / PanelRows; p++)
        {
            Span<ushort> panel = panels.Slice(p * PanelRows * cols, PanelRows * cols);
            for (int r = 0; r < PanelRows; r++)
            {
                ReadOnlySpan<ushort> row = rowMajor.Slice(((p * PanelRows) + r) * cols, cols);
                for (int i = 0; i < cols; i++)
                {
                    panel[(i * PanelRows) + r] = row[i];
                }
            }
        }
    }

    /// <summary>y = x·Wᵀ (+ bias), m in 1..8; pointers valid and checked by the caller, n a multiple of 32.</summary>
    public static void Linear(AiCoreGrid grid, float* x, byte* w, float* bias, float* y, int m, int k, int n)
    {
        float* xt = TokenMinor(x, m, k);
        int panelsPerBlock = PanelsPerBlock(grid, n / PanelRows);
        var kernel = Part(xt, w, bias, y, m, k, n, panelsPerBlock);
        grid.Launch(Blocks(n, panelsPerBlock), ref kernel);
    }

    /// <summary>Up to three bias-free linears over one x as one launch (<see cref="LinearKernel.LinearFused(AiCoreGrid, ReadOnlySpan{float}, ElementType, int, int, ReadOnlySpan{byte}, Span{float}, int, ReadOnlySpan{byte}, Span{float}, int, ReadOnlySpan{byte}, Span{float}, int)"/>).</summary>
    public static void LinearFused(AiCoreGrid grid, float* x, int m, int k, byte* w0, float* y0, int n0, byte* w1, float* y1, int n1, byte* w2, float* y2, int n2)
    {
        float* xt = TokenMinor(x, m, k);
        int panelsPerBlock = PanelsPerBlock(grid, (n0 + n1 + n2) / PanelRows);
        int blocks0 = Blocks(n0, panelsPerBlock), blocks1 = Blocks(n1, panelsPerBlock), blocks2 = Blocks(n2, panelsPerBlock);
        var kernel = new FusedBlocks<PanelKernel>
        {
            Part0 = Part(xt, w0, null, y0, m, k, n0, panelsPerBlock),
            Part1 = Part(xt, w1, null, y1, m, k, n1, panelsPerBlock),
            Part2 = Part(xt, w2, null, y2, m, k, n2, panelsPerBlock),
            End0 = blocks0, End1 = blocks0 + blocks1,
        };
        grid.Launch(blocks0 + blocks1 + blocks2, ref kernel);
    }

    private static PanelKernel Part(float* xt, byte* w, float* bias, float* y, int m, int k, int n, int panelsPerBlock) => new()
    {
        X = xt, W = w, Bias = bias, Y = y, M = m, K = k, N = n, PanelsPerBlock = panelsPerBlock,
    };

    private static int Blocks(int n, int panelsPerBlock) => (n / PanelRows + panelsPerBlock - 1) / panelsPerBlock;

    /// <summary>Several blocks per core, as the row-major GEMV, so the atomic hand-out evens out cores that start late.</summary>
    private static int PanelsPerBlock(AiCoreGrid grid, int panels) => Math.Max(1, (panels + (8 * grid.CoreCount) - 1) / (8 * grid.CoreCount));

    /// <summary>
    /// x[m,k] as [k,m] in the launching thread's scratch, so a position's m activations are one short
    /// run the blocks broadcast from; one token needs no copy.
    /// </summary>
    private static float* TokenMinor(float* x, int m, int k)
    {
        if (m == 1)
        {
            return x;
        }
        float* xt = (float*)KernelScratch.LaunchScratch((long)m * k * sizeof(float));
        for (int t = 0; t < m; t++)
        {
            float* row = x + ((nint)t * k);
            for (int i = 0; i < k; i++)
            {
                xt[((nint)i * m) + t] = row[i];
            }
        }
        return xt;
    }

    /// <summary>Each work block owns a run of panels; X is token-minor ([k, m]).</summary>
    private struct PanelKernel : IBlockKernel
    {
        public float* X, Bias, Y;
        public byte* W;
        public int M, K, N, PanelsPerBlock;

        // Not inlined into the grid's dispatch: inlined there, its widening helper stopped being inlined
        // in turn and every weight vector became a call (a harness ran 2-3× slower).
        [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
        public readonly void Execute(int block)
        {
            int panels = N / PanelRows;
            int p1 = Math.Min(panels, (block + 1) * PanelsPerBlock);
            for (int p = block * PanelsPerBlock; p < p1; p++)
            {
                switch (M)
                {
                    case 1: Panel<OneToken>(p); break;
                    case 2: Panel<TwoTokens>(p); break;
                    case 3: Panel<ThreeTokens>(p); break;
                    case 4: Panel<FourTokens>(p); break;
                    case 5: Panel<FiveTokens>(p); break;
                    case 6: Panel<SixTokens>(p); break;
                    case 7: Panel<SevenTokens>(p); break;
                    default: Panel<EightTokens>(p); break;
                }
            }
        }

        /// <summary>Panel <paramref name="p"/> for TM.Count tokens: per position two widened weight vectors, an FMA for each token and each.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void Panel<TM>(int p) where TM : struct, ITokenCount
        {
            int m = TM.Count;
            byte* w = W + ((nint)p * K * PanelRows * 2);
            float* x = X;
            // Sixteen named accumulators, token by token, rather than an array: the JIT keeps locals in
            // zmm registers and an array's elements in memory, a store and a load in every FMA chain.
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
            for (int i = 0; i < K; i++)
            {
                if (Sse.IsSupported)
                {
                    Sse.Prefetch0(w + PrefetchDistance);
                }
                Vector512<float> lo = Widen(w), hi = Widen(w + 32);
                Vector512<float> u = Vector512.Create(x[0]);
                a0 = Vector512.FusedMultiplyAdd(lo, u, a0);
                b0 = Vector512.FusedMultiplyAdd(hi, u, b0);
                if (TM.Count > 1)
                {
                    u = Vector512.Create(x[1]);
                    a1 = Vector512.FusedMultiplyAdd(lo, u, a1);
                    b1 = Vector512.FusedMultiplyAdd(hi, u, b1);
                }
                if (TM.Count > 2)
                {
                    u = Vector512.Create(x[2]);
                    a2 = Vector512.FusedMultiplyAdd(lo, u, a2);
                    b2 = Vector512.FusedMultiplyAdd(hi, u, b2);
                }
                if (TM.Count > 3)
                {
                    u = Vector512.Create(x[3]);
                    a3 = Vector512.FusedMultiplyAdd(lo, u, a3);
                    b3 = Vector512.FusedMultiplyAdd(hi, u, b3);
                }
                if (TM.Count > 4)
                {
                    u = Vector512.Create(x[4]);
                    a4 = Vector512.FusedMultiplyAdd(lo, u, a4);
                    b4 = Vector512.FusedMultiplyAdd(hi, u, b4);
                }
                if (TM.Count > 5)
                {
                    u = Vector512.Create(x[5]);
                    a5 = Vector512.FusedMultiplyAdd(lo, u, a5);
                    b5 = Vector512.FusedMultiplyAdd(hi, u, b5);
                }
                if (TM.Count > 6)
                {
                    u = Vector512.Create(x[6]);
                    a6 = Vector512.FusedMultiplyAdd(lo, u, a6);
                    b6 = Vector512.FusedMultiplyAdd(hi, u, b6);
                }
                if (TM.Count > 7)
                {
                    u = Vector512.Create(x[7]);
                    a7 = Vector512.FusedMultiplyAdd(lo, u, a7);
                    b7 = Vector512.FusedMultiplyAdd(hi, u, b7);
                }
                w += PanelRows * 2;
                x += m;
            }
            int j = p * PanelRows;
            Store(a0, b0, 0, j);
            if (TM.Count > 1)
            {
                Store(a1, b1, 1, j);
            }
            if (TM.Count > 2)
            {
                Store(a2, b2, 2, j);
            }
            if (TM.Count > 3)
            {
                Store(a3, b3, 3, j);
            }
            if (TM.Count > 4)
            {
                Store(a4, b4, 4, j);
            }
            if (TM.Count > 5)
            {
                Store(a5, b5, 5, j);
            }
            if (TM.Count > 6)
            {
                Store(a6, b6, 6, j);
            }
            if (TM.Count > 7)
            {
                Store(a7, b7, 7, j);
            }
        }

        /// <summary>y[t, j..j+32) = (lo, hi) (+ bias[j..j+32)).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void Store(Vector512<float> lo, Vector512<float> hi, int t, int j)
        {
            float* y = Y + ((nint)t * N) + j;
            if (Bias != null)
            {
                lo += Vector512.Load(Bias + j);
                hi += Vector512.Load(Bias + j + 16);
            }
            lo.Store(y);
            hi.Store(y + 16);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<float> Widen(byte* bf16) => WeightConversion.BF16ToSingle(LinearKernel.WidenLoad16((ushort*)bf16));
    }
}
