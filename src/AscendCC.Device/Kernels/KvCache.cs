using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AscendCC.Device.Kernels;

/// <summary>
/// The per-layer key/value cache: K and V each [nKvHeads, maxSeq, headDim] of one element type (F32,
/// F16 or BF16), so one head's keys are contiguous and attention streams them without striding over
/// other heads. Half-precision caches are written rounded to nearest even and widened back to f32 by
/// attention as it reads them.
/// </summary>
internal static unsafe class KvCache
{
    /// <summary>True for the element types a KV cache may hold.</summary>
    public static bool IsCacheType(ElementType type) => type is ElementType.F32 or ElementType.F16 or ElementType.BF16;

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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void KvCacheWrite(
        ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<byte> kCache, Span<byte> vCache, ElementType cacheType,
        int seq, int startPos, int nKvHeads, int headDim, int maxSeq)
    {
        ValidateCache(kCache, vCache, cacheType, nKvHeads, headDim, maxSeq);
        ValidateWindow(seq, startPos, maxSeq);
        long rowsLength = (long)seq * nKvHeads * headDim;
        KernelArgs.RequireLength(k.Length, rowsLength, nameof(k));
        KernelArgs.RequireLength(v.Length, rowsLength, nameof(v));
        int kvDim = nKvHeads * headDim;
        int size = ElementTypes.SizeOf(cacheType);
        fixed (float* pk = k, pv = v)
        fixed (byte* pkc = kCache, pvc = vCache)
        {
            for (int h = 0; h < nKvHeads; h++)
            {
                for (int s = 0; s < seq; s++)
                {
                    nint src = (nint)s * kvDim + (nint)h * headDim;
                    nint dst = ((nint)h * maxSeq + startPos + s) * headDim * size;
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
        int slotBytes = checked(nKvHeads * maxSeq * headDim * ElementTypes.SizeOf(cacheType)), kvDim = nKvHeads * headDim, row = 0;
        foreach (SequenceSegment s in segments)
        {
            int rows = s.Length * kvDim;
            KvCacheWrite(k.Slice(row * kvDim, rows), v.Slice(row * kvDim, rows), kCache.Slice(s.Slot * slotBytes, slotBytes), vCache.Slice(s.Slot * slotBytes, slotBytes), cacheType,
                s.Length, s.Start, nKvHeads, headDim, maxSeq);
            row += s.Length;
        }
    }

    private static void WriteRow(float* src, byte* dst, ElementType cacheType, int count)
    {
        if (cacheType == ElementType.F32)
        {
            Buffer.MemoryCopy(src, dst, (long)count * sizeof(float), (long)count * sizeof(float));
        }
        else
        {
            HalfRounding.FromSingle(src, cacheType, (ushort*)dst, count);
        }
    }

    /// <summary>Checks the cache geometry shared by <see cref="KvCacheWrite(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{byte}, Span{byte}, ElementType, int, int, int, int, int)"/> and attention.</summary>
    internal static void ValidateCache(ReadOnlySpan<byte> kCache, ReadOnlySpan<byte> vCache, ElementType cacheType, int nKvHeads, int headDim, int maxSeq)
    {
        if (!IsCacheType(cacheType))
        {
            throw new ArgumentOutOfRangeException(nameof(cacheType), cacheType, "A KV cache holds F32, F16 or BF16 elements.");
        }
        KernelArgs.RequireAtLeast(nKvHeads, 1, nameof(nKvHeads));
        KernelArgs.RequireAtLeast(headDim, 1, nameof(headDim));
        KernelArgs.RequireAtLeast(maxSeq, 1, nameof(maxSeq));
        long cacheBytes = (long)nKvHeads * maxSeq * headDim * ElementTypes.SizeOf(cacheType);
        KernelArgs.RequireLength(kCache.Length, cacheBytes, nameof(kCache));
        KernelArgs.RequireLength(vCache.Length, cacheBytes, nameof(vCache));
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
