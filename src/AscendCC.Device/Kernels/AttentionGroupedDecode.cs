using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AscendCC.Device.Kernels;

internal static unsafe partial class Attention
{
    /// <summary>
    /// How a grouped decode row lays its heads and keys across a vector's sixteen lanes: 16 / Keys heads, each
    /// over Keys consecutive keys (lane = head · Keys + key), so one broadcast of Keys key values at one
    /// dimension, times one vector of the heads' query values at that dimension, adds sixteen products to
    /// sixteen different scores — no reduction across lanes, where a dot product per (head, key) ends in one.
    /// Every layout sums a score's products in the same order (dimension 0, 1, …), so a row's bits do not
    /// depend on how many heads share its block.
    /// </summary>
    private interface IKeyGroup
    {
        /// <summary>Keys side by side in a lane group (2, 4 or 8).</summary>
        static abstract int Keys { get; }

        /// <summary>The <see cref="Keys"/> floats at <paramref name="p"/> repeated across the sixteen lanes.</summary>
        static abstract Vector512<float> Broadcast(float* p);

        /// <summary>Each lane's maximum over the lanes of its head.</summary>
        static abstract Vector512<float> HeadMax(Vector512<float> v);

        /// <summary>Each lane's sum over the lanes of its head, as a balanced tree over the head's keys (k0 + k1, then (k0 + k1) + (k2 + k3), …).</summary>
        static abstract Vector512<float> HeadSum(Vector512<float> v);

        /// <summary>
        /// Sixteen dimensions (from <paramref name="c"/>) of <see cref="Keys"/> consecutive key rows, widened
        /// (<paramref name="rows"/> of them are real, the rest zeros), as Keys vectors of 16 / Keys dimensions
        /// × Keys keys, in order, at <paramref name="dst"/>, <paramref name="stride"/> floats apart.
        /// </summary>
        static abstract void Interleave<TC>(byte* first, nint rowElements, int c, int rows, float* dst, nint stride) where TC : struct, KvCache.IRowReader;
    }

    /// <summary>Eight heads × two keys (1.1B's 32 heads on 4 KV heads, two cores).</summary>
    private readonly struct KeyPairs : IKeyGroup
    {
        public static int Keys => 2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Broadcast(float* p) => Vector512.Create(*(double*)p).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> HeadMax(Vector512<float> v) => Avx512F.Max(v, Avx512F.Permute4x32(v, 0b10_11_00_01));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> HeadSum(Vector512<float> v) => v + Avx512F.Permute4x32(v, 0b10_11_00_01);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Interleave<TC>(byte* first, nint rowElements, int c, int rows, float* dst, nint stride) where TC : struct, KvCache.IRowReader
        {
            Zip(Row<TC>(first, rowElements, c, rows, 0), Row<TC>(first, rowElements, c, rows, 1), 1, out Vector512<float> lo, out Vector512<float> hi);
            lo.Store(dst);
            hi.Store(dst + stride);
        }
    }

    /// <summary>Four heads × four keys (groups of four query heads, as Llama 3 8B's and Mistral 7B's).</summary>
    private readonly struct KeyQuads : IKeyGroup
    {
        public static int Keys => 4;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Broadcast(float* p) => Avx512F.BroadcastVector128ToVector512(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> HeadMax(Vector512<float> v) => Avx512F.Max(KeyPairs.HeadMax(v), Avx512F.Permute4x32(KeyPairs.HeadMax(v), 0b01_00_11_10));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> HeadSum(Vector512<float> v) => KeyPairs.HeadSum(v) + Avx512F.Permute4x32(KeyPairs.HeadSum(v), 0b01_00_11_10);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Interleave<TC>(byte* first, nint rowElements, int c, int rows, float* dst, nint stride) where TC : struct, KvCache.IRowReader
        {
            Zip(Row<TC>(first, rowElements, c, rows, 0), Row<TC>(first, rowElements, c, rows, 1), 1, out Vector512<float> ab0, out Vector512<float> ab1);
            Zip(Row<TC>(first, rowElements, c, rows, 2), Row<TC>(first, rowElements, c, rows, 3), 1, out Vector512<float> xy0, out Vector512<float> xy1);
            Zip(ab0, xy0, 2, out Vector512<float> d0, out Vector512<float> d4);
            Zip(ab1, xy1, 2, out Vector512<float> d8, out Vector512<float> d12);
            d0.Store(dst);
            d4.Store(dst + stride);
            d8.Store(dst + (2 * stride));
            d12.Store(dst + (3 * stride));
        }
    }

    /// <summary>Two heads × eight keys: a block of two out of a larger group (eight query heads on one KV head, two cores).</summary>
    private readonly struct KeyOctets : IKeyGroup
    {
        public static int Keys => 8;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Broadcast(float* p) => Avx512DQ.BroadcastVector256ToVector512(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> HeadMax(Vector512<float> v)
        {
            v = KeyQuads.HeadMax(v);
            return Avx512F.Max(v, Avx512F.Shuffle4x128(v, v, 0b10_11_00_01));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> HeadSum(Vector512<float> v)
        {
            v = KeyQuads.HeadSum(v);
            return v + Avx512F.Shuffle4x128(v, v, 0b10_11_00_01);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Interleave<TC>(byte* first, nint rowElements, int c, int rows, float* dst, nint stride) where TC : struct, KvCache.IRowReader
        {
            Zip(Row<TC>(first, rowElements, c, rows, 0), Row<TC>(first, rowElements, c, rows, 1), 1, out Vector512<float> ab0, out Vector512<float> ab1);
            Zip(Row<TC>(first, rowElements, c, rows, 2), Row<TC>(first, rowElements, c, rows, 3), 1, out Vector512<float> cd0, out Vector512<float> cd1);
            Zip(Row<TC>(first, rowElements, c, rows, 4), Row<TC>(first, rowElements, c, rows, 5), 1, out Vector512<float> ef0, out Vector512<float> ef1);
            Zip(Row<TC>(first, rowElements, c, rows, 6), Row<TC>(first, rowElements, c, rows, 7), 1, out Vector512<float> gh0, out Vector512<float> gh1);
            // Four keys at dimensions 0–3, 4–7, 8–11, 12–15, then eight at 0–1, 2–3, ….
            Zip(ab0, cd0, 2, out Vector512<float> a0, out Vector512<float> a4);
            Zip(ab1, cd1, 2, out Vector512<float> a8, out Vector512<float> a12);
            Zip(ef0, gh0, 2, out Vector512<float> e0, out Vector512<float> e4);
            Zip(ef1, gh1, 2, out Vector512<float> e8, out Vector512<float> e12);
            Zip(a0, e0, 4, out Vector512<float> d0, out Vector512<float> d2);
            Zip(a4, e4, 4, out Vector512<float> d4, out Vector512<float> d6);
            Zip(a8, e8, 4, out Vector512<float> d8, out Vector512<float> d10);
            Zip(a12, e12, 4, out Vector512<float> d12, out Vector512<float> d14);
            d0.Store(dst);
            d2.Store(dst + stride);
            d4.Store(dst + (2 * stride));
            d6.Store(dst + (3 * stride));
            d8.Store(dst + (4 * stride));
            d10.Store(dst + (5 * stride));
            d12.Store(dst + (6 * stride));
            d14.Store(dst + (7 * stride));
        }
    }

    /// <summary>Row <paramref name="r"/> of a key group at 16 dimensions from <paramref name="c"/>, widened; zeros past the group's real rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Row<TC>(byte* first, nint rowElements, int c, int rows, int r) where TC : struct, KvCache.IRowReader =>
        r < rows ? TC.Load16(first, (r * rowElements) + c) : Vector512<float>.Zero;

    /// <summary>
    /// Chunks of <paramref name="chunk"/> lanes taken from <paramref name="a"/> and <paramref name="b"/> in turn: lo from
    /// their lower halves, hi from their upper halves (chunk 1: a0 b0 a1 b1 …; chunk 2: a0 a1 b0 b1 a2 a3 …).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Zip(Vector512<float> a, Vector512<float> b, int chunk, out Vector512<float> lo, out Vector512<float> hi)
    {
        Vector512<int> index = chunk switch
        {
            1 => Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
            2 => Vector512.Create(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23),
            _ => Vector512.Create(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23),
        };
        lo = Avx512F.PermuteVar16x32x2(a, index, b);
        hi = Avx512F.PermuteVar16x32x2(a, index + Vector512.Create(8), b);
    }

    private partial struct AttentionKernel<TC>
    {
        /// <summary>
        /// <see cref="GroupRow"/> for 16 / TK.Keys heads sharing a KV head, with heads and keys across the lanes
        /// (<see cref="IKeyGroup"/>): a key tile is widened once with TK.Keys rows interleaved by dimension
        /// (<see cref="InterleaveKeys{TK}"/>); a score is then one chain of FMAs over the head dimension, and a
        /// tile's max, weights and sums for every head are a few vector passes with no horizontal reduction
        /// and no scalar exponential; the weighted sum of values takes four heads (two) at a time, each value
        /// load serving them all. Per head, the online softmax's steps are <see cref="SingleRow"/>'s; a score
        /// sums its products in dimension order and a tile's weights in one balanced tree (<see cref="TileSum{TK}"/>),
        /// whatever TK, so the bits do not depend on the heads beside a row's (they may differ in the last
        /// bits from a one-head block's, <see cref="Scores16"/> and <see cref="Weights"/>).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void InterleavedRow<TK>(Scratch scratch, int head, int i, byte* k, byte* v) where TK : struct, IKeyGroup
        {
            int hd = HeadDim, heads = HeadsPerBlock, keys = TK.Keys;
            nint rowOffset = (nint)i * NHeads * hd + (nint)head * hd;
            // qt: per dimension d, the heads' scaled query values, lane = head · keys + key. o: the heads'
            // running outputs. s: a tile's scores, 16 lanes a key group.
            float* qt = scratch.QT;
            float* o = scratch.O;
            float* s = scratch.S;
            float* corr = scratch.Corr;
            float* row = Q + rowOffset;
            for (int d = 0; d < hd; d++)
            {
                for (int lane = 0; lane < Vector512<float>.Count; lane++)
                {
                    qt[(d * Vector512<float>.Count) + lane] = Scale * row[(lane / keys * hd) + d];
                }
            }
            new Span<float>(o, heads * hd).Clear();
            var m = Vector512.Create(float.NegativeInfinity);
            var l = Vector512<float>.Zero;
            var laneKey = Vector512<int>.Indices & Vector512.Create(keys - 1);
            int kEnd = StartPos + i + 1;
            int kStart = FirstKey(kEnd, Window);
            for (int kt0 = kStart; kt0 < kEnd; kt0 += KeyTile)
            {
                int kn = Math.Min(KeyTile, kEnd - kt0);
                int groups = (kn + keys - 1) / keys;
                nint offset = TC.Bytes((nint)kt0 * hd);
                // This tile's values are requested while its keys are widened, then the next tile's keys (or the
                // next block's first ones) before its scores.
                InterleaveKeys<TK>(k + offset, kn, scratch.KTile, v + offset);
                byte* nextKeys = _nextKeys != null && kt0 + KeyTile >= kEnd ? _nextKeys : k + offset + TC.Bytes((nint)KeyTile * hd);
                if (Sse.IsSupported)
                {
                    for (nint b = 0, tileBytes = TC.Bytes((nint)kn * hd); b < tileBytes; b += 64)
                    {
                        Sse.Prefetch0(nextKeys + b);
                    }
                }
                for (int g0 = 0; g0 < groups; g0 += PassGroups<TK>())
                {
                    InterleavedScores<TK>(scratch.KTile + ((nint)g0 * keys * hd), qt, hd, s + (g0 * Vector512<float>.Count));
                }

                // The last group's lanes past the tile's keys read as −∞ (their weights are 0 and never read).
                int last = groups - 1;
                var live = Vector512.LessThan(laneKey, Vector512.Create(kn - (last * keys))).AsSingle();
                var lastScores = Vector512.ConditionalSelect(live, Vector512.Load(s + (last * 16)), Vector512.Create(float.NegativeInfinity));
                lastScores.Store(s + (last * 16));
                var max = lastScores;
                for (int g = 0; g < last; g++)
                {
                    // vmaxps: a NaN score may be dropped from the max, but its weight e^(NaN − m) is NaN either way.
                    max = Avx512F.Max(max, Vector512.Load(s + (g * 16)));
                }
                var mNew = Avx512F.Max(m, TK.HeadMax(max));
                var c = VectorExp.Exp(m - mNew);
                for (int g = 0; g < groups; g++)
                {
                    VectorExp.Exp(Vector512.Load(s + (g * 16)) - mNew).Store(s + (g * 16));
                }
                l = (l * c) + TileSum<TK>(s, groups, s + (KeyTile * 16));
                m = mNew;
                c.Store(corr);
                // Values are read as stored, widened in registers as they are read: no value tile is written and
                // read back (with eight heads, two calls widen each value twice, and are still the faster).
                for (int h = 0; h < heads; h += PvHeads<TK>())
                {
                    AccumulateInterleavedPV<TK, TC>(o + (h * hd), s + (h * keys), v + offset, kn, hd, corr + (h * keys));
                }
            }
            // Every lane of a head holds its l.
            l.Store(corr);
            for (int h = 0; h < heads; h++)
            {
                Elementwise.Scale(new ReadOnlySpan<float>(o + (h * hd), hd), 1f / corr[h * keys], new Span<float>(Output + rowOffset + (h * hd), hd));
            }
        }

        /// <summary>
        /// The tile's first <paramref name="kn"/> keys, widened into <paramref name="kp"/> in passes of
        /// <see cref="PassGroups{TK}"/> key groups: within a pass, [dimension block][group][16 floats], a
        /// dimension block being the 16 / TK.Keys dimensions one interleaved vector holds, so a pass's
        /// broadcasts at one dimension are fixed offsets from one pointer. A last group short of keys is
        /// padded with zeros (rows past the tile are never read).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly void InterleaveKeys<TK>(byte* tile, int kn, float* kp, byte* ahead) where TK : struct, IKeyGroup
        {
            int hd = HeadDim, keys = TK.Keys, dims = Vector512<float>.Count / keys, passGroups = PassGroups<TK>();
            int groups = (kn + keys - 1) / keys;
            nint stride = passGroups * Vector512<float>.Count, groupBytes = TC.Bytes((nint)keys * hd);
            for (int g = 0; g < groups; g++)
            {
                int j = g * keys;
                nint at = TC.Bytes((nint)j * hd);
                if (ahead != null && Sse.IsSupported)
                {
                    // The group's rows are consecutive in the cache: request the same lines of the other stream.
                    for (nint b = 0; b < groupBytes; b += 64)
                    {
                        Sse.Prefetch0(ahead + at + b);
                    }
                }
                byte* first = tile + at;
                float* dst = kp + ((nint)(g / passGroups) * passGroups * keys * hd) + ((g % passGroups) * Vector512<float>.Count);
                int rows = Math.Min(keys, kn - j);
                for (int c = 0; c < hd; c += 16)
                {
                    TK.Interleave<TC>(first, hd, c, rows, dst + ((nint)(uint)c / (uint)dims * stride), stride);
                }
            }
        }
    }

    /// <summary>
    /// Each head's sum of a tile's weights (<paramref name="groups"/> vectors at <paramref name="s"/>, zeros after them)
    /// in every lane of the head, as one balanced tree over the tile's 64 keys whatever the lane layout: the
    /// head's lanes first (<see cref="IKeyGroup.HeadSum"/>), then the groups in pairs, pairs of pairs, … —
    /// so l, like the scores, does not depend on how many heads share a block. <paramref name="tmp"/>: room for 16 vectors.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> TileSum<TK>(float* s, int groups, float* tmp) where TK : struct, IKeyGroup
    {
        int n = KeyTile / TK.Keys / 2;
        for (int i = 0; i < n; i++)
        {
            Vector512<float> a = 2 * i < groups ? TK.HeadSum(Vector512.Load(s + (32 * i))) : Vector512<float>.Zero;
            Vector512<float> b = (2 * i) + 1 < groups ? TK.HeadSum(Vector512.Load(s + (32 * i) + 16)) : Vector512<float>.Zero;
            (a + b).Store(tmp + (16 * i));
        }
        for (; n > 1; n /= 2)
        {
            for (int i = 0; i < n / 2; i++)
            {
                (Vector512.Load(tmp + (32 * i)) + Vector512.Load(tmp + (32 * i) + 16)).Store(tmp + (16 * i));
            }
        }
        return Vector512.Load(tmp);
    }

    /// <summary>Key groups a scoring pass takes: sixteen (sixteen accumulators), or a tile's eight when a group is eight keys.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int PassGroups<TK>() where TK : struct, IKeyGroup => Math.Min(16, KeyTile / TK.Keys);

    /// <summary>Heads a weighted sum of values takes at once: four, or the block's two when a group is eight keys.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int PvHeads<TK>() where TK : struct, IKeyGroup => Math.Min(4, Vector512<float>.Count / TK.Keys);

    /// <summary>
    /// Scores of one pass's <see cref="PassGroups{TK}"/> key groups (<see cref="AttentionKernel{TC}.InterleaveKeys{TK}"/>'s
    /// layout) against the heads' queries: s[g · 16 + lane] = Σ_d qt[d][lane] · (group g's key of that lane)[d],
    /// one FMA chain a score, dimension after dimension.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InterleavedScores<TK>(float* kp, float* qt, int hd, float* s) where TK : struct, IKeyGroup
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
        int keys = TK.Keys, dims = Vector512<float>.Count / keys, groups = PassGroups<TK>();
        bool sixteen = groups == 16;
        // Dimension d of group g: the block of `dims` dimensions holding d (a row of the pass's groups, 16 floats
        // each), then d's place in its group's 16 floats.
        for (float* block = kp, end = kp + ((nint)hd * keys * groups); block < end; block += groups * 16)
        {
            for (int dd = 0; dd < dims; dd++, qt += 16)
            {
                float* at = block + (dd * keys);
                var q = Vector512.Load(qt);
                a0 = Vector512.FusedMultiplyAdd(TK.Broadcast(at), q, a0);
                a1 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 16), q, a1);
                a2 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 32), q, a2);
                a3 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 48), q, a3);
                a4 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 64), q, a4);
                a5 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 80), q, a5);
                a6 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 96), q, a6);
                a7 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 112), q, a7);
                if (sixteen)
                {
                    a8 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 128), q, a8);
                    a9 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 144), q, a9);
                    a10 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 160), q, a10);
                    a11 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 176), q, a11);
                    a12 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 192), q, a12);
                    a13 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 208), q, a13);
                    a14 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 224), q, a14);
                    a15 = Vector512.FusedMultiplyAdd(TK.Broadcast(at + 240), q, a15);
                }
            }
        }
        Store64(s, a0, a1, a2, a3);
        Store64(s + 64, a4, a5, a6, a7);
        if (sixteen)
        {
            Store64(s + 128, a8, a9, a10, a11);
            Store64(s + 192, a12, a13, a14, a15);
        }
    }

    /// <summary>
    /// o_h = corr_h · o_h + Σ_j p_h[j] · V[j] for <see cref="PvHeads{TK}"/> heads at once (o their rows of hd; p and corr
    /// in the interleaved lanes: head h's weight for key j at p[(j / Keys) · 16 + h · Keys + j % Keys], its factor at
    /// corr[h · Keys]): each value load serves every head, four accumulators a head over 64 columns. V's rows are
    /// the cache's as stored, widened in registers (exactly). Per head and column the sum is
    /// <see cref="AccumulatePV1{TC}"/>'s, FMA for FMA.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AccumulateInterleavedPV<TK, TC>(float* o, float* p, byte* v, int kn, int hd, float* corr)
        where TK : struct, IKeyGroup
        where TC : struct, KvCache.IRowReader
    {
        nint rowBytes = TC.Bytes(hd);
        int keys = TK.Keys;
        // Two heads leave the third and fourth accumulators of each column unused (the JIT drops them).
        bool four = PvHeads<TK>() == 4;
        float c0 = corr[0], c1 = corr[keys], c2 = four ? corr[2 * keys] : 0f, c3 = four ? corr[3 * keys] : 0f;
        float* o1 = o + hd, o2 = o + (2 * hd), o3 = o + (3 * hd);
        int c = 0;
        for (; c + 64 <= hd; c += 64)
        {
            var a0 = Vector512.Load(o + c) * c0;
            var a1 = Vector512.Load(o + c + 16) * c0;
            var a2 = Vector512.Load(o + c + 32) * c0;
            var a3 = Vector512.Load(o + c + 48) * c0;
            var b0 = Vector512.Load(o1 + c) * c1;
            var b1 = Vector512.Load(o1 + c + 16) * c1;
            var b2 = Vector512.Load(o1 + c + 32) * c1;
            var b3 = Vector512.Load(o1 + c + 48) * c1;
            Vector512<float> d0 = default, d1 = default, d2 = default, d3 = default, e0 = default, e1 = default, e2 = default, e3 = default;
            if (four)
            {
                d0 = Vector512.Load(o2 + c) * c2;
                d1 = Vector512.Load(o2 + c + 16) * c2;
                d2 = Vector512.Load(o2 + c + 32) * c2;
                d3 = Vector512.Load(o2 + c + 48) * c2;
                e0 = Vector512.Load(o3 + c) * c3;
                e1 = Vector512.Load(o3 + c + 16) * c3;
                e2 = Vector512.Load(o3 + c + 32) * c3;
                e3 = Vector512.Load(o3 + c + 48) * c3;
            }
            float* pj = p;
            for (int j = 0; j < kn; j++, pj = (j & (keys - 1)) == 0 ? pj + 16 - keys + 1 : pj + 1)
            {
                byte* vj = v + (j * rowBytes);
                var v0 = TC.Load16(vj, c);
                var v1 = TC.Load16(vj, c + 16);
                var v2 = TC.Load16(vj, c + 32);
                var v3 = TC.Load16(vj, c + 48);
                var w = Vector512.Create(pj[0]);
                a0 = Vector512.FusedMultiplyAdd(w, v0, a0);
                a1 = Vector512.FusedMultiplyAdd(w, v1, a1);
                a2 = Vector512.FusedMultiplyAdd(w, v2, a2);
                a3 = Vector512.FusedMultiplyAdd(w, v3, a3);
                w = Vector512.Create(pj[keys]);
                b0 = Vector512.FusedMultiplyAdd(w, v0, b0);
                b1 = Vector512.FusedMultiplyAdd(w, v1, b1);
                b2 = Vector512.FusedMultiplyAdd(w, v2, b2);
                b3 = Vector512.FusedMultiplyAdd(w, v3, b3);
                if (four)
                {
                    w = Vector512.Create(pj[2 * keys]);
                    d0 = Vector512.FusedMultiplyAdd(w, v0, d0);
                    d1 = Vector512.FusedMultiplyAdd(w, v1, d1);
                    d2 = Vector512.FusedMultiplyAdd(w, v2, d2);
                    d3 = Vector512.FusedMultiplyAdd(w, v3, d3);
                    w = Vector512.Create(pj[3 * keys]);
                    e0 = Vector512.FusedMultiplyAdd(w, v0, e0);
                    e1 = Vector512.FusedMultiplyAdd(w, v1, e1);
                    e2 = Vector512.FusedMultiplyAdd(w, v2, e2);
                    e3 = Vector512.FusedMultiplyAdd(w, v3, e3);
                }
            }
            Store64(o + c, a0, a1, a2, a3);
            Store64(o1 + c, b0, b1, b2, b3);
            if (four)
            {
                Store64(o2 + c, d0, d1, d2, d3);
                Store64(o3 + c, e0, e1, e2, e3);
            }
        }
        for (; c < hd; c += 16)
        {
            var a = Vector512.Load(o + c) * c0;
            var b = Vector512.Load(o1 + c) * c1;
            var d = four ? Vector512.Load(o2 + c) * c2 : default;
            var e = four ? Vector512.Load(o3 + c) * c3 : default;
            float* pj = p;
            for (int j = 0; j < kn; j++, pj = (j & (keys - 1)) == 0 ? pj + 16 - keys + 1 : pj + 1)
            {
                var vj = TC.Load16(v + (j * rowBytes), c);
                a = Vector512.FusedMultiplyAdd(Vector512.Create(pj[0]), vj, a);
                b = Vector512.FusedMultiplyAdd(Vector512.Create(pj[keys]), vj, b);
                if (four)
                {
                    d = Vector512.FusedMultiplyAdd(Vector512.Create(pj[2 * keys]), vj, d);
                    e = Vector512.FusedMultiplyAdd(Vector512.Create(pj[3 * keys]), vj, e);
                }
            }
            a.Store(o + c);
            b.Store(o1 + c);
            if (four)
            {
                d.Store(o2 + c);
                e.Store(o3 + c);
            }
        }
    }

    /// <summary>Sixty-four floats from four vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store64(float* to, Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3)
    {
        x0.Store(to);
        x1.Store(to + 16);
        x2.Store(to + 32);
        x3.Store(to + 48);
    }
}
