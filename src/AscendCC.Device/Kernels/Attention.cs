using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Causal grouped-query attention over the KV cache, tiled with an online (flash-style) softmax:
/// each (head, query tile) block streams key tiles, keeping a running max m, running sum l and an
/// unnormalised output O per query, so memory is O(tile) and no [seq × seq] score matrix exists.
/// With a sliding window W (Mistral), the query at position p sees only keys j with p − W &lt; j ≤ p —
/// transformers' convention (masking_utils.sliding_window_overlay: kv_idx &gt; q_idx − sliding_window,
/// so W keys including itself) — and key tiles wholly before a block's window are never read.
/// </summary>
internal static unsafe partial class Attention
{
    /// <summary>Queries per block: two Vector512 lanes-worth, the width the score tile is computed at.</summary>
    internal const int QueryTile = 32;

    /// <summary>Keys per tile: the [KeyTile × QueryTile] score tile is 8 KiB and stays in L1.</summary>
    internal const int KeyTile = 64;

    // Below this many queries a tile wastes most of its 32 lanes; per-query dot products win (decode).
    private const int MinRowsForTiled = 8;

    /// <summary>
    /// output[i, h] = softmax_j(scale · q[i, h] · K[h / group, j]) · V[h / group, j] over cache positions
    /// j ≤ startPos + i (and j &gt; startPos + i − window when window &gt; 0), where group = nHeads / nKvHeads.
    /// q and output are [seq, nHeads * headDim]; the caches are f32 [nKvHeads, maxSeq, headDim] and must already
    /// hold positions 0 .. startPos + seq - 1 (the cache stays full-length under a window).
    /// output may alias q exactly. window 0 means no window.
    /// </summary>
    public static void CausalAttention(
        AiCoreGrid grid, ReadOnlySpan<float> q, ReadOnlySpan<float> kCache, ReadOnlySpan<float> vCache, Span<float> output,
        int seq, int startPos, int nHeads, int nKvHeads, int headDim, int maxSeq, float scale, int window = 0) =>
        CausalAttention(grid, q, MemoryMarshal.AsBytes(kCache), MemoryMarshal.AsBytes(vCache), ElementType.F32, output,
            seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);

    /// <summary>
    /// As <see cref="CausalAttention(AiCoreGrid, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int, int, int, int, float, int)"/>
    /// over caches of <paramref name="cacheType"/> (F32, F16, BF16, Q8_0Rows or Q4_0Rows). Half-precision and quantized
    /// keys and values are widened to f32 as they are read; scores, the softmax and the weighted sum stay f32.
    /// </summary>
    public static void CausalAttention(
        AiCoreGrid grid, ReadOnlySpan<float> q, ReadOnlySpan<byte> kCache, ReadOnlySpan<byte> vCache, ElementType cacheType, Span<float> output,
        int seq, int startPos, int nHeads, int nKvHeads, int headDim, int maxSeq, float scale, int window = 0)
    {
        ArgumentNullException.ThrowIfNull(grid);
        KvCache.ValidateCache(kCache, vCache, cacheType, nKvHeads, headDim, maxSeq);
        KvCache.ValidateWindow(seq, startPos, maxSeq);
        KernelArgs.RequireAtLeast(nHeads, 1, nameof(nHeads));
        KernelArgs.RequireAtLeast(window, 0, nameof(window));
        if (nHeads % nKvHeads != 0)
        {
            throw new ArgumentException($"{nameof(nHeads)} ({nHeads}) must be a multiple of {nameof(nKvHeads)} ({nKvHeads}).", nameof(nHeads));
        }
        long rowsLength = (long)seq * nHeads * headDim;
        KernelArgs.RequireLength(q.Length, rowsLength, nameof(q));
        KernelArgs.RequireLength(output.Length, rowsLength, nameof(output));
        KernelArgs.RequireSameOrDisjoint(q, output, nameof(q), nameof(output));
        if (seq == 0)
        {
            return;
        }

        fixed (float* pq = q, po = output)
        fixed (byte* pk = kCache, pv = vCache)
        {
            switch (cacheType)
            {
                case ElementType.BF16:
                    Launch<LinearKernel.BF16Weights>(grid, pq, pk, pv, po, seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
                    break;
                case ElementType.F16:
                    Launch<LinearKernel.F16Weights>(grid, pq, pk, pv, po, seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
                    break;
                case ElementType.Q8_0Rows:
                    Launch<KvCache.Q8_0RowReader>(grid, pq, pk, pv, po, seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
                    break;
                case ElementType.Q4_0Rows:
                    Launch<KvCache.Q4_0RowReader>(grid, pq, pk, pv, po, seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
                    break;
                default:
                    Launch<LinearKernel.F32Weights>(grid, pq, pk, pv, po, seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
                    break;
            }
        }
    }

    /// <summary>
    /// Batched causal attention: q and output are [rows, nHeads * headDim] with rows in the order of
    /// <paramref name="segments"/>, and the caches are [slots, nKvHeads, maxSeq, headDim]; each
    /// segment's rows attend, as <see cref="CausalAttention(AiCoreGrid, ReadOnlySpan{float}, ReadOnlySpan{byte}, ReadOnlySpan{byte}, ElementType, Span{float}, int, int, int, int, int, int, float, int)"/>
    /// does, over their own slot's positions only (which must already hold the pass's rows). One grid
    /// launch covers every segment's heads and query tiles, so a decode step of eight sequences keeps
    /// every core busy as one of a single sequence does.
    /// </summary>
    public static void CausalAttention(
        AiCoreGrid grid, ReadOnlySpan<float> q, ReadOnlySpan<byte> kCache, ReadOnlySpan<byte> vCache, ElementType cacheType, Span<float> output,
        ReadOnlySpan<SequenceSegment> segments, int nHeads, int nKvHeads, int headDim, int maxSeq, float scale, int window = 0)
    {
        ArgumentNullException.ThrowIfNull(grid);
        KernelArgs.RequireAtLeast(nHeads, 1, nameof(nHeads));
        KernelArgs.RequireAtLeast(nKvHeads, 1, nameof(nKvHeads));
        KernelArgs.RequireAtLeast(window, 0, nameof(window));
        if (nHeads % nKvHeads != 0)
        {
            throw new ArgumentException($"{nameof(nHeads)} ({nHeads}) must be a multiple of {nameof(nKvHeads)} ({nKvHeads}).", nameof(nHeads));
        }
        KvCache.RequireWholeBlocks(cacheType, headDim);
        long slotBytes = KvCache.Bytes(cacheType, (long)nKvHeads * maxSeq * headDim);
        int rows = 0, items = 0, slots = (int)(kCache.Length / slotBytes);
        foreach (SequenceSegment s in segments)
        {
            KvCache.ValidateWindow(s.Length, s.Start, maxSeq);
            if ((uint)s.Slot >= (uint)slots || kCache.Length != vCache.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(segments), s.Slot, $"slot {s.Slot} is outside caches of {slots} slots of {slotBytes} bytes");
            }
            rows += s.Length;
            items += (s.Length + QueryTile - 1) / QueryTile;
        }
        long rowsLength = (long)rows * nHeads * headDim;
        KernelArgs.RequireLength(q.Length, rowsLength, nameof(q));
        KernelArgs.RequireLength(output.Length, rowsLength, nameof(output));
        KernelArgs.RequireSameOrDisjoint(q, output, nameof(q), nameof(output));
        if (items == 0)
        {
            return;
        }
        // The work list: one item per (segment, query tile), the latest tiles of each segment first.
        Span<WorkItem> work = items <= 256 ? stackalloc WorkItem[items] : new WorkItem[items];
        int row = 0, n = 0;
        foreach (SequenceSegment s in segments)
        {
            for (int tile = (s.Length + QueryTile - 1) / QueryTile - 1; tile >= 0; tile--)
            {
                work[n++] = new WorkItem(row, s.Start, s.Length, tile * QueryTile, s.Slot * (nint)slotBytes);
            }
            row += s.Length;
        }
        fixed (float* pq = q, po = output)
        fixed (byte* pk = kCache, pv = vCache)
        fixed (WorkItem* pw = work)
        {
            switch (cacheType)
            {
                case ElementType.BF16:
                    LaunchItems<LinearKernel.BF16Weights>(grid, pq, pk, pv, po, pw, items, nHeads, nKvHeads, headDim, maxSeq, scale, window);
                    break;
                case ElementType.F16:
                    LaunchItems<LinearKernel.F16Weights>(grid, pq, pk, pv, po, pw, items, nHeads, nKvHeads, headDim, maxSeq, scale, window);
                    break;
                case ElementType.Q8_0Rows:
                    LaunchItems<KvCache.Q8_0RowReader>(grid, pq, pk, pv, po, pw, items, nHeads, nKvHeads, headDim, maxSeq, scale, window);
                    break;
                case ElementType.Q4_0Rows:
                    LaunchItems<KvCache.Q4_0RowReader>(grid, pq, pk, pv, po, pw, items, nHeads, nKvHeads, headDim, maxSeq, scale, window);
                    break;
                default:
                    LaunchItems<LinearKernel.F32Weights>(grid, pq, pk, pv, po, pw, items, nHeads, nKvHeads, headDim, maxSeq, scale, window);
                    break;
            }
        }
    }

    private static void LaunchItems<TC>(AiCoreGrid grid, float* q, byte* k, byte* v, float* output, WorkItem* work, int items,
        int nHeads, int nKvHeads, int headDim, int maxSeq, float scale, int window)
        where TC : struct, KvCache.IRowReader
    {
        int headsPerBlock = HeadsPerBlock(nHeads, nHeads / nKvHeads, grid.CoreCount);
        var kernel = new AttentionKernel<TC>
        {
            Q = q, KCache = k, VCache = v, Output = output, Work = work,
            NHeads = nHeads, Group = nHeads / nKvHeads, HeadsPerBlock = headsPerBlock, HeadDim = headDim, MaxSeq = maxSeq, Scale = scale, Window = window,
        };
        int blocksPerItem = nHeads / headsPerBlock, blocks = blocksPerItem * items;
        bool decodeOnly = true;
        for (int i = 0; i < items && decodeOnly; i++)
        {
            decodeOnly = work[i].Seq == 1;
        }
        if (!decodeOnly || blocks <= grid.CoreCount)
        {
            grid.Launch(blocks, ref kernel);
            return;
        }
        // A decode row reads positions FirstKey .. Start: its block's work.
        Span<long> keys = items <= 256 ? stackalloc long[items] : new long[items];
        for (int i = 0; i < items; i++)
        {
            keys[i] = work[i].Start + 1 - FirstKey(work[i].Start + 1, window);
        }
        int* bounds = stackalloc int[grid.CoreCount + 1];
        Partition(keys, blocksPerItem, new Span<int>(bounds, grid.CoreCount + 1));
        kernel.Ranges = bounds;
        grid.Launch(grid.CoreCount, ref kernel);
    }

    // The first key a decode row whose keys end before kEnd reads: 0, or under a window of W the W-th last.
    private static int FirstKey(int kEnd, int window) => window > 0 ? Math.Max(0, kEnd - window) : 0;

    /// <summary>
    /// A decode step's blocks (every segment one row) cut into bounds.Length − 1 consecutive ranges of
    /// about equal work — a block's work is the keys its row reads, <paramref name="keys"/>[item] for each
    /// of an item's <paramref name="blocksPerItem"/> blocks — so each core knows the block it runs next and
    /// can request that block's first keys and values while it finishes this one
    /// (<see cref="AttentionKernel{TC}.Ranges"/>): a decode row reads one head's keys and values as short
    /// streams, and the first lines of each were the ones nobody had asked for. Range p is
    /// [<paramref name="bounds"/>[p], bounds[p + 1]). Measured in a harness alternating this and the grid's
    /// hand-out of the time, one atomic ticket, launch by launch (f16 cache, eight sequences at 150 positions,
    /// three runs): 110M's 12 heads, 12 layers, 1.12–1.16 against 1.16–1.21 ms; 1.1B's 32 heads on 4 KV
    /// heads, 22 layers, 1.50–1.53 against 1.58–1.60. The grid's hand-out (every other launch: equal block
    /// counts per core, then what is left of the others') knows nothing of the blocks' keys.
    /// </summary>
    internal static void Partition(ReadOnlySpan<long> keys, int blocksPerItem, Span<int> bounds)
    {
        int parts = bounds.Length - 1, blocks = keys.Length * blocksPerItem;
        long total = 0;
        foreach (long k in keys)
        {
            total += k;
        }
        total *= blocksPerItem;
        int p = 1;
        long done = 0;
        bounds[0] = 0;
        for (int b = 0; b < blocks && p < parts; b++)
        {
            long before = done;
            done += keys[b / blocksPerItem];
            // Cut p falls where the running work passes p / parts of the total: before or after block b,
            // whichever is nearer. (Cuts in one block stay in order: a later share is nearer its end.)
            while (p < parts && done * parts >= total * p)
            {
                bool beforeIsNearer = (done * parts) - (total * p) > (total * p) - (before * parts);
                bounds[p++] = beforeIsNearer ? b : b + 1;
            }
        }
        while (p <= parts)
        {
            bounds[p++] = blocks;
        }
    }

    /// <summary>
    /// Query heads per block: heads that share a KV head (grouped-query attention) go together, so
    /// a decode row widens and reads each key and value once for all of them instead of once per
    /// head. A group of even size takes 8, 4 or 2 heads a block — the most that still leave at least two
    /// blocks per core of a single query tile, so a decode step keeps every core busy, and never fewer
    /// than two: a group of four or more runs the interleaved decode row (<see cref="AttentionKernel{TC}.InterleavedRow{TK}"/>),
    /// whose bits do not depend on how many heads share the block, so a row's result does not depend on
    /// the core count either; a group of two is always two a block. An odd group takes its largest divisor
    /// that leaves two blocks per core (1 at worst) in <see cref="AttentionKernel{TC}.GroupRow"/>, whose bits
    /// do not depend on it either.
    /// Measured (bench -- attention, decode at 2048 of 32 heads on 4 KV heads, f16 cache, alternated three
    /// times, before the interleaved row): 8 heads a block (two blocks per core) 0.23–0.29 ms against
    /// 0.28–0.30 ms for 4 heads (four per core), which widened each tile twice.
    /// </summary>
    private static int HeadsPerBlock(int nHeads, int group, int cores)
    {
        if (group % 2 == 0)
        {
            for (int heads = 8; heads > 2; heads /= 2)
            {
                if (group % heads == 0 && nHeads / heads >= 2 * cores)
                {
                    return heads;
                }
            }
            return 2;
        }
        for (int heads = group; heads > 1; heads--)
        {
            if (group % heads == 0 && nHeads / heads >= 2 * cores)
            {
                return heads;
            }
        }
        return 1;
    }

    /// <summary>One query tile of one segment: its first row in q, its positions, and its slot's byte offset in the caches.</summary>
    private readonly record struct WorkItem(int Row, int Start, int Seq, int Q0, nint KvBase);

    // The cache's elements are read by the same typed readers as the linear kernels' weights: one
    // specialised kernel per element type, with the widening inlined into its loads.
    private static void Launch<TC>(AiCoreGrid grid, float* q, byte* k, byte* v, float* output,
        int seq, int startPos, int nHeads, int nKvHeads, int headDim, int maxSeq, float scale, int window)
        where TC : struct, KvCache.IRowReader
    {
        int qTiles = (seq + QueryTile - 1) / QueryTile;
        int headsPerBlock = HeadsPerBlock(nHeads, nHeads / nKvHeads, grid.CoreCount);
        var kernel = new AttentionKernel<TC>
        {
            Q = q, KCache = k, VCache = v, Output = output,
            Seq = seq, StartPos = startPos, NHeads = nHeads, Group = nHeads / nKvHeads, HeadsPerBlock = headsPerBlock,
            HeadDim = headDim, MaxSeq = maxSeq, Scale = scale, QueryTiles = qTiles,
            // A window at least as long as the context masks nothing: the plain causal path.
            Window = window >= startPos + seq ? 0 : window,
        };
        grid.Launch(nHeads / headsPerBlock * qTiles, ref kernel);
    }

    private partial struct AttentionKernel<TC> : IBlockKernel where TC : struct, KvCache.IRowReader
    {
        public float* Q;
        public byte* KCache;
        public byte* VCache;
        public float* Output;
        public int Seq;
        public int StartPos;
        public int NHeads;
        public int Group;
        public int HeadsPerBlock;
        public int HeadDim;
        public int MaxSeq;
        public float Scale;
        public int QueryTiles;
        public int Window;
        // Batched launches: the work list (block / NHeads indexes it); null for a single sequence.
        public WorkItem* Work;

        /// <summary>
        /// A decode step's launch of one block per core: block p runs the work list's blocks
        /// [Ranges[p], Ranges[p + 1]) in order (<see cref="Partition"/>); null when blocks are handed out one
        /// by one.
        /// </summary>
        public int* Ranges;

        // The first key and value lines of the block this core runs next, requested during this block's
        // last key tile; null when there is none or it is unknown.
        private byte* _nextKeys;
        private byte* _nextValues;
        private nint _nextBytes;

        public readonly void Execute(int block)
        {
            int blocksPerTile = NHeads / HeadsPerBlock;
            if (Ranges != null)
            {
                int end = Ranges[block + 1];
                for (int b = Ranges[block]; b < end; b++)
                {
                    AttentionKernel<TC> known = this;
                    if (b + 1 < end)
                    {
                        WorkItem next = Work[(b + 1) / blocksPerTile];
                        int nextHead = (b + 1) % blocksPerTile * HeadsPerBlock;
                        int kEnd = next.Start + 1;
                        int kStart = FirstKey(kEnd, Window);
                        nint first = next.KvBase + TC.Bytes((((nint)(nextHead / Group) * MaxSeq) + kStart) * HeadDim);
                        known._nextKeys = KCache + first;
                        known._nextValues = VCache + first;
                        known._nextBytes = TC.Bytes((nint)Math.Min(KeyTile, kEnd - kStart) * HeadDim);
                    }
                    known.Item(b, blocksPerTile);
                }
                return;
            }
            if (Work is null)
            {
                // Latest query tiles see the most keys; handing them out first lets the short ones fill the gaps.
                Tile(block % blocksPerTile * HeadsPerBlock, (QueryTiles - 1 - block / blocksPerTile) * QueryTile, KCache, VCache);
                return;
            }
            Item(block, blocksPerTile);
        }

        /// <summary>Block <paramref name="block"/> of a batched launch: its tile's segment, seen as a single sequence of its own.</summary>
        private readonly void Item(int block, int blocksPerTile)
        {
            int head = block % blocksPerTile * HeadsPerBlock;
            WorkItem item = Work[block / blocksPerTile];
            AttentionKernel<TC> segment = this;
            nint rowOffset = (nint)item.Row * NHeads * HeadDim;
            segment.Q = Q + rowOffset;
            segment.Output = Output + rowOffset;
            segment.StartPos = item.Start;
            segment.Seq = item.Seq;
            segment.Window = Window >= item.Start + item.Seq ? 0 : Window;
            segment.Tile(head, item.Q0, KCache + item.KvBase, VCache + item.KvBase);
        }

        /// <summary>Heads [<paramref name="head"/>, +HeadsPerBlock) (one KV head's, or part of them) for the query tile at <paramref name="q0"/>.</summary>
        private readonly void Tile(int head, int q0, byte* kCache, byte* vCache)
        {
            int rows = Math.Min(QueryTile, Seq - q0);
            nint kvOffset = TC.Bytes((nint)(head / Group) * MaxSeq * HeadDim);
            var scratch = Scratch.For(HeadDim);
            if (rows >= MinRowsForTiled && Vector512.IsHardwareAccelerated)
            {
                for (int h = head; h < head + HeadsPerBlock; h++)
                {
                    TiledRows(scratch, h, q0, rows, kCache + kvOffset, vCache + kvOffset);
                }
            }
            else if (Vector512.IsHardwareAccelerated)
            {
                for (int r = 0; r < rows; r++)
                {
                    GroupRow(scratch, head, q0 + r, kCache + kvOffset, vCache + kvOffset);
                }
            }
            else
            {
                for (int h = head; h < head + HeadsPerBlock; h++)
                {
                    for (int r = 0; r < rows; r++)
                    {
                        SingleRow(scratch, h, q0 + r, kCache + kvOffset, vCache + kvOffset);
                    }
                }
            }
        }

        /// <summary>
        /// Query row <paramref name="i"/> of heads [<paramref name="head"/>, +HeadsPerBlock), which share
        /// one KV head: blocks of 4 or 8 heads, and of 2 out of a larger group, run <see cref="InterleavedRow{TK}"/>;
        /// otherwise (one head, a group of two or an odd one, a head dimension not a multiple of 16) each key
        /// and value tile is widened (half caches) and read from L1 once for all of them. Per head, the
        /// softmax updates and weighted sums are <see cref="SingleRow"/>'s step for step; scores are taken
        /// sixteen keys at a time (<see cref="Scores16"/>), so they may differ from SingleRow's in the last
        /// bits. A row's result does not depend on how many heads share the block: widening is exact,
        /// whether in registers or into the tile.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void GroupRow(Scratch scratch, int head, int i, byte* k, byte* v)
        {
            int hd = HeadDim, heads = HeadsPerBlock;
            // Two heads a block run the interleaved row only where the group is larger (so that its blocks of
            // 8, 4 and 2 heads agree bit for bit); a group of two, always two a block, keeps this row, which
            // was the faster for it (bench -- attention, 16 heads on 8 KV heads × 128 at 512: 0.113 against 0.135 ms).
            if ((heads is 4 or 8 || (heads == 2 && Group > 2)) && hd % 16 == 0 && VectorExp.IsSupported)
            {
                switch (heads)
                {
                    case 8: InterleavedRow<KeyPairs>(scratch, head, i, k, v); break;
                    case 4: InterleavedRow<KeyQuads>(scratch, head, i, k, v); break;
                    default: InterleavedRow<KeyOctets>(scratch, head, i, k, v); break;
                }
                return;
            }
            nint rowOffset = (nint)i * NHeads * hd + (nint)head * hd;
            // Per head: its scaled query and running output (QueryTile × hd each: heads ≤ 32), scores of a key tile, m and l.
            float* q = scratch.QT;
            float* o = scratch.O;
            float* s = scratch.S;
            float* m = stackalloc float[heads];
            float* l = stackalloc float[heads];
            float* corr = stackalloc float[heads];
            // The heads' queries are adjacent in the row: one scaled copy of heads·hd floats. (Scalar,
            // these loops and the output's were a fifth of a decode row over a cached 150-key context.)
            Elementwise.Scale(new ReadOnlySpan<float>(Q + rowOffset, heads * hd), Scale, new Span<float>(q, heads * hd));
            new Span<float>(o, heads * hd).Clear();
            for (int h = 0; h < heads; h++)
            {
                m[h] = float.NegativeInfinity;
                l[h] = 0f;
            }
            int kEnd = StartPos + i + 1;
            int kStart = FirstKey(kEnd, Window);
            // A lone head reads each key and value once: widening them in registers as they are read
            // beats writing a widened tile and reading it back. Heads sharing a KV head widen once.
            bool inRegisters = heads == 1 && typeof(TC) != typeof(LinearKernel.F32Weights);
            // Widened key and value tiles of 64 keys × 128 dimensions would be 64 KiB, more than L1 holds.
            int keyTile = !inRegisters && hd > 64 ? KeyTile / 2 : KeyTile;
            for (int kt0 = kStart; kt0 < kEnd; kt0 += keyTile)
            {
                int kn = Math.Min(keyTile, kEnd - kt0);
                if (inRegisters)
                {
                    nint tileOffset = TC.Bytes((nint)kt0 * hd);
                    if (_nextKeys != null && kt0 + KeyTile >= kEnd && Sse.IsSupported)
                    {
                        for (nint b = 0; b < _nextBytes; b += 64)
                        {
                            Sse.Prefetch0(_nextKeys + b);
                            Sse.Prefetch0(_nextValues + b);
                        }
                    }
                    float c = Softmax<TC>(q, s, ref m[0], ref l[0], k + tileOffset, kn, hd, k + tileOffset + TC.Bytes((nint)KeyTile * hd), v + tileOffset);
                    AccumulatePV1<TC>(o, s, 1, v + tileOffset, kn, hd, c);
                    continue;
                }
                // While one tile is widened the next one read is requested: this tile's values, then the
                // next tile's keys (see Softmax). Measured (1.1B's 32 heads on 4 KV heads at 2048
                // positions, f16 cache, one sequence, 22 layers; alternated): 4.19–4.24 → 2.59–3.20 ms.
                float* kt = Tile(k, kt0, kn, scratch.KTile, v);
                // The last tile's values are widened while the next block's first keys are requested (Tile
                // requests from ahead + the tile's offset, hence the offset taken off).
                byte* ahead = _nextKeys != null && kt0 + keyTile >= kEnd ? _nextKeys - TC.Bytes((nint)kt0 * hd) : k + TC.Bytes((nint)keyTile * hd);
                float* vt = Tile(v, kt0, kn, scratch.VTile, ahead);
                for (int h = 0; h < heads; h++)
                {
                    corr[h] = Softmax<LinearKernel.F32Weights>(q + (h * hd), s + (h * KeyTile), ref m[h], ref l[h], (byte*)kt, kn, hd, null, null);
                }
                // Two heads at a time share each value load and run eight FMA chains instead of four
                // (one head's four wait on the FMA latency); per head the sums are AccumulatePV1's, so
                // the bits do not depend on the pairing. In bench -- attention the difference is inside
                // its noise (decode at 2048 of 32 heads on 4 KV heads, medians 0.18–0.19 ms against
                // 0.15–0.21 alternated three times).
                int hp = 0;
                for (; hp + 2 <= heads; hp += 2)
                {
                    AccumulatePV2(o + (hp * hd), o + ((hp + 1) * hd), s + (hp * KeyTile), s + ((hp + 1) * KeyTile), 1, vt, kn, hd, corr[hp], corr[hp + 1]);
                }
                if (hp < heads)
                {
                    AccumulatePV1<LinearKernel.F32Weights>(o + (hp * hd), s + (hp * KeyTile), 1, (byte*)vt, kn, hd, corr[hp]);
                }
            }
            for (int h = 0; h < heads; h++)
            {
                Elementwise.Scale(new ReadOnlySpan<float>(o + (h * hd), hd), 1f / l[h], new Span<float>(Output + rowOffset + (h * hd), hd));
            }
        }

        /// <summary>
        /// One head's online-softmax step over a key tile, keys of <typeparamref name="TR"/>: its scores,
        /// turned into weights exp(score − m) in place, the running max m and sum l updated; returns the
        /// factor the head's output so far must be rescaled by before this tile's values are added.
        /// When <paramref name="nextKeys"/> is not null, the lines of this tile's values and of the next
        /// tile's keys are requested sixteen keys at a time as the scores are formed: a decode row reads
        /// one head's keys and values as short streams (a 64-key tile of f16 is 8 KiB) that the hardware
        /// prefetchers barely ramp up on before each ends. Measured (eight sequences at 150 positions, 12
        /// heads × 64, f16 cache, 12 layers, 44 MB of cache a step; alternated): 2.47–2.71 → 1.68–1.79 ms.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float Softmax<TR>(float* qh, float* sh, ref float m, ref float l, byte* kt, int kn, int hd, byte* nextKeys, byte* values)
            where TR : struct, KvCache.IRowReader
        {
            nint rowBytes = TR.Bytes(hd);
            int j = 0;
            if (Avx512F.IsSupported && hd % Vector512<float>.Count == 0)
            {
                for (; j + 16 <= kn; j += 16)
                {
                    if (nextKeys != null && Sse.IsSupported)
                    {
                        for (nint b = j * rowBytes; b < (j + 16) * rowBytes; b += 64)
                        {
                            Sse.Prefetch0(nextKeys + b);
                            Sse.Prefetch0(values + b);
                        }
                    }
                    Scores16<TR>(qh, kt + j * rowBytes, rowBytes, hd, sh + j);
                }
            }
            for (; j < kn; j++)
            {
                sh[j] = Dot<TR>(qh, kt + j * rowBytes, hd);
            }
            if (VectorExp.IsSupported)
            {
                return Weights(sh, kn, ref m, ref l);
            }
            float mNew = MathF.Max(m, Reductions.Max(ref *sh, kn));
            float corr = MathF.Exp(m - mNew);
            l = l * corr + Reductions.ExpShiftedSum(ref *sh, ref *sh, kn, mNew);
            m = mNew;
            return corr;
        }

        /// <summary>
        /// <see cref="Softmax{TR}"/>'s second half on AVX-512: the tile's scores, the last vector's lanes past
        /// the tile read as −∞ (a head's slots in the score scratch run to <see cref="KeyTile"/>; their weights
        /// are 0 and never read), give the tile max and the weights in vector passes with
        /// <see cref="VectorExp"/>. Reductions.Max and ExpShiftedSum with CoreLib's exponential were a
        /// third of a decode step's attention from cache (perf, the 1.1B shape, eight sequences).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static float Weights(float* s, int kn, ref float m, ref float l)
        {
            // The last partial vector's lanes past kn read as −∞ (they lie inside the head's KeyTile slots).
            int last = (kn - 1) & ~15;
            var live = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(kn - last)).AsSingle();
            var negInf = Vector512.Create(float.NegativeInfinity);
            var max = Vector512.ConditionalSelect(live, Vector512.Load(s + last), negInf);
            for (int j = 0; j < last; j += 16)
            {
                // vmaxps: a NaN score may be dropped from the max, but its weight e^(NaN − m) is NaN either way.
                max = Avx512F.Max(max, Vector512.Load(s + j));
            }
            float mNew = MathF.Max(m, Reductions.MaxAcross(max));
            float corr = MathF.Exp(m - mNew);
            var shift = Vector512.Create(mNew);
            var sum = Vector512<float>.Zero;
            for (int j = 0; j < last; j += 16)
            {
                var e = VectorExp.Exp(Vector512.Load(s + j) - shift);
                e.Store(s + j);
                sum += e;
            }
            var eLast = VectorExp.Exp(Vector512.ConditionalSelect(live, Vector512.Load(s + last), negInf) - shift);
            eLast.Store(s + last);
            l = l * corr + Vector512.Sum(sum + eLast);
            m = mNew;
            return corr;
        }

        // Only the decode path is compiled fully optimised from its first call (decode steps are
        // short, and tiering left this at tier 0 through whole generations). The prefill path
        // (TiledRows and its helpers) is left to tiered compilation: tier 1 with profile-guided
        // optimisation ran it 5-10% faster than a first-call full optimisation, and a prefill is
        // long enough for on-stack replacement and tiering to reach it.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void SingleRow(Scratch scratch, int head, int i, byte* k, byte* v)
        {
            int hd = HeadDim;
            nint rowOffset = (nint)i * NHeads * hd + (nint)head * hd;
            float* qi = scratch.QRow;
            float* oi = scratch.ORow;
            float* s = scratch.S;
            for (int d = 0; d < hd; d++)
            {
                qi[d] = Scale * Q[rowOffset + d];
                oi[d] = 0f;
            }
            float m = float.NegativeInfinity;
            float l = 0f;
            int kEnd = StartPos + i + 1;
            // Keys before the window are skipped, not masked: this query needs none of them.
            int kStart = FirstKey(kEnd, Window);
            for (int kt0 = kStart; kt0 < kEnd; kt0 += KeyTile)
            {
                int kn = Math.Min(KeyTile, kEnd - kt0);
                byte* kt = k + TC.Bytes((nint)kt0 * hd);
                for (int j = 0; j < kn; j++)
                {
                    s[j] = Dot<TC>(qi, kt + TC.Bytes((nint)j * hd), hd);
                }
                float mNew = MathF.Max(m, Reductions.Max(ref *s, kn));
                float corr = MathF.Exp(m - mNew);
                l = l * corr + Reductions.ExpShiftedSum(ref *s, ref *s, kn, mNew);
                byte* vt = v + TC.Bytes((nint)kt0 * hd);
                if (Vector512.IsHardwareAccelerated)
                {
                    AccumulatePV1<TC>(oi, s, 1, vt, kn, hd, corr);
                }
                else
                {
                    Reductions.ScaleInPlace(ref *oi, hd, corr);
                    for (int j = 0; j < kn; j++)
                    {
                        MultiplyAdd<TC>(oi, vt + TC.Bytes((nint)j * hd), hd, s[j]);
                    }
                }
                m = mNew;
            }
            float inv = 1f / l;
            float* outRow = Output + rowOffset;
            for (int d = 0; d < hd; d++)
            {
                outRow[d] = oi[d] * inv;
            }
        }

        // Scores are computed transposed, S^T[j, r] = K[j] · Q[r], with queries across the 32 lanes: the
        // query tile is transposed once per block, keys are broadcast straight from an f32 cache (a half
        // cache's tile is widened first, see Tile), and the running max/sum updates are lane-wise over
        // queries — no horizontal reductions in the loop.
        private readonly void TiledRows(Scratch scratch, int head, int q0, int rows, byte* k, byte* v)
        {
            int hd = HeadDim;
            int qStride = NHeads * hd;
            float* qt = scratch.QT;
            float* o = scratch.O;
            float* s = scratch.S;
            float* corr = scratch.Corr;
            for (int r = 0; r < QueryTile; r++)
            {
                float* qr = Q + (nint)(q0 + r) * qStride + (nint)head * hd;
                for (int d = 0; d < hd; d++)
                {
                    qt[d * QueryTile + r] = r < rows ? Scale * qr[d] : 0f;
                }
            }
            new Span<float>(o, rows * hd).Clear();

            var negInf = Vector512.Create(float.NegativeInfinity);
            var mA = negInf;
            var mB = negInf;
            var lA = Vector512<float>.Zero;
            var lB = Vector512<float>.Zero;
            int firstPos = StartPos + q0;
            var posA = Vector512.Create(firstPos) + Vector512<int>.Indices;
            var posB = posA + Vector512.Create(Vector512<int>.Count);
            // Padding lanes (r ≥ rows) score 0 against every key and are never written out; they only
            // need to stay finite, which zero queries guarantee.
            int kEnd = firstPos + rows;
            // Under a window, keys before the first query's window are seen by no query of the block:
            // those tiles are skipped. Within the range, key j is masked for query r when j ≤ pos_r − W.
            // Padding lanes take the last real query's window (lowA/lowB clamp), so no lane is empty.
            int lastPos = kEnd - 1;
            int kStart = Window > 0 ? Math.Max(0, firstPos - Window + 1) : 0;
            int windowEdge = Window > 0 ? lastPos - Window + 1 : 0;
            var lowA = Window > 0 ? Vector512.Min(posA, Vector512.Create(lastPos)) - Vector512.Create(Window - 1) : Vector512<int>.Zero;
            var lowB = Window > 0 ? Vector512.Min(posB, Vector512.Create(lastPos)) - Vector512.Create(Window - 1) : Vector512<int>.Zero;
            for (int kt0 = kStart; kt0 < kEnd; kt0 += KeyTile)
            {
                int kn = Math.Min(KeyTile, kEnd - kt0);
                float* kt = Tile(k, kt0, kn, scratch.KTile, null);
                int j = 0;
                for (; j + 4 <= kn; j += 4)
                {
                    Scores4(kt + (nint)j * hd, hd, qt, s + j * QueryTile);
                }
                for (; j < kn; j++)
                {
                    Scores1(kt + (nint)j * hd, hd, qt, s + j * QueryTile);
                }

                bool diagonal = kt0 + kn - 1 > firstPos;
                bool beforeWindow = kt0 < windowEdge;
                var tileMaxA = negInf;
                var tileMaxB = negInf;
                for (j = 0; j < kn; j++)
                {
                    float* sj = s + j * QueryTile;
                    var sA = Vector512.Load(sj);
                    var sB = Vector512.Load(sj + Vector512<float>.Count);
                    if (diagonal || beforeWindow)
                    {
                        var keyPos = Vector512.Create(kt0 + j);
                        var maskA = Vector512.GreaterThan(keyPos, posA) | Vector512.LessThan(keyPos, lowA);
                        var maskB = Vector512.GreaterThan(keyPos, posB) | Vector512.LessThan(keyPos, lowB);
                        sA = Vector512.ConditionalSelect(maskA.AsSingle(), negInf, sA);
                        sB = Vector512.ConditionalSelect(maskB.AsSingle(), negInf, sB);
                        sA.Store(sj);
                        sB.Store(sj + Vector512<float>.Count);
                    }
                    tileMaxA = Vector512.Max(tileMaxA, sA);
                    tileMaxB = Vector512.Max(tileMaxB, sB);
                }
                // Every query sees at least one key of the first tile (key 0, or under a window its own
                // window's start: the tile begins at most QueryTile - 1 < KeyTile keys before it), so m is
                // finite from then on and a query whose keys are all masked in a later tile gets
                // exp(-inf - m) = 0 weights.
                var mNewA = Vector512.Max(mA, tileMaxA);
                var mNewB = Vector512.Max(mB, tileMaxB);
                var corrA = VectorExp.Exp(mA - mNewA);
                var corrB = VectorExp.Exp(mB - mNewB);
                var sumA = Vector512<float>.Zero;
                var sumB = Vector512<float>.Zero;
                for (j = 0; j < kn; j++)
                {
                    float* sj = s + j * QueryTile;
                    var pA = VectorExp.Exp(Vector512.Load(sj) - mNewA);
                    var pB = VectorExp.Exp(Vector512.Load(sj + Vector512<float>.Count) - mNewB);
                    pA.Store(sj);
                    pB.Store(sj + Vector512<float>.Count);
                    sumA += pA;
                    sumB += pB;
                }
                lA = Vector512.FusedMultiplyAdd(lA, corrA, sumA);
                lB = Vector512.FusedMultiplyAdd(lB, corrB, sumB);
                mA = mNewA;
                mB = mNewB;
                corrA.Store(corr);
                corrB.Store(corr + Vector512<float>.Count);

                float* vt = Tile(v, kt0, kn, scratch.VTile, null);
                int r = 0;
                for (; r + 2 <= rows; r += 2)
                {
                    AccumulatePV2(o + r * hd, o + (r + 1) * hd, s + r, s + r + 1, QueryTile, vt, kn, hd, corr[r], corr[r + 1]);
                }
                if (r < rows)
                {
                    AccumulatePV1<LinearKernel.F32Weights>(o + r * hd, s + r, QueryTile, (byte*)vt, kn, hd, corr[r]);
                }
            }

            lA.Store(corr);
            lB.Store(corr + Vector512<float>.Count);
            for (int r = 0; r < rows; r++)
            {
                float inv = 1f / corr[r];
                float* outRow = Output + (nint)(q0 + r) * qStride + (nint)head * hd;
                float* orow = o + r * hd;
                for (int d = 0; d < hd; d++)
                {
                    outRow[d] = orow[d] * inv;
                }
            }
        }

        // A prefill tile reuses each key and value for up to 32 queries, and a decode row for every head
        // of its group, so a half-precision tile is widened once into the core's scratch (it stays in
        // L1) instead of on every reuse; an f32 tile is read where it lies.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly float* Tile(byte* cache, int kt0, int kn, float* scratch, byte* ahead)
        {
            nint offset = TC.Bytes((nint)kt0 * HeadDim);
            byte* tile = cache + offset;
            if (typeof(TC) == typeof(LinearKernel.F32Weights))
            {
                return (float*)tile;
            }
            Widen<TC>(tile, scratch, kn * HeadDim, ahead == null ? null : ahead + offset);
            return scratch;
        }
    }

    // Four keys against the 32 transposed queries: 8 accumulators, 2 query loads and 4 key broadcasts per d.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scores4(float* k, int hd, float* qt, float* s)
    {
        var a0 = Vector512<float>.Zero;
        var a1 = Vector512<float>.Zero;
        var a2 = Vector512<float>.Zero;
        var a3 = Vector512<float>.Zero;
        var b0 = Vector512<float>.Zero;
        var b1 = Vector512<float>.Zero;
        var b2 = Vector512<float>.Zero;
        var b3 = Vector512<float>.Zero;
        float* k1 = k + hd;
        float* k2 = k1 + hd;
        float* k3 = k2 + hd;
        for (int d = 0; d < hd; d++)
        {
            var qa = Vector512.Load(qt + d * QueryTile);
            var qb = Vector512.Load(qt + d * QueryTile + Vector512<float>.Count);
            var c0 = Vector512.Create(k[d]);
            var c1 = Vector512.Create(k1[d]);
            var c2 = Vector512.Create(k2[d]);
            var c3 = Vector512.Create(k3[d]);
            a0 = Vector512.FusedMultiplyAdd(c0, qa, a0);
            b0 = Vector512.FusedMultiplyAdd(c0, qb, b0);
            a1 = Vector512.FusedMultiplyAdd(c1, qa, a1);
            b1 = Vector512.FusedMultiplyAdd(c1, qb, b1);
            a2 = Vector512.FusedMultiplyAdd(c2, qa, a2);
            b2 = Vector512.FusedMultiplyAdd(c2, qb, b2);
            a3 = Vector512.FusedMultiplyAdd(c3, qa, a3);
            b3 = Vector512.FusedMultiplyAdd(c3, qb, b3);
        }
        const int H = 16;
        a0.Store(s);
        b0.Store(s + H);
        a1.Store(s + QueryTile);
        b1.Store(s + QueryTile + H);
        a2.Store(s + 2 * QueryTile);
        b2.Store(s + 2 * QueryTile + H);
        a3.Store(s + 3 * QueryTile);
        b3.Store(s + 3 * QueryTile + H);
    }

    // Sixteen keys against one query, s[j] = q · k[j]: one accumulator per key across the head
    // dimension (a q load feeds sixteen FMAs), then a tree of pairwise adds over lane-interleaving
    // permutes turns the sixteen vectors into one vector of the sixteen sums — a horizontal
    // reduction per key cost more than the key's four FMAs.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scores16<TR>(float* q, byte* k, nint rowBytes, int hd, float* s)
        where TR : struct, KvCache.IRowReader
    {
        var a0 = Vector512<float>.Zero;
        var a1 = Vector512<float>.Zero;
        var a2 = Vector512<float>.Zero;
        var a3 = Vector512<float>.Zero;
        var a4 = Vector512<float>.Zero;
        var a5 = Vector512<float>.Zero;
        var a6 = Vector512<float>.Zero;
        var a7 = Vector512<float>.Zero;
        var a8 = Vector512<float>.Zero;
        var a9 = Vector512<float>.Zero;
        var a10 = Vector512<float>.Zero;
        var a11 = Vector512<float>.Zero;
        var a12 = Vector512<float>.Zero;
        var a13 = Vector512<float>.Zero;
        var a14 = Vector512<float>.Zero;
        var a15 = Vector512<float>.Zero;
        byte* k4 = k + 4 * rowBytes;
        byte* k8 = k + 8 * rowBytes;
        byte* k12 = k + 12 * rowBytes;
        for (nint c = 0; c < hd; c += 16)
        {
            var qc = Vector512.Load(q + c);
            a0 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k, c), a0);
            a1 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k + rowBytes, c), a1);
            a2 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k + 2 * rowBytes, c), a2);
            a3 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k + 3 * rowBytes, c), a3);
            a4 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k4, c), a4);
            a5 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k4 + rowBytes, c), a5);
            a6 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k4 + 2 * rowBytes, c), a6);
            a7 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k4 + 3 * rowBytes, c), a7);
            a8 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k8, c), a8);
            a9 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k8 + rowBytes, c), a9);
            a10 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k8 + 2 * rowBytes, c), a10);
            a11 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k8 + 3 * rowBytes, c), a11);
            a12 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k12, c), a12);
            a13 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k12 + rowBytes, c), a13);
            a14 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k12 + 2 * rowBytes, c), a14);
            a15 = Vector512.FusedMultiplyAdd(qc, TR.Load16(k12 + 3 * rowBytes, c), a15);
        }
        // Each PairSums halves the lanes per key: after four levels lane j holds key j's sum.
        PairSums(
            PairSums(PairSums(PairSums(a0, a1), PairSums(a2, a3)), PairSums(PairSums(a4, a5), PairSums(a6, a7))),
            PairSums(PairSums(PairSums(a8, a9), PairSums(a10, a11)), PairSums(PairSums(a12, a13), PairSums(a14, a15)))).Store(s);
    }

    // [a0+a1, a2+a3, …, a14+a15, b0+b1, …, b14+b15]: adjacent lanes of a, then of b, summed.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> PairSums(Vector512<float> a, Vector512<float> b)
    {
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        var odd = Vector512.Create(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        return Avx512F.PermuteVar16x32x2(a, even, b) + Avx512F.PermuteVar16x32x2(a, odd, b);
    }

    private static void Scores1(float* k, int hd, float* qt, float* s)
    {
        var a = Vector512<float>.Zero;
        var b = Vector512<float>.Zero;
        for (int d = 0; d < hd; d++)
        {
            var c = Vector512.Create(k[d]);
            a = Vector512.FusedMultiplyAdd(c, Vector512.Load(qt + d * QueryTile), a);
            b = Vector512.FusedMultiplyAdd(c, Vector512.Load(qt + d * QueryTile + Vector512<float>.Count), b);
        }
        a.Store(s);
        b.Store(s + Vector512<float>.Count);
    }

    // O[r] = corr_r · O[r] + Σ_j P[j, r] · V[j] for two queries (or two heads of a decode row) at once, sharing each V load;
    // 64 columns at a time keep 8 accumulators in registers across the key loop.
    private static void AccumulatePV2(float* oa, float* ob, float* pa, float* pb, int pStride, float* v, int kn, int hd, float corrA, float corrB)
    {
        int c = 0;
        for (; c + 64 <= hd; c += 64)
        {
            var a0 = Vector512.Load(oa + c) * corrA;
            var a1 = Vector512.Load(oa + c + 16) * corrA;
            var a2 = Vector512.Load(oa + c + 32) * corrA;
            var a3 = Vector512.Load(oa + c + 48) * corrA;
            var b0 = Vector512.Load(ob + c) * corrB;
            var b1 = Vector512.Load(ob + c + 16) * corrB;
            var b2 = Vector512.Load(ob + c + 32) * corrB;
            var b3 = Vector512.Load(ob + c + 48) * corrB;
            for (int j = 0; j < kn; j++)
            {
                float* vj = v + (nint)j * hd + c;
                var wa = Vector512.Create(pa[j * pStride]);
                var wb = Vector512.Create(pb[j * pStride]);
                var v0 = Vector512.Load(vj);
                var v1 = Vector512.Load(vj + 16);
                var v2 = Vector512.Load(vj + 32);
                var v3 = Vector512.Load(vj + 48);
                a0 = Vector512.FusedMultiplyAdd(wa, v0, a0);
                b0 = Vector512.FusedMultiplyAdd(wb, v0, b0);
                a1 = Vector512.FusedMultiplyAdd(wa, v1, a1);
                b1 = Vector512.FusedMultiplyAdd(wb, v1, b1);
                a2 = Vector512.FusedMultiplyAdd(wa, v2, a2);
                b2 = Vector512.FusedMultiplyAdd(wb, v2, b2);
                a3 = Vector512.FusedMultiplyAdd(wa, v3, a3);
                b3 = Vector512.FusedMultiplyAdd(wb, v3, b3);
            }
            a0.Store(oa + c);
            a1.Store(oa + c + 16);
            a2.Store(oa + c + 32);
            a3.Store(oa + c + 48);
            b0.Store(ob + c);
            b1.Store(ob + c + 16);
            b2.Store(ob + c + 32);
            b3.Store(ob + c + 48);
        }
        for (; c + 16 <= hd; c += 16)
        {
            var a = Vector512.Load(oa + c) * corrA;
            var b = Vector512.Load(ob + c) * corrB;
            for (int j = 0; j < kn; j++)
            {
                var vj = Vector512.Load(v + (nint)j * hd + c);
                a = Vector512.FusedMultiplyAdd(Vector512.Create(pa[j * pStride]), vj, a);
                b = Vector512.FusedMultiplyAdd(Vector512.Create(pb[j * pStride]), vj, b);
            }
            a.Store(oa + c);
            b.Store(ob + c);
        }
        for (; c < hd; c++)
        {
            float a = oa[c] * corrA;
            float b = ob[c] * corrB;
            for (int j = 0; j < kn; j++)
            {
                float vj = v[(nint)j * hd + c];
                a = MathF.FusedMultiplyAdd(pa[j * pStride], vj, a);
                b = MathF.FusedMultiplyAdd(pb[j * pStride], vj, b);
            }
            oa[c] = a;
            ob[c] = b;
        }
    }

    // O = corr · O + Σ_j p[j · pStride] · V[j] for one query, accumulating 64 columns in registers
    // across the key loop instead of reloading and storing the output row once per key. V's rows are
    // of TC, widened to f32 in registers.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AccumulatePV1<TC>(float* o, float* p, int pStride, byte* v, int kn, int hd, float corr)
        where TC : struct, KvCache.IRowReader
    {
        nint rowBytes = TC.Bytes(hd);
        int c = 0;
        for (; c + 64 <= hd; c += 64)
        {
            var a0 = Vector512.Load(o + c) * corr;
            var a1 = Vector512.Load(o + c + 16) * corr;
            var a2 = Vector512.Load(o + c + 32) * corr;
            var a3 = Vector512.Load(o + c + 48) * corr;
            for (int j = 0; j < kn; j++)
            {
                byte* vj = v + j * rowBytes;
                var w = Vector512.Create(p[j * pStride]);
                a0 = Vector512.FusedMultiplyAdd(w, TC.Load16(vj, c), a0);
                a1 = Vector512.FusedMultiplyAdd(w, TC.Load16(vj, c + 16), a1);
                a2 = Vector512.FusedMultiplyAdd(w, TC.Load16(vj, c + 32), a2);
                a3 = Vector512.FusedMultiplyAdd(w, TC.Load16(vj, c + 48), a3);
            }
            a0.Store(o + c);
            a1.Store(o + c + 16);
            a2.Store(o + c + 32);
            a3.Store(o + c + 48);
        }
        for (; c + 16 <= hd; c += 16)
        {
            var a = Vector512.Load(o + c) * corr;
            for (int j = 0; j < kn; j++)
            {
                a = Vector512.FusedMultiplyAdd(Vector512.Create(p[j * pStride]), TC.Load16(v + j * rowBytes, c), a);
            }
            a.Store(o + c);
        }
        for (; c < hd; c++)
        {
            float a = o[c] * corr;
            for (int j = 0; j < kn; j++)
            {
                a = MathF.FusedMultiplyAdd(p[j * pStride], TC.Load(v + j * rowBytes, c), a);
            }
            o[c] = a;
        }
    }

    // Σ q[d]·k[d] with k of TC widened in registers: the accumulation order of Reductions.Dot, so an
    // f32 cache scores exactly as before.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot<TC>(float* q, byte* k, int n) where TC : struct, KvCache.IRowReader
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i <= n - 32; i += 32)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(q + i), TC.Load16(k, i), acc0);
                acc1 = Vector512.FusedMultiplyAdd(Vector512.Load(q + i + 16), TC.Load16(k, i + 16), acc1);
            }
            for (; i <= n - 16; i += 16)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(q + i), TC.Load16(k, i), acc0);
            }
            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
            {
                acc = Vector256.FusedMultiplyAdd(Vector256.Load(q + i), TC.Load8(k, i), acc);
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++)
        {
            sum = MathF.FusedMultiplyAdd(q[i], TC.Load(k, i), sum);
        }
        return sum;
    }

    // y[i] += alpha · x[i] with x of TC: Reductions.MultiplyAdd's arithmetic, for machines without AVX-512.
    private static void MultiplyAdd<TC>(float* y, byte* x, int n, float alpha) where TC : struct, KvCache.IRowReader
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var a = Vector256.Create(alpha);
            for (; i <= n - 8; i += 8)
            {
                Vector256.FusedMultiplyAdd(a, TC.Load8(x, i), Vector256.Load(y + i)).Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            y[i] = MathF.FusedMultiplyAdd(alpha, TC.Load(x, i), y[i]);
        }
    }

    // dst[0..count) = src widened from TC (the tiled and grouped paths only run with Vector512).
    private static void Widen<TC>(byte* src, float* dst, int count, byte* ahead) where TC : struct, KvCache.IRowReader
    {
        int i = 0;
        for (; i <= count - 16; i += 16)
        {
            if (ahead != null && Sse.IsSupported && (i & 31) == 0)
            {
                Sse.Prefetch0(ahead + TC.Bytes(i));
            }
            TC.Load16(src, i).Store(dst + i);
        }
        for (; i < count; i++)
        {
            dst[i] = TC.Load(src, i);
        }
    }

    /// <summary>
    /// One AI Core's working set, allocated the first time a thread runs attention (or meets a larger
    /// head dimension) and reused for every later launch. Pinned so the kernel can hold raw pointers.
    /// </summary>
    private sealed class Scratch
    {
        [ThreadStatic]
        private static Scratch? t_current;

        private readonly float[] _buffer;

        private Scratch(int headDim)
        {
            HeadDim = headDim;
            int qt = headDim * QueryTile;
            int o = QueryTile * headDim;
            int s = KeyTile * QueryTile;
            int tile = KeyTile * headDim;
            // +16 floats so the blocks can start on a 64-byte boundary.
            _buffer = GC.AllocateUninitializedArray<float>(qt + o + s + QueryTile + 2 * headDim + 2 * tile + 16, pinned: true);
            float* p = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_buffer));
            p = (float*)(((nint)p + 63) & ~(nint)63);
            S = p;
            Corr = S + s;
            QT = Corr + QueryTile;
            O = QT + qt;
            QRow = O + o;
            ORow = QRow + headDim;
            KTile = ORow + headDim;
            VTile = KTile + tile;
        }

        public int HeadDim { get; }
        public float* QT { get; }
        public float* O { get; }
        public float* S { get; }
        public float* Corr { get; }
        public float* QRow { get; }
        public float* ORow { get; }

        /// <summary>A half-precision cache's key tile widened to f32.</summary>
        public float* KTile { get; }

        /// <summary>A half-precision cache's value tile widened to f32.</summary>
        public float* VTile { get; }

        public static Scratch For(int headDim)
        {
            var scratch = t_current;
            if (scratch is null || scratch.HeadDim < headDim)
            {
                t_current = scratch = new Scratch(headDim);
            }
            return scratch;
        }
    }
}
