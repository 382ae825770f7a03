using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AscendCC.Device.Kernels;

/// <summary>
/// The per-layer key/value cache: K and V each [nKvHeads, maxSeq, headDim] of one element type (F32,
/// F16, BF16, Q8_0Rows or Q4_0Rows), so one head's keys are contiguous and attention streams them without
/// striding over other heads. Half-precision caches are written rounded to nearest even, Q8_0Rows and
/// Q4_0Rows ones quantized per block of 32 as llama.cpp's q8_0 and q4_0, and attention widens them back to
/// f32 as it reads them.
/// </summary>
internal static unsafe class KvCache
{
    /// <summary>Q8_0Rows: values per block and bytes per block (32 int8, then the f32 scale).</summary>
    public const int Q8Block = 32, Q8BlockBytes = 36;

    /// <summary>Q4_0Rows: values per block and bytes per block (16 bytes of nibbles, then the f32 scale).</summary>
    public const int Q4Block = 32, Q4BlockBytes = 20;

    /// <summary>True for the element types a KV cache may hold.</summary>
    public static bool IsCacheType(ElementType type) => type is ElementType.F32 or ElementType.F16 or ElementType.BF16 or ElementType.Q8_0Rows or ElementType.Q4_0Rows;

    /// <summary>True for the cache types kept in blocks of 32 (rows must be whole blocks).</summary>
    public static bool IsBlocked(ElementType type) => type is ElementType.Q8_0Rows or ElementType.Q4_0Rows;

    /// <summary>
    /// Bytes of <paramref name="elements"/> consecutive cache values from a row start, and so the offset of
    /// element <paramref name="elements"/> of a run of whole rows: blocked rows are whole blocks, so a run
    /// of them is blocks end to end. Inside a block it is the byte holding the element's quant (a Q4_0Rows
    /// byte holds values j and 16 + j).
    /// </summary>
    public static long Bytes(ElementType type, long elements) => type switch
    {
        ElementType.Q8_0Rows => (elements / Q8Block * Q8BlockBytes) + (elements % Q8Block),
        ElementType.Q4_0Rows => (elements / Q4Block * Q4BlockBytes) + (elements % Q4Block % 16),
        _ => elements * ElementTypes.SizeOf(type),
    };

    /// <summary>How attention reads a cache of one element type: a run of rows as f32 values, 16, 8 or 1 at a time.</summary>
    internal interface IRowReader
    {
        /// <summary>The byte offset of element <paramref name="elements"/> from the start of a row (of a run of rows).</summary>
        static abstract nint Bytes(nint elements);

        /// <summary>Elements [i, i+16) of the row.</summary>
        static abstract Vector512<float> Load16(byte* row, nint i);

        /// <summary>Elements [i, i+8) of the row.</summary>
        static abstract Vector256<float> Load8(byte* row, nint i);

        static abstract float Load(byte* row, nint i);
    }

    /// <summary>Q8_0Rows values: q·d, widened from int8 in registers (i a multiple of 8 or 16 in the vector loads, so never across a block).</summary>
    internal readonly struct Q8_0RowReader : IRowReader
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static nint Bytes(nint elements) => ((elements >> 5) * Q8BlockBytes) + (elements & (Q8Block - 1));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(byte* row, nint i)
        {
            byte* block = row + ((i >> 5) * Q8BlockBytes);
            var scale = Vector512.Create(*(float*)(block + Q8Block));
            if (Avx512F.IsSupported)
            {
                return Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + (i & (Q8Block - 1))))) * scale;
            }
            return Vector512.Create(Load8(row, i), Load8(row, i + 8));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load8(byte* row, nint i)
        {
            byte* block = row + ((i >> 5) * Q8BlockBytes);
            sbyte* q = (sbyte*)block + (i & (Q8Block - 1));
            Vector256<int> wide = Avx2.IsSupported
                ? Avx2.ConvertToVector256Int32(q)
                : Vector256.Create(q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]);
            return Vector256.ConvertToSingle(wide) * *(float*)(block + Q8Block);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* row, nint i)
        {
            byte* block = row + ((i >> 5) * Q8BlockBytes);
            return ((sbyte*)block)[i & (Q8Block - 1)] * *(float*)(block + Q8Block);
        }
    }

    /// <summary>
    /// Q4_0Rows values: (n − 8)·d, n the value's nibble, widened in registers. i is a multiple of 16 in
    /// <see cref="Load16"/> and of 8 in <see cref="Load8"/>, so a load is one half of a block: the low
    /// nibbles of its bytes (values 0..15) or the high ones (16..31). With AVX-512 the nibble indexes a
    /// table of the sixteen n − 8 as floats (vpermps reads an index's low four bits only, so the low half
    /// needs no mask and the high half one shift): zero-extend, shift, permute, multiply — q8_0's count
    /// plus the shift. Against shifting the bytes, masking, zero-extending, subtracting 8 and converting
    /// (bench -- attention, decode at 2048 of 12 heads × 64 from the L3, alternated three times): medians
    /// 0.158–0.164 against 0.166 ms. q8_0's reader still ran 0.10–0.13 ms there.
    /// </summary>
    internal readonly struct Q4_0RowReader : IRowReader
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static nint Bytes(nint elements) => ((elements >> 5) * Q4BlockBytes) + (elements & 15);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(byte* row, nint i)
        {
            byte* block = row + ((i >> 5) * Q4BlockBytes);
            var scale = Vector512.Create(*(float*)(block + 16));
            if (Avx512F.IsSupported)
            {
                Vector512<int> bytes = Avx512F.ConvertToVector512Int32(Vector128.Load(block));
                Vector512<float> values = Vector512.Create(-8f, -7f, -6f, -5f, -4f, -3f, -2f, -1f, 0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f);
                return Avx512F.PermuteVar16x32(values, Vector512.ShiftRightLogical(bytes, (int)(i & 16) >> 2)) * scale;
            }
            return Vector512.Create(Load8(row, i), Load8(row, i + 8));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load8(byte* row, nint i)
        {
            byte* block = row + ((i >> 5) * Q4BlockBytes);
            byte* bytes = block + (i & 15);
            Vector256<int> wide = Avx2.IsSupported
                ? Avx2.ConvertToVector256Int32(bytes)
                : Vector256.Create(bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]);
            Vector256<int> n = Vector256.ShiftRightLogical(wide, (int)(i & 16) >> 2) & Vector256.Create(15);
            return Vector256.ConvertToSingle(n - Vector256.Create(8)) * *(float*)(block + 16);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* row, nint i)
        {
            byte* block = row + ((i >> 5) * Q4BlockBytes);
            return (((block[i & 15] >> (int)((i & 16) >> 2)) & 15) - 8) * *(float*)(block + 16);
        }
    }

    /// <summary>
    /// Copies new keys and values, given as [seq, nKvHeads * headDim] (the Linear output layout), into an
    /// f32 cache at positions startPos .. startPos + seq - 1.
    /// </summary>
    public static void KvCacheWrite(
        ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> kCache, Span<float> vCache,
        int seq, int startPos, int nKvHeads, int headDim, int maxSeq) =>
        KvCacheWrite(k, v, MemoryMarshal.AsBytes(kCache), MemoryMarshal.AsBytes(vCache), ElementType.F32, seq, startPos, nKvHeads, headDim, maxSeq);

    /// <summary>
    /// Writes new keys and values, given as f32 [seq, nKvHeads * headDim] (the Linear output layout), into
    /// a cache of <paramref name="cacheType"/> at positions startPos .. startPos + seq - 1, rounding to
    /// nearest even when the cache is F16 or BF16.
    /// </summary>
    public static void KvCacheWrite(
        ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<byte> kCache, Span<byte> vCache, ElementType cacheType,
        int seq, int startPos, int nKvHeads, int headDim, int maxSeq) =>
        Write(k, v, kCache, vCache, cacheType, seq, startPos, nKvHeads, headDim, maxSeq, prefetch: true);

    /// <summary>The write; <paramref name="prefetch"/> false where the caller already requested the rows' lines.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Write(
        ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<byte> kCache, Span<byte> vCache, ElementType cacheType,
        int seq, int startPos, int nKvHeads, int headDim, int maxSeq, bool prefetch)
    {
        ValidateCache(kCache, vCache, cacheType, nKvHeads, headDim, maxSeq);
        ValidateWindow(seq, startPos, maxSeq);
        long rowsLength = (long)seq * nKvHeads * headDim;
        KernelArgs.RequireLength(k.Length, rowsLength, nameof(k));
        KernelArgs.RequireLength(v.Length, rowsLength, nameof(v));
        int kvDim = nKvHeads * headDim;
        fixed (float* pk = k, pv = v)
        fixed (byte* pkc = kCache, pvc = vCache)
        {
            if (prefetch)
            {
                PrefetchRows(pkc, pvc, cacheType, seq, startPos, nKvHeads, headDim, maxSeq);
            }
            for (int h = 0; h < nKvHeads; h++)
            {
                for (int s = 0; s < seq; s++)
                {
                    nint src = (nint)s * kvDim + (nint)h * headDim;
                    nint dst = (nint)Bytes(cacheType, ((long)h * maxSeq + startPos + s) * headDim);
                    WriteRow(pk + src, pkc + dst, cacheType, headDim);
                    WriteRow(pv + src, pvc + dst, cacheType, headDim);
                }
            }
        }
    }

    /// <summary>
    /// Writes a batched pass's keys and values, f32 [rows, nKvHeads * headDim] with rows in segment order,
    /// into caches of <paramref name="segments"/>' slots: each cache is [slots, nKvHeads, maxSeq, headDim]
    /// (a slot is one sequence's cache laid out as the single-sequence one), and each segment's rows go
    /// to its slot at its positions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void KvCacheWrite(
        ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<byte> kCache, Span<byte> vCache, ElementType cacheType,
        ReadOnlySpan<SequenceSegment> segments, int nKvHeads, int headDim, int maxSeq)
    {
        int slotBytes = checked((int)Bytes(cacheType, (long)nKvHeads * maxSeq * headDim)), kvDim = nKvHeads * headDim, row = 0;
        // Every segment's destination lines are requested before any is written (see PrefetchRows): a
        // decode step's rows lie in as many slots as it has sequences.
        fixed (byte* pkc = kCache, pvc = vCache)
        {
            foreach (SequenceSegment s in segments)
            {
                PrefetchRows(pkc + ((nint)s.Slot * slotBytes), pvc + ((nint)s.Slot * slotBytes), cacheType, s.Length, s.Start, nKvHeads, headDim, maxSeq);
            }
        }
        foreach (SequenceSegment s in segments)
        {
            int rows = s.Length * kvDim;
            Write(k.Slice(row * kvDim, rows), v.Slice(row * kvDim, rows), kCache.Slice(s.Slot * slotBytes, slotBytes), vCache.Slice(s.Slot * slotBytes, slotBytes), cacheType,
                s.Length, s.Start, nKvHeads, headDim, maxSeq, prefetch: false);
            row += s.Length;
        }
    }

    /// <summary>Passes of at most this many rows a sequence have their destination lines requested first.</summary>
    private const int PrefetchMaxRows = 4;

    /// <summary>
    /// Requests the cache lines a short pass (a decode step) is about to write, before any is written. Each
    /// row lands in lines nothing has touched — one row per KV head and per sequence, in as many places —
    /// and written one after another their misses were taken about one at a time: a 110M decode step of
    /// eight sequences spent 0.2–0.34 ms in kv_cache_write (operator clock) for 147 KB of f16, the
    /// same whether the JIT had tiered the writers up or not. Prefetches do not fault, so a row past the
    /// cache (refused later by the write's own checks) costs nothing.
    /// </summary>
    private static void PrefetchRows(byte* kCache, byte* vCache, ElementType cacheType, int seq, int startPos, int nKvHeads, int headDim, int maxSeq)
    {
        if (!Sse.IsSupported || seq > PrefetchMaxRows || startPos < 0)
        {
            return;
        }
        nint rowBytes = (nint)Bytes(cacheType, headDim);
        for (int h = 0; h < nKvHeads; h++)
        {
            for (int r = 0; r < seq; r++)
            {
                nint dst = (nint)Bytes(cacheType, ((long)h * maxSeq + startPos + r) * headDim);
                for (nint at = 0; at < rowBytes; at += 64)
                {
                    Sse.Prefetch0(kCache + dst + at);
                    Sse.Prefetch0(vCache + dst + at);
                }
                Sse.Prefetch0(kCache + dst + rowBytes - 1);
                Sse.Prefetch0(vCache + dst + rowBytes - 1);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteRow(float* src, byte* dst, ElementType cacheType, int count)
    {
        if (cacheType == ElementType.F32)
        {
            Buffer.MemoryCopy(src, dst, (long)count * sizeof(float), (long)count * sizeof(float));
        }
        else if (cacheType == ElementType.Q8_0Rows)
        {
            QuantizeRow(src, dst, count);
        }
        else if (cacheType == ElementType.Q4_0Rows)
        {
            QuantizeRowQ4(src, dst, count);
        }
        else
        {
            HalfRounding.FromSingle(src, cacheType, (ushort*)dst, count);
        }
    }

    /// <summary>
    /// Quantizes <paramref name="count"/> values (whole blocks) as llama.cpp's quantize_row_q8_0_ref does —
    /// d = max|x|/127, q = round(x·(1/d)) half away from zero — keeping d in f32 where ggml rounds it to f16. A
    /// block holding an infinity or NaN gets a NaN or infinite d, so its values read back as non-finite, as
    /// an f16 overflow reads back as infinite, instead of as numbers.
    /// </summary>
    internal static void QuantizeRow(float* src, byte* dst, int count)
    {
        if (Avx512F.IsSupported)
        {
            QuantizeRow512(src, dst, count);
        }
        else
        {
            QuantizeRowScalar(src, dst, count);
        }
    }

    /// <summary><see cref="QuantizeRow"/> a value at a time: the definition, and the path without AVX-512.</summary>
    internal static void QuantizeRowScalar(float* src, byte* dst, int count)
    {
        for (int b = 0; b < count; b += Q8Block, src += Q8Block, dst += Q8BlockBytes)
        {
            float amax = 0f;
            for (int j = 0; j < Q8Block; j++)
            {
                float a = MathF.Abs(src[j]);
                amax = a > amax || float.IsNaN(a) ? a : amax;
            }
            float d = amax / 127f;
            float id = d != 0f ? 1f / d : 0f;
            sbyte* q = (sbyte*)dst;
            for (int j = 0; j < Q8Block; j++)
            {
                q[j] = (sbyte)MathF.Round(src[j] * id, MidpointRounding.AwayFromZero);
            }
            *(float*)(dst + Q8Block) = d;
        }
    }

    /// <summary>
    /// <see cref="QuantizeRow"/> a block in two vectors, the same values: the max, then x·(1/d) split into its
    /// integer part and an exact fraction (y − trunc(y) is exact below 2^23), a unit away from zero added where
    /// |fraction| ≥ ½ — MathF.Round's half away from zero without an addition that could round — converted
    /// saturating as the scalar cast (NaN to 0) and narrowed to int8. The scalar loop took 0.36 of a 110M
    /// decode step of eight sequences (kv_cache_write by the operator clock, Q8_0 cache).
    /// </summary>
    private static void QuantizeRow512(float* src, byte* dst, int count)
    {
        var half = Vector512.Create(0.5f);
        for (int b = 0; b < count; b += Q8Block, src += Q8Block, dst += Q8BlockBytes)
        {
            var x0 = Vector512.Load(src);
            var x1 = Vector512.Load(src + 16);
            // vmaxps drops a NaN; the scalar loop keeps it, so that the block's d is NaN.
            float amax = Vector512.EqualsAll(x0, x0) && Vector512.EqualsAll(x1, x1)
                ? Reductions.MaxAcross(Avx512F.Max(Vector512.Abs(x0), Vector512.Abs(x1)))
                : float.NaN;
            float d = amax / 127f;
            var id = Vector512.Create(d != 0f ? 1f / d : 0f);
            Avx512F.ConvertToVector128SByteWithSaturation(Round(x0 * id)).Store((sbyte*)dst);
            Avx512F.ConvertToVector128SByteWithSaturation(Round(x1 * id)).Store((sbyte*)dst + 16);
            *(float*)(dst + Q8Block) = d;
        }

        Vector512<int> Round(Vector512<float> y)
        {
            var t = Vector512.Truncate(y);
            var away = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(Vector512.Abs(y - t), half), Vector512.CopySign(Vector512<float>.One, y), Vector512<float>.Zero);
            return Vector512.ConvertToInt32(t + away);
        }
    }

    /// <summary>
    /// Quantizes <paramref name="count"/> values (whole blocks) as llama.cpp's quantize_row_q4_0_ref does: max
    /// the first value of largest magnitude, d = max/−8, n = min(15, trunc(x·(1/d) + 8.5)), value j's nibble low
    /// in byte j and value 16 + j's high — keeping d in f32 where ggml rounds it to f16. Where ggml's max skips
    /// a NaN, a block holding one gets a NaN d here, so its values read back as NaN, not as numbers; a block
    /// holding an infinity gets an infinite d and reads back non-finite, as in ggml.
    /// </summary>
    internal static void QuantizeRowQ4(float* src, byte* dst, int count)
    {
        if (Avx512F.IsSupported && Avx512BW.IsSupported)
        {
            QuantizeRowQ4Vector(src, dst, count);
        }
        else
        {
            QuantizeRowQ4Scalar(src, dst, count);
        }
    }

    /// <summary><see cref="QuantizeRowQ4"/> a value at a time: the definition, and the path without AVX-512.</summary>
    internal static void QuantizeRowQ4Scalar(float* src, byte* dst, int count)
    {
        for (int b = 0; b < count; b += Q4Block, src += Q4Block, dst += Q4BlockBytes)
        {
            float amax = 0f, max = 0f;
            bool nan = false;
            for (int j = 0; j < Q4Block; j++)
            {
                float a = MathF.Abs(src[j]);
                nan |= float.IsNaN(a);
                if (amax < a)
                {
                    amax = a;
                    max = src[j];
                }
            }
            float d = nan ? float.NaN : max / -8f;
            float id = d != 0f ? 1f / d : 0f;
            for (int j = 0; j < 16; j++)
            {
                int n0 = Math.Min(15, (int)(sbyte)((src[j] * id) + 8.5f));
                int n1 = Math.Min(15, (int)(sbyte)((src[16 + j] * id) + 8.5f));
                dst[j] = (byte)(n0 | (n1 << 4));
            }
            *(float*)(dst + 16) = d;
        }
    }

    /// <summary>
    /// <see cref="QuantizeRowQ4"/> a block in two vectors, the same bytes: the largest magnitude, its first
    /// lane (ggml's strict &lt; keeps the first of equal magnitudes), then x·(1/d) + 8.5 rounded as the scalar
    /// loop rounds it (a product, then a sum: not fused), truncated, clamped to 15 and packed two nibbles a byte.
    /// </summary>
    private static void QuantizeRowQ4Vector(float* src, byte* dst, int count)
    {
        var bias = Vector512.Create(8.5f);
        var fifteen = Vector512.Create(15);
        for (int b = 0; b < count; b += Q4Block, src += Q4Block, dst += Q4BlockBytes)
        {
            var x0 = Vector512.Load(src);
            var x1 = Vector512.Load(src + 16);
            float d;
            if (Vector512.EqualsAll(x0, x0) && Vector512.EqualsAll(x1, x1))
            {
                Vector512<float> a0 = Vector512.Abs(x0), a1 = Vector512.Abs(x1);
                var amax = Vector512.Create(Reductions.MaxAcross(Avx512F.Max(a0, a1)));
                ulong at = Vector512.Equals(a0, amax).ExtractMostSignificantBits() | (Vector512.Equals(a1, amax).ExtractMostSignificantBits() << 16);
                // An all-zero block: ggml's max stays 0 (and d is −0).
                d = (amax[0] == 0f ? 0f : src[BitOperations.TrailingZeroCount(at)]) / -8f;
            }
            else
            {
                d = float.NaN;
            }
            var id = Vector512.Create(d != 0f ? 1f / d : 0f);
            // x·(1/d) + 8.5 lies in [0.5, 16.5] (a NaN where d is not finite): truncated, as the scalar
            // loop's cast, NaN to 0 as there.
            Vector128<byte> n0 = Avx512F.ConvertToVector128Byte(Vector512.Min(Vector512.ConvertToInt32((x0 * id) + bias), fifteen));
            Vector128<byte> n1 = Avx512F.ConvertToVector128Byte(Vector512.Min(Vector512.ConvertToInt32((x1 * id) + bias), fifteen));
            (n0 | (n1.AsUInt16() << 4).AsByte()).Store(dst);
            *(float*)(dst + 16) = d;
        }
    }

    /// <summary>Checks the cache geometry shared by <see cref="KvCacheWrite(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{byte}, Span{byte}, ElementType, int, int, int, int, int)"/> and attention.</summary>
    internal static void ValidateCache(ReadOnlySpan<byte> kCache, ReadOnlySpan<byte> vCache, ElementType cacheType, int nKvHeads, int headDim, int maxSeq)
    {
        if (!IsCacheType(cacheType))
        {
            throw new ArgumentOutOfRangeException(nameof(cacheType), cacheType, "A KV cache holds F32, F16, BF16, Q8_0Rows or Q4_0Rows elements.");
        }
        KernelArgs.RequireAtLeast(nKvHeads, 1, nameof(nKvHeads));
        KernelArgs.RequireAtLeast(headDim, 1, nameof(headDim));
        KernelArgs.RequireAtLeast(maxSeq, 1, nameof(maxSeq));
        RequireWholeBlocks(cacheType, headDim);
        long cacheBytes = Bytes(cacheType, (long)nKvHeads * maxSeq * headDim);
        KernelArgs.RequireLength(kCache.Length, cacheBytes, nameof(kCache));
        KernelArgs.RequireLength(vCache.Length, cacheBytes, nameof(vCache));
    }

    /// <summary>Throws unless a row of <paramref name="headDim"/> values is whole blocks of <paramref name="cacheType"/> (Q8_0Rows, Q4_0Rows: of 32).</summary>
    internal static void RequireWholeBlocks(ElementType cacheType, int headDim)
    {
        if (IsBlocked(cacheType) && headDim % Q8Block != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"A {cacheType} KV cache holds rows of whole blocks of {Q8Block}; head_dim {headDim} is not. Keep this model's cache in F16.");
        }
    }

    /// <summary>Throws unless positions startPos .. startPos + seq - 1 fit in a cache of maxSeq positions.</summary>
    internal static void ValidateWindow(int seq, int startPos, int maxSeq)
    {
        KernelArgs.RequireAtLeast(seq, 0, nameof(seq));
        KernelArgs.RequireAtLeast(startPos, 0, nameof(startPos));
        if ((long)startPos + seq > maxSeq)
        {
            throw new ArgumentOutOfRangeException(nameof(startPos), startPos,
                $"Positions {startPos}..{(long)startPos + seq - 1} do not fit a cache of {maxSeq} positions ({nameof(startPos)} + {nameof(seq)} must be ≤ {nameof(maxSeq)}).");
        }
    }
}
