using System.Runtime.CompilerServices;

namespace AscendCC.Device.Kernels;

/// <summary>
/// The per-layer key/value cache: K and V each [nKvHeads, maxSeq, headDim] float32, so one head's
/// keys are contiguous and attention streams them without striding over other heads.
/// </summary>
internal static class KvCache
{
    /// <summary>
    /// Copies new keys and values, given as [seq, nKvHeads * headDim] (the Linear output layout), into the
    /// cache at positions startPos .. startPos + seq - 1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void KvCacheWrite(
        ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> kCache, Span<float> vCache,
        int seq, int startPos, int nKvHeads, int headDim, int maxSeq)
    {
        Validate(k, v, kCache, vCache, seq, startPos, nKvHeads, headDim, maxSeq);
        int kvDim = nKvHeads * headDim;
        for (int h = 0; h < nKvHeads; h++)
        {
            for (int s = 0; s < seq; s++)
            {
                int src = s * kvDim + h * headDim;
                int dst = (h * maxSeq + startPos + s) * headDim;
                k.Slice(src, headDim).CopyTo(kCache.Slice(dst, headDim));
                v.Slice(src, headDim).CopyTo(vCache.Slice(dst, headDim));
            }
        }
    }

    /// <summary>Checks the cache geometry shared by <see cref="KvCacheWrite"/> and attention.</summary>
    internal static void ValidateCache(ReadOnlySpan<float> kCache, ReadOnlySpan<float> vCache, int nKvHeads, int headDim, int maxSeq)
    {
        KernelArgs.RequireAtLeast(nKvHeads, 1, nameof(nKvHeads));
        KernelArgs.RequireAtLeast(headDim, 1, nameof(headDim));
        KernelArgs.RequireAtLeast(maxSeq, 1, nameof(maxSeq));
        long cacheLength = (long)nKvHeads * maxSeq * headDim;
        KernelArgs.RequireLength(kCache.Length, cacheLength, nameof(kCache));
        KernelArgs.RequireLength(vCache.Length, cacheLength, nameof(vCache));
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

    private static void Validate(ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> kCache, Span<float> vCache,
        int seq, int startPos, int nKvHeads, int headDim, int maxSeq)
    {
        ValidateCache(kCache, vCache, nKvHeads, headDim, maxSeq);
        ValidateWindow(seq, startPos, maxSeq);
        long rowsLength = (long)seq * nKvHeads * headDim;
        KernelArgs.RequireLength(k.Length, rowsLength, nameof(k));
        KernelArgs.RequireLength(v.Length, rowsLength, nameof(v));
    }
}
