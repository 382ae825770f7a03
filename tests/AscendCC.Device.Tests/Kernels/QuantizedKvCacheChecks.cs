using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using static AscendCC.Device.Tests.Kernels.KernelTestData;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>The checks every block-quantized KV cache type (Q8_0Rows, Q4_0Rows) must pass, given how to dequantize it.</summary>
internal static class QuantizedKvCacheChecks
{
    /// <summary>
    /// Attention over a cache of <paramref name="type"/> equals the f32 kernel over its dequantized values bit for
    /// bit (and torch's float64 attention within f32 tolerance). Positions no row may read (past the context,
    /// before every row's window) get NaN scales, so reading one shows. <paramref name="scaleOffset"/> is where
    /// a block's f32 scale lies within it.
    /// </summary>
    public static void AttentionIsAttentionOverItsDequantizedValues(ElementType type, int scaleOffset, Func<byte[], float[]> dequantize,
        int seq, int startPos, int nHeads, int nKvHeads, int headDim, int window)
    {
        int ctx = startPos + seq, maxSeq = ctx + 13, kvDim = nKvHeads * headDim;
        float scale = 1f / MathF.Sqrt(headDim);
        float[] q = Normal(seq * nHeads * headDim, seq + 3 * headDim + nHeads);
        var kCache = new byte[KvCache.Bytes(type, (long)nKvHeads * maxSeq * headDim)];
        var vCache = new byte[kCache.Length];
        KvCache.KvCacheWrite(Normal(ctx * kvDim, 7 * seq + startPos, std: 2f), Normal(ctx * kvDim, 5 * seq + startPos + 1), kCache, vCache, type, ctx, 0, nKvHeads, headDim, maxSeq);
        int unseen = window > 0 ? Math.Max(0, startPos - window + 1) : 0;
        for (int h = 0; h < nKvHeads; h++)
        {
            for (int p = 0; p < maxSeq; p++)
            {
                if (p >= unseen && p < ctx)
                {
                    continue;
                }
                for (int b = 0; b < headDim / 32; b++)
                {
                    int at = (int)KvCache.Bytes(type, ((long)h * maxSeq + p) * headDim + (b * 32)) + scaleOffset;
                    BitConverter.TryWriteBytes(kCache.AsSpan(at), float.NaN);
                    BitConverter.TryWriteBytes(vCache.AsSpan(at), float.NaN);
                }
            }
        }
        AttentionTests.AssertIsAttentionOverWidenedValues(q, kCache, vCache, type, dequantize(kCache), dequantize(vCache),
            seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
    }

    /// <summary>A block holding an infinity, and one holding a NaN, read back non-finite, and attention over them is NaN.</summary>
    public static void NonFiniteBlocksReadBackNonFinite(ElementType type, Func<byte[], float[]> dequantize)
    {
        const int headDim = 64;
        float[] row = Normal(headDim, 3);
        row[5] = float.PositiveInfinity;
        row[40] = float.NaN;
        var kCache = new byte[KvCache.Bytes(type, headDim)];
        var vCache = new byte[kCache.Length];
        KvCache.KvCacheWrite(row, row, kCache, vCache, type, 1, 0, 1, headDim, 1);
        float[] back = dequantize(kCache);
        Assert.That(back.Take(32).Where(float.IsFinite), Is.Empty, "the block with the infinity");
        Assert.That(back.Skip(32).Where(float.IsFinite), Is.Empty, "the block with the NaN");

        var output = new float[headDim];
        Attention.CausalAttention(AiCoreGrid.Shared, Normal(headDim, 4), kCache, vCache, type, output, 1, 0, 1, 1, headDim, 1, 0.125f);
        Assert.That(output, Has.All.NaN);
    }

    /// <summary>The write and attention refuse rows that are not whole blocks of 32, naming head_dim (and F16, the way out).</summary>
    public static void RowsThatAreNotWholeBlocksAreRefused(ElementType type)
    {
        var cache = new byte[4096];
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            KvCache.KvCacheWrite(new float[80], new float[80], cache, cache, type, 1, 0, 1, 80, 4));
        Assert.That(ex!.ParamName, Is.EqualTo("headDim"));
        Assert.That(ex.Message, Does.Contain(type.ToString()));
        ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            Attention.CausalAttention(AiCoreGrid.Shared, new float[2 * 8], cache, cache, type, new float[2 * 8], 1, 0, 2, 2, 8, 16, 1f));
        Assert.That(ex!.ParamName, Is.EqualTo("headDim"));
        Assert.That(ex.Message, Does.Contain("F16"));
    }
}
