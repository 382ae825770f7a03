using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>Which register tile the GEMM uses; chosen from the hardware, overridable for tests.</summary>
internal enum GemmIsa
{
    /// <summary>12×32 tiles in zmm registers.</summary>
    Vector512,
    /// <summary>6×16 tiles in ymm registers.</summary>
    Vector256,
}

/// <summary>How B is stored.</summary>
internal enum BLayout
{
    /// <summary>Row-major [k,n] f32 (torch.mm's B).</summary>
    KN,
    /// <summary>Row-major [n,k], any <see cref="ElementType"/> (Linear's W, or bmm with B transposed).</summary>
    NK,
    /// <summary><see cref="ElementType.BF16Panels"/>: [n/32][k][32] bf16, already the packed panels' order.</summary>
    Panels,
}

/// <summary>One product C[m,n] = A[m,k] · B (+ bias[n]); raw pointers, pinned by the caller for the call.</summary>
internal unsafe struct GemmProblem
{
    public float* A;
    public nint Lda;
    public void* B;
    public nint Ldb;
    public BLayout Layout;
    public ElementType BType;
    public float* C;
    public nint Ldc;
    /// <summary>Null when there is no bias.</summary>
    public float* Bias;
    public int M;
    public int N;
    public int K;
}

/// <summary>
/// Blocked GEMM in the DaVinci/GotoBLAS shape: a KC-deep slice of B is packed once into NR-wide
/// panels shared by all cores (an L2/L3-resident "L1 buffer"), each core packs MC×KC blocks of A into
/// its own scratch, and the micro-kernel runs over MR×NR output tiles with the B panel hot in L1.
/// Work is split over (row block, column slice) pairs so both tall and wide products fill the cores.
/// </summary>
internal static unsafe class Gemm
{
    /// <summary>The tile geometry this machine runs fastest.</summary>
    public static GemmIsa DefaultIsa { get; } = Vector512.IsHardwareAccelerated ? GemmIsa.Vector512 : GemmIsa.Vector256;

    public static int MR(GemmIsa isa) => isa == GemmIsa.Vector512 ? 12 : 6;

    public static int NR(GemmIsa isa) => isa == GemmIsa.Vector512 ? 32 : 16;

    /// <summary>Computes the product using every core of <paramref name="grid"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(AiCoreGrid grid, in GemmProblem problem, GemmIsa isa)
    {
        if (problem.M == 0 || problem.N == 0)
        {
            return;
        }
        if (problem.K == 0)
        {
            FillWithBias(problem, 0, problem.M);
            return;
        }
        int nr = NR(isa);
        int mr = MR(isa);
        float* packedB = KernelScratch.PackB;
        for (int jc = 0; jc < problem.N; jc += KernelScratch.NCMax)
        {
            int nc = Math.Min(KernelScratch.NCMax, problem.N - jc);
            int panels = (nc + nr - 1) / nr;
            Split(problem.M, panels, grid.CoreCount, mr, out int mc, out int rowBlocks, out int panelsPerSlice, out int slices);
            for (int pc = 0; pc < problem.K; pc += KernelScratch.KC)
            {
                int kc = Math.Min(KernelScratch.KC, problem.K - pc);
                var pack = new PackBKernel
                {
                    Problem = problem, Isa = isa, Pc = pc, Kc = kc, Jc = jc, Nc = nc, Dst = packedB,
                    PanelsPerBlock = Math.Max(1, panels / (4 * grid.CoreCount)),
                };
                grid.Launch((panels + pack.PanelsPerBlock - 1) / pack.PanelsPerBlock, ref pack);
                var compute = new ComputeKernel
                {
                    Problem = problem, Isa = isa, Pc = pc, Kc = kc, Jc = jc, Nc = nc, PackedB = packedB,
                    Mc = mc, RowBlocks = rowBlocks, PanelsPerSlice = panelsPerSlice,
                };
                grid.Launch(rowBlocks * slices, ref compute);
            }
        }
    }

    /// <summary>Computes the whole product on the calling thread (one core of a batched launch).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RunOnThisCore(in GemmProblem problem, GemmIsa isa)
    {
        if (problem.M == 0 || problem.N == 0)
        {
            return;
        }
        if (problem.K == 0)
        {
            FillWithBias(problem, 0, problem.M);
            return;
        }
        int nr = NR(isa);
        float* packedB = KernelScratch.PackB;
        for (int jc = 0; jc < problem.N; jc += KernelScratch.NCMax)
        {
            int nc = Math.Min(KernelScratch.NCMax, problem.N - jc);
            int panels = (nc + nr - 1) / nr;
            for (int pc = 0; pc < problem.K; pc += KernelScratch.KC)
            {
                int kc = Math.Min(KernelScratch.KC, problem.K - pc);
                PackBPanels(problem, isa, pc, kc, jc, nc, 0, panels, packedB);
                for (int i0 = 0; i0 < problem.M; i0 += KernelScratch.MCMax)
                {
                    int mcb = Math.Min(KernelScratch.MCMax, problem.M - i0);
                    ComputeBlock(problem, isa, pc, kc, jc, packedB, i0, mcb, 0, panels, nc);
                }
            }
        }
    }

    /// <summary>
    /// Chooses the row block height and column slice width so there are several work units per core
    /// (the grid balances them dynamically) without shrinking blocks below what amortises packing.
    /// </summary>
    private static void Split(int m, int panels, int cores, int mr, out int mc, out int rowBlocks, out int panelsPerSlice, out int slices)
    {
        int targetUnits = cores == 1 ? 1 : 4 * cores;
        rowBlocks = (m + KernelScratch.MCMax - 1) / KernelScratch.MCMax;
        // Slices of at least 8 panels (256 columns) keep the re-packing of A per slice under ~5% of the FMAs.
        int maxSlices = Math.Max(1, panels / 8);
        slices = Math.Clamp((targetUnits + rowBlocks - 1) / rowBlocks, 1, maxSlices);
        panelsPerSlice = (panels + slices - 1) / slices;
        slices = (panels + panelsPerSlice - 1) / panelsPerSlice;
        int mrPanels = (m + mr - 1) / mr;
        if (rowBlocks * slices < targetUnits)
        {
            rowBlocks = Math.Min(mrPanels, (targetUnits + slices - 1) / slices);
        }
        mc = ((m + rowBlocks - 1) / rowBlocks + mr - 1) / mr * mr;
        mc = Math.Min(mc, KernelScratch.MCMax);
        rowBlocks = (m + mc - 1) / mc;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackBPanels(in GemmProblem p, GemmIsa isa, int pc, int kc, int jc, int nc, int firstPanel, int endPanel, float* dst)
    {
        int nr = NR(isa);
        float* rowBuffer = KernelScratch.Small + KernelScratch.EdgeTileFloats;
        for (int panel = firstPanel; panel < endPanel; panel++)
        {
            int j0 = jc + panel * nr;
            int cols = Math.Min(nr, jc + nc - j0);
            float* d = dst + (nint)panel * nr * kc;
            if (p.Layout == BLayout.KN)
            {
                PackPanelFromKN(p, pc, kc, j0, cols, nr, d);
            }
            else if (p.Layout == BLayout.Panels)
            {
                PackPanelFromPanels(p, pc, kc, j0, cols, nr, d);
            }
            else
            {
                PackPanelFromNK(p, pc, kc, j0, cols, nr, d, rowBuffer);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPanelFromKN(in GemmProblem p, int pc, int kc, int j0, int cols, int nr, float* d)
    {
        float* src = (float*)p.B + pc * p.Ldb + j0;
        if (cols == nr)
        {
            for (int kk = 0; kk < kc; kk++, src += p.Ldb, d += nr)
            {
                if (nr == 32)
                {
                    Vector512.Load(src).StoreAligned(d);
                    Vector512.Load(src + 16).StoreAligned(d + 16);
                }
                else
                {
                    Vector256.Load(src).StoreAligned(d);
                    Vector256.Load(src + 8).StoreAligned(d + 8);
                }
            }
            return;
        }
        for (int kk = 0; kk < kc; kk++, src += p.Ldb, d += nr)
        {
            int j = 0;
            for (; j < cols; j++)
            {
                d[j] = src[j];
            }
            for (; j < nr; j++)
            {
                d[j] = 0f;
            }
        }
    }

    /// <summary>
    /// Columns j0..j0+cols of B from a <see cref="ElementType.BF16Panels"/> matrix: position kk of the
    /// device panel holding them is 32 contiguous bf16, so a packed row is a widened slice of it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPanelFromPanels(in GemmProblem p, int pc, int kc, int j0, int cols, int nr, float* d)
    {
        const int rows = PanelGemv.PanelRows;
        ushort* src = (ushort*)p.B + ((nint)(j0 / rows) * p.Ldb * rows) + ((nint)pc * rows) + (j0 % rows);
        if (cols == nr && nr % 16 == 0)
        {
            for (int kk = 0; kk < kc; kk++, src += rows, d += nr)
            {
                for (int j = 0; j < nr; j += 16)
                {
                    WeightConversion.BF16ToSingle(LinearKernel.WidenLoad16(src + j)).StoreAligned(d + j);
                }
            }
            return;
        }
        for (int kk = 0; kk < kc; kk++, src += rows, d += nr)
        {
            int j = 0;
            for (; j < cols; j++)
            {
                d[j] = ElementTypes.BF16ToSingle(src[j]);
            }
            for (; j < nr; j++)
            {
                d[j] = 0f;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPanelFromNK(in GemmProblem p, int pc, int kc, int j0, int cols, int nr, float* d, float* rowBuffer)
    {
        int elementSize = ElementTypes.SizeOf(p.BType);
        for (int jj = 0; jj < nr; jj++)
        {
            if (jj >= cols)
            {
                for (int kk = 0; kk < kc; kk++)
                {
                    d[kk * nr + jj] = 0f;
                }
                continue;
            }
            byte* src = (byte*)p.B + ((j0 + jj) * p.Ldb + pc) * elementSize;
            float* row = (float*)src;
            if (p.BType != ElementType.F32)
            {
                WeightConversion.ToSingle(src, p.BType, rowBuffer, kc);
                row = rowBuffer;
            }
            for (int kk = 0; kk < kc; kk++)
            {
                d[kk * nr + jj] = row[kk];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackA(in GemmProblem p, int mr, int pc, int kc, int i0, int mcb, float* dst)
    {
        for (int ir = 0; ir < mcb; ir += mr)
        {
            float* panel = dst + (nint)ir * kc;
            for (int r = 0; r < mr; r++)
            {
                float* d = panel + r;
                if (ir + r < mcb)
                {
                    float* src = p.A + (i0 + ir + r) * p.Lda + pc;
                    for (int kk = 0; kk < kc; kk++)
                    {
                        d[kk * mr] = src[kk];
                    }
                }
                else
                {
                    for (int kk = 0; kk < kc; kk++)
                    {
                        d[kk * mr] = 0f;
                    }
                }
            }
        }
    }

    /// <summary>Rows i0..i0+mcb of C against packed panels [firstPanel, endPanel) of the slice at jc.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ComputeBlock(in GemmProblem p, GemmIsa isa, int pc, int kc, int jc, float* packedB, int i0, int mcb, int firstPanel, int endPanel, int nc)
    {
        int mr = MR(isa);
        int nr = NR(isa);
        float* packedA = KernelScratch.PackA;
        float* edge = KernelScratch.Small;
        PackA(p, mr, pc, kc, i0, mcb, packedA);
        bool accumulate = pc > 0;
        for (int panel = firstPanel; panel < endPanel; panel++)
        {
            int j0 = jc + panel * nr;
            int cols = Math.Min(nr, jc + nc - j0);
            float* bp = packedB + (nint)panel * nr * kc;
            for (int ir = 0; ir < mcb; ir += mr)
            {
                int rows = Math.Min(mr, mcb - ir);
                float* ap = packedA + (nint)ir * kc;
                float* cp = p.C + (i0 + ir) * p.Ldc + j0;
                if (rows == mr && cols == nr)
                {
                    Tile(isa, kc, ap, bp, cp, p.Ldc, accumulate);
                }
                else
                {
                    Tile(isa, kc, ap, bp, edge, nr, false);
                    for (int r = 0; r < rows; r++)
                    {
                        float* cr = cp + r * p.Ldc;
                        float* er = edge + r * nr;
                        for (int j = 0; j < cols; j++)
                        {
                            cr[j] = accumulate ? cr[j] + er[j] : er[j];
                        }
                    }
                }
            }
        }
        if (p.Bias != null && pc + kc == p.K)
        {
            int j0 = jc + firstPanel * nr;
            int j1 = Math.Min(jc + endPanel * nr, jc + nc);
            for (int r = 0; r < mcb; r++)
            {
                AddInPlace(p.C + (i0 + r) * p.Ldc + j0, p.Bias + j0, j1 - j0);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile(GemmIsa isa, int kc, float* a, float* b, float* c, nint ldc, bool accumulate)
    {
        if (isa == GemmIsa.Vector512)
        {
            GemmMicroKernels.Kernel12x32(kc, a, b, c, ldc, accumulate);
        }
        else
        {
            GemmMicroKernels.Kernel6x16(kc, a, b, c, ldc, accumulate);
        }
    }

    /// <summary>y[i] += x[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void AddInPlace(float* y, float* x, int count)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= count - 16; i += 16)
            {
                (Vector512.Load(y + i) + Vector512.Load(x + i)).Store(y + i);
            }
        }
        for (; i <= count - 8; i += 8)
        {
            (Vector256.Load(y + i) + Vector256.Load(x + i)).Store(y + i);
        }
        for (; i < count; i++)
        {
            y[i] += x[i];
        }
    }

    /// <summary>C rows [r0, r1) = bias (or zero): the product with k = 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FillWithBias(in GemmProblem p, int r0, int r1)
    {
        for (int r = r0; r < r1; r++)
        {
            var row = new Span<float>(p.C + r * p.Ldc, p.N);
            if (p.Bias != null)
            {
                new ReadOnlySpan<float>(p.Bias, p.N).CopyTo(row);
            }
            else
            {
                row.Clear();
            }
        }
    }

    private struct PackBKernel : IBlockKernel
    {
        public GemmProblem Problem;
        public GemmIsa Isa;
        public int Pc, Kc, Jc, Nc, PanelsPerBlock;
        public float* Dst;

        public readonly void Execute(int block)
        {
            int panels = (Nc + NR(Isa) - 1) / NR(Isa);
            int first = block * PanelsPerBlock;
            PackBPanels(Problem, Isa, Pc, Kc, Jc, Nc, first, Math.Min(first + PanelsPerBlock, panels), Dst);
        }
    }

    private struct ComputeKernel : IBlockKernel
    {
        public GemmProblem Problem;
        public GemmIsa Isa;
        public int Pc, Kc, Jc, Nc, Mc, RowBlocks, PanelsPerSlice;
        public float* PackedB;

        public readonly void Execute(int block)
        {
            int rowBlock = block % RowBlocks;
            int slice = block / RowBlocks;
            int i0 = rowBlock * Mc;
            int panels = (Nc + NR(Isa) - 1) / NR(Isa);
            int first = slice * PanelsPerSlice;
            ComputeBlock(Problem, Isa, Pc, Kc, Jc, PackedB, i0, Math.Min(Mc, Problem.M - i0), first, Math.Min(first + PanelsPerSlice, panels), Nc);
        }
    }
}
