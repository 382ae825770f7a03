using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>
/// C[m,n] = A[m,k] · W[n,k]ᵀ (+ bias) for prefill with block-quantized weights (Q8_0, Q4_0), on AVX-VNNI: the blocked shape
/// of <see cref="Gemm"/> with int8 tiles. A (activations) arrives quantized as unsigned bytes
/// a + 128 (<see cref="Q8_0Activations"/>), because vpdpbusd multiplies unsigned by signed bytes; the
/// 128·Σw that this adds to every block's sum is known per weight column once W is packed, so each
/// int32 accumulator starts at −128·Σw and ends at the exact Σ a·w of the block. Then, per block,
/// the tile is scaled by d_a·d_w and accumulated in f32.
/// <para>
/// Packing, per KC-deep slice and 16-column panel, per block of 32: the weights as int8 (Q4_0's
/// nibbles unpacked here, once per launch, so the tile loop is the same for every format) in vpdpbusd order
/// (for each group of 4 k, the 16 columns' 4 bytes side by side, so one load feeds 8 columns of 4
/// products each), then the 16 columns' −128·Σw and their f32 scales. A broadcast of 4 bytes of an
/// A row multiplies two such loads: a 6×16 tile is 12 int32 accumulators and three more registers.
/// </para>
/// </summary>
internal static unsafe class QuantizedGemm
{
    private const int MR = 6;
    private const int NR = 16;

    /// <summary>Depth of one packed slice: eight blocks, 4 KiB of quants per panel, so a panel stays in L1.</summary>
    private const int KC = 256;

    /// <summary>Largest row block of one work unit (a multiple of MR): its A slice, MC·KC bytes, stays in L2.</summary>
    private const int MCMax = 192;

    /// <summary>Packed bytes of one block of one panel: 8 groups × 16 columns × 4 bytes, 16 int32 corrections, 16 f32 scales, 16 f32 mins (Q4_K; else unused).</summary>
    private const int PackedBlockBytes = (8 * NR * 4) + (NR * 4) + (NR * 4) + (NR * 4);

    private const int CorrectionOffset = 8 * NR * 4;
    private const int ScaleOffset = CorrectionOffset + (NR * 4);
    private const int MinOffset = ScaleOffset + (NR * 4);

    /// <summary>
    /// Runs the product on every core of <paramref name="grid"/>; needs AVX-VNNI. <paramref name="amins"/>
    /// are A's blocks' min terms (<see cref="QuantizedLinear.MinTerm"/>), needed only by formats with mins.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<TF>(AiCoreGrid grid, sbyte* aq, float* ad, float* amins, byte* w, float* bias, float* c, int m, int k, int n) where TF : struct, IBlockFormat
    {
        if (!AvxVnni.IsSupported)
        {
            throw new PlatformNotSupportedException("The quantized GEMM needs AVX-VNNI; QuantizedLinear uses the strip kernel elsewhere.");
        }
        if (m == 0 || n == 0 || k == 0)
        {
            return;
        }
        var problem = new Problem
        {
            Aq = (byte*)aq, Ad = ad, Am = amins, Wq = w, Bias = bias, C = c, M = m, K = k, N = n,
            Packed = (byte*)KernelScratch.PackB, HasMins = TF.HasMins,
        };
        // The packed slice is at most NCMax/16 panels × 8 blocks × 640 bytes = 1.3 MiB, inside PackB's 4 MiB.
        for (int jc = 0; jc < n; jc += KernelScratch.NCMax)
        {
            int nc = Math.Min(KernelScratch.NCMax, n - jc);
            int panels = (nc + NR - 1) / NR;
            Split(m, panels, grid.CoreCount, out int mc, out int rowBlocks, out int panelsPerSlice, out int slices);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                var slice = new Slice { P = problem, Jc = jc, Nc = nc, Pc = pc, Kc = kc };
                var pack = new PackKernel<TF> { S = slice, PanelsPerBlock = Math.Max(1, panels / (4 * grid.CoreCount)), Panels = panels };
                grid.Launch((panels + pack.PanelsPerBlock - 1) / pack.PanelsPerBlock, ref pack);
                var compute = new ComputeKernel { S = slice, Mc = mc, RowBlocks = rowBlocks, PanelsPerSlice = panelsPerSlice, Panels = panels };
                grid.Launch(rowBlocks * slices, ref compute);
            }
        }
    }

    /// <summary>As <see cref="Gemm"/>'s split: several units per core, slices of at least 4 panels (64 columns).</summary>
    private static void Split(int m, int panels, int cores, out int mc, out int rowBlocks, out int panelsPerSlice, out int slices)
    {
        int targetUnits = cores == 1 ? 1 : 4 * cores;
        rowBlocks = (m + MCMax - 1) / MCMax;
        int maxSlices = Math.Max(1, panels / 4);
        slices = Math.Clamp((targetUnits + rowBlocks - 1) / rowBlocks, 1, maxSlices);
        panelsPerSlice = (panels + slices - 1) / slices;
        slices = (panels + panelsPerSlice - 1) / panelsPerSlice;
        if (rowBlocks * slices < targetUnits)
        {
            rowBlocks = Math.Min((m + MR - 1) / MR, (targetUnits + slices - 1) / slices);
        }
        mc = Math.Min(MCMax, ((m + rowBlocks - 1) / rowBlocks + MR - 1) / MR * MR);
        rowBlocks = (m + mc - 1) / mc;
    }

    private struct Problem
    {
        /// <summary>The weight matrix (<see cref="BlockMatrix{TFormat}"/>, N rows of K).</summary>
        public byte* Wq;
        public byte* Aq, Packed;
        public float* Ad, Am, Bias, C;
        public int M, K, N;
        public bool HasMins;
    }

    private struct Slice
    {
        public Problem P;
        public int Jc, Nc, Pc, Kc;
    }

    private struct PackKernel<TF> : IBlockKernel where TF : struct, IBlockFormat
    {
        public Slice S;
        public int PanelsPerBlock, Panels;

        public readonly void Execute(int block)
        {
            int first = block * PanelsPerBlock;
            int end = Math.Min(Panels, first + PanelsPerBlock);
            for (int panel = first; panel < end; panel++)
            {
                PackPanel<TF>(S, panel);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPanel<TF>(in Slice s, int panel) where TF : struct, IBlockFormat
    {
        int blocks = s.Kc / BlockMatrix.BlockSize;
        int rowBlocks = s.P.K / BlockMatrix.BlockSize;
        int firstBlock = s.Pc / BlockMatrix.BlockSize;
        int j0 = s.Jc + (panel * NR);
        int cols = Math.Min(NR, s.Jc + s.Nc - j0);
        int stripped = TF.PadsToWholeStrips
            ? (s.P.N + BlockMatrix.StripRows - 1) / BlockMatrix.StripRows * BlockMatrix.StripRows
            : s.P.N / BlockMatrix.StripRows * BlockMatrix.StripRows;
        byte* dst = s.P.Packed + ((nint)panel * blocks * PackedBlockBytes);
        for (int b = 0; b < blocks; b++, dst += PackedBlockBytes)
        {
            if (TF.PadsToWholeStrips && j0 + NR > stripped)
            {
                // The padded format's last panel: its one strip, and zero columns for the strip past the end.
                PackStrip<TF>(s.P, j0 / BlockMatrix.StripRows, rowBlocks, firstBlock + b, dst, 0);
                ZeroColumns(dst, BlockMatrix.StripRows, NR);
                continue;
            }
            if (j0 + NR <= stripped)
            {
                // Two whole strips: their groups are already the panel's order, eight columns at a time.
                PackStrip<TF>(s.P, j0 / BlockMatrix.StripRows, rowBlocks, firstBlock + b, dst, 0);
                PackStrip<TF>(s.P, (j0 / BlockMatrix.StripRows) + 1, rowBlocks, firstBlock + b, dst, BlockMatrix.StripRows);
                continue;
            }
            int* groups = (int*)dst;
            int* correction = (int*)(dst + CorrectionOffset);
            float* scales = (float*)(dst + ScaleOffset);
            for (int col = 0; col < NR; col++)
            {
                if (col >= cols)
                {
                    // Padding columns: zero weights, zero correction, zero scale, so they add nothing and are never stored.
                    for (int g = 0; g < 8; g++)
                    {
                        groups[(g * NR) + col] = 0;
                    }
                    correction[col] = 0;
                    scales[col] = 0f;
                    ((float*)(dst + MinOffset))[col] = 0f;
                    continue;
                }
                Vector256<sbyte> q = BlockMatrix<TF>.LoadRowBlock(s.P.Wq, s.P.N, s.P.K, j0 + col, firstBlock + b);
                Vector256<int> quads = q.AsInt32();
                for (int g = 0; g < 8; g++)
                {
                    groups[(g * NR) + col] = quads.GetElement(g);
                }
                (Vector256<short> lo, Vector256<short> hi) = Vector256.Widen(q);
                correction[col] = -128 * Vector256.Sum(lo + hi);
                scales[col] = ElementTypes.F16ToSingle(*BlockMatrix<TF>.Locate(s.P.Wq, s.P.N, s.P.K, j0 + col, firstBlock + b).Scale);
            }
        }
    }

    /// <summary>
    /// Columns <paramref name="col0"/>..+7 of a packed block from strip <paramref name="strip"/>'s block
    /// <paramref name="block"/>: each group as signed q (the stored q + offset, less the offset), the
    /// per-column −128·Σq, and the eight scales widened.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PackStrip<TF>(in Problem p, int strip, int rowBlocks, int block, byte* dst, int col0) where TF : struct, IBlockFormat
    {
        byte* stripBlock = BlockMatrix<TF>.Quants(p.Wq) + BlockMatrix<TF>.StripBlock(strip, rowBlocks, block);
        Vector256<byte> offset = Vector256.Create((byte)TF.Offset);
        Vector256<int> sums = Vector256<int>.Zero;
        for (int group = 0; group < 8; group++)
        {
            Vector256<sbyte> q = (TF.StripGroup(stripBlock, group) - offset).AsSByte();
            q.Store((sbyte*)(dst + (group * NR * 4) + (col0 * 4)));
            sums = AvxVnni.MultiplyWideningAndAdd(sums, Vector256<byte>.One, q);
        }
        (sums * -128).Store((int*)(dst + CorrectionOffset) + col0);
        byte* plane = TF.ScalePlane(p.Wq, p.N, p.K);
        TF.StripScales(plane, strip, rowBlocks, block).Store((float*)(dst + ScaleOffset) + col0);
        if (TF.HasMins)
        {
            TF.StripMins(plane, strip, rowBlocks, block).Store((float*)(dst + MinOffset) + col0);
        }
    }

    /// <summary>Columns [<paramref name="from"/>, <paramref name="to"/>) of a packed block as zero weights, corrections, scales and mins: they add nothing and are never stored.</summary>
    private static void ZeroColumns(byte* dst, int from, int to)
    {
        for (int col = from; col < to; col++)
        {
            for (int g = 0; g < 8; g++)
            {
                ((int*)dst)[(g * NR) + col] = 0;
            }
            ((int*)(dst + CorrectionOffset))[col] = 0;
            ((float*)(dst + ScaleOffset))[col] = 0f;
            ((float*)(dst + MinOffset))[col] = 0f;
        }
    }

    private struct ComputeKernel : IBlockKernel
    {
        public Slice S;
        public int Mc, RowBlocks, PanelsPerSlice, Panels;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int block)
        {
            int i0 = (block % RowBlocks) * Mc;
            int i1 = Math.Min(S.P.M, i0 + Mc);
            int firstPanel = (block / RowBlocks) * PanelsPerSlice;
            int endPanel = Math.Min(Panels, firstPanel + PanelsPerSlice);
            int blocks = S.Kc / BlockMatrix.BlockSize;
            bool first = S.Pc == 0, last = S.Pc + S.Kc == S.P.K;
            float* tile = stackalloc float[MR * NR];
            for (int panel = firstPanel; panel < endPanel; panel++)
            {
                int j0 = S.Jc + (panel * NR);
                int cols = Math.Min(NR, S.Jc + S.Nc - j0);
                byte* packed = S.P.Packed + ((nint)panel * blocks * PackedBlockBytes);
                for (int ir = i0; ir < i1; ir += MR)
                {
                    int rows = Math.Min(MR, i1 - ir);
                    LoadTile(tile, S.P.C, S.P.N, ir, rows, j0, cols, first);
                    Tile(S.P, ir, rows, S.Pc, blocks, packed, tile);
                    StoreTile(tile, S.P.C, S.P.N, ir, rows, j0, cols, last ? S.P.Bias : null);
                }
            }
        }
    }

    /// <summary>The tile's running sums: zero for the first k slice, else C's partial sums (vector copies for whole tiles).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void LoadTile(float* tile, float* c, int ldc, int ir, int rows, int j0, int cols, bool zero)
    {
        if (zero)
        {
            new Span<float>(tile, MR * NR).Clear();
            return;
        }
        if (rows == MR && cols == NR)
        {
            for (int r = 0; r < MR; r++)
            {
                float* cr = c + ((nint)(ir + r) * ldc) + j0;
                Vector256.Load(cr).Store(tile + (r * NR));
                Vector256.Load(cr + 8).Store(tile + (r * NR) + 8);
            }
            return;
        }
        for (int r = 0; r < MR; r++)
        {
            for (int j = 0; j < NR; j++)
            {
                tile[(r * NR) + j] = zero || r >= rows || j >= cols ? 0f : c[((nint)(ir + r) * ldc) + j0 + j];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTile(float* tile, float* c, int ldc, int ir, int rows, int j0, int cols, float* bias)
    {
        if (rows == MR && cols == NR)
        {
            Vector256<float> b0 = bias != null ? Vector256.Load(bias + j0) : default, b1 = bias != null ? Vector256.Load(bias + j0 + 8) : default;
            for (int r = 0; r < MR; r++)
            {
                float* cr = c + ((nint)(ir + r) * ldc) + j0;
                (Vector256.Load(tile + (r * NR)) + b0).Store(cr);
                (Vector256.Load(tile + (r * NR) + 8) + b1).Store(cr + 8);
            }
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            float* cr = c + ((nint)(ir + r) * ldc) + j0;
            for (int j = 0; j < cols; j++)
            {
                cr[j] = bias != null ? tile[(r * NR) + j] + bias[j0 + j] : tile[(r * NR) + j];
            }
        }
    }

    /// <summary>tile[6×16] += Σ over the slice's blocks of (d_a·d_w) · (the block's exact int32 products).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile(in Problem p, int ir, int rows, int pc, int blocks, byte* packed, float* tile)
    {
        int rowBlocks = p.K / BlockMatrix.BlockSize;
        // Rows past the edge repeat the last real row: their sums land in tile rows never stored.
        byte* a0 = RowA(p, ir, 0, rows) + pc, a1 = RowA(p, ir, 1, rows) + pc, a2 = RowA(p, ir, 2, rows) + pc;
        byte* a3 = RowA(p, ir, 3, rows) + pc, a4 = RowA(p, ir, 4, rows) + pc, a5 = RowA(p, ir, 5, rows) + pc;
        float* d0 = RowD(p, ir, 0, rows, rowBlocks) + (pc / BlockMatrix.BlockSize), d1 = RowD(p, ir, 1, rows, rowBlocks) + (pc / BlockMatrix.BlockSize);
        float* d2 = RowD(p, ir, 2, rows, rowBlocks) + (pc / BlockMatrix.BlockSize), d3 = RowD(p, ir, 3, rows, rowBlocks) + (pc / BlockMatrix.BlockSize);
        float* d4 = RowD(p, ir, 4, rows, rowBlocks) + (pc / BlockMatrix.BlockSize), d5 = RowD(p, ir, 5, rows, rowBlocks) + (pc / BlockMatrix.BlockSize);
        for (int b = 0; b < blocks; b++, packed += PackedBlockBytes)
        {
            Vector256<int> n0 = Vector256.Load((int*)(packed + CorrectionOffset));
            Vector256<int> n1 = Vector256.Load((int*)(packed + CorrectionOffset) + 8);
            Vector256<int> c00 = n0, c01 = n1, c10 = n0, c11 = n1, c20 = n0, c21 = n1;
            Vector256<int> c30 = n0, c31 = n1, c40 = n0, c41 = n1, c50 = n0, c51 = n1;
            nint at = (nint)b * BlockMatrix.BlockSize;
            for (int g = 0; g < 8; g++, at += 4)
            {
                Vector256<sbyte> b0 = Vector256.Load((sbyte*)(packed + (g * NR * 4)));
                Vector256<sbyte> b1 = Vector256.Load((sbyte*)(packed + (g * NR * 4) + 32));
                Vector256<byte> x = Vector256.Create(*(int*)(a0 + at)).AsByte();
                c00 = AvxVnni.MultiplyWideningAndAdd(c00, x, b0);
                c01 = AvxVnni.MultiplyWideningAndAdd(c01, x, b1);
                x = Vector256.Create(*(int*)(a1 + at)).AsByte();
                c10 = AvxVnni.MultiplyWideningAndAdd(c10, x, b0);
                c11 = AvxVnni.MultiplyWideningAndAdd(c11, x, b1);
                x = Vector256.Create(*(int*)(a2 + at)).AsByte();
                c20 = AvxVnni.MultiplyWideningAndAdd(c20, x, b0);
                c21 = AvxVnni.MultiplyWideningAndAdd(c21, x, b1);
                x = Vector256.Create(*(int*)(a3 + at)).AsByte();
                c30 = AvxVnni.MultiplyWideningAndAdd(c30, x, b0);
                c31 = AvxVnni.MultiplyWideningAndAdd(c31, x, b1);
                x = Vector256.Create(*(int*)(a4 + at)).AsByte();
                c40 = AvxVnni.MultiplyWideningAndAdd(c40, x, b0);
                c41 = AvxVnni.MultiplyWideningAndAdd(c41, x, b1);
                x = Vector256.Create(*(int*)(a5 + at)).AsByte();
                c50 = AvxVnni.MultiplyWideningAndAdd(c50, x, b0);
                c51 = AvxVnni.MultiplyWideningAndAdd(c51, x, b1);
            }
            Vector256<float> w0 = Vector256.Load((float*)(packed + ScaleOffset));
            Vector256<float> w1 = Vector256.Load((float*)(packed + ScaleOffset) + 8);
            Accumulate(tile, c00, c01, w0, w1, d0[b]);
            Accumulate(tile + NR, c10, c11, w0, w1, d1[b]);
            Accumulate(tile + (2 * NR), c20, c21, w0, w1, d2[b]);
            Accumulate(tile + (3 * NR), c30, c31, w0, w1, d3[b]);
            Accumulate(tile + (4 * NR), c40, c41, w0, w1, d4[b]);
            Accumulate(tile + (5 * NR), c50, c51, w0, w1, d5[b]);
            if (p.HasMins)
            {
                Vector256<float> m0 = Vector256.Load((float*)(packed + MinOffset));
                Vector256<float> m1 = Vector256.Load((float*)(packed + MinOffset) + 8);
                int sb = (pc / BlockMatrix.BlockSize) + b;
                for (int r = 0; r < MR; r++)
                {
                    int row = ir + Math.Min(r, rows - 1);
                    AccumulateMins(tile + (r * NR), m0, m1, p.Am[((nint)row * rowBlocks) + sb]);
                }
            }
        }
    }

    /// <summary>One tile row: t[0..16) += m_w · (−d_a·Σq_a), the blocks' mins, as the GEMV adds them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AccumulateMins(float* t, Vector256<float> m0, Vector256<float> m1, float term)
    {
        Vector256<float> s = Vector256.Create(term);
        Vector256.FusedMultiplyAdd(m0, s, Vector256.Load(t)).Store(t);
        Vector256.FusedMultiplyAdd(m1, s, Vector256.Load(t + 8)).Store(t + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* RowA(in Problem p, int ir, int r, int rows) => p.Aq + ((nint)(ir + Math.Min(r, rows - 1)) * p.K);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* RowD(in Problem p, int ir, int r, int rows, int rowBlocks) => p.Ad + ((nint)(ir + Math.Min(r, rows - 1)) * rowBlocks);

    /// <summary>One tile row: t[0..16) += (d_w · d_a) · products, the scale rounded once as the GEMV rounds it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate(float* t, Vector256<int> p0, Vector256<int> p1, Vector256<float> w0, Vector256<float> w1, float da)
    {
        Vector256<float> s = Vector256.Create(da);
        Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p0), w0 * s, Vector256.Load(t)).Store(t);
        Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p1), w1 * s, Vector256.Load(t + 8)).Store(t + 8);
    }
}
