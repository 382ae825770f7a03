using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>The checks every block-quantized KV cache type (Q8_0Rows, Q4_0Rows) must pass, given how to dequantize it.</summary>
internal static class QuantizedKvCacheChecks
{
    /// <summary>
    /// Writes <paramref name="k"/> and <paramref name="v"/> ([seq, nKvHeads·headDim] rows at positions
    /// start..) into fresh caches of <paramref name="type"/> and checks every written block against
    /// <paramref name="reference"/>: given the rows as a tensor [seq, nKvHeads, headDim / 32, 32], it
    /// returns each block's expected quant bytes (<paramref name="quantBytes"/> a block, as the cache
    /// stores them) and f32 scale, both in the cache's order [nKvHeads, seq, headDim / 32]. Positions the
    /// write does not reach must stay zero. Returns the caches for the caller's own checks.
    /// </summary>
    public static (byte[] K, byte[] V) WriteMatchesTheReference(ElementType type, int quantBytes, float[] k, float[] v, int nKvHeads, int headDim,
        int maxSeq, int seq, int start, Func<Tensor, (byte[] Quants, float[] Scales)> reference)
    {
        var kCache = new byte[KvCache.Bytes(type, (long)nKvHeads * maxSeq * headDim)];
        var vCache = new byte[kCache.Length];
        KvCache.KvCacheWrite(k, v, kCache, vCache, type, seq, start, nKvHeads, headDim, maxSeq);
        using var scope = NewDisposeScope();
        foreach ((float[] rows, byte[] cache, string what) in new[] { (k, kCache, "keys"), (v, vCache, "values") })
        {
            (byte[] expectedQuants, float[] expectedScales) = reference(tensor(rows, [seq, nKvHeads, headDim / 32, 32]));
            int block = 0;
            for (int h = 0; h < nKvHeads; h++)
            {
                for (int p = start; p < start + seq; p++)
                {
                    for (int b = 0; b < headDim / 32; b++, block++)
                    {
                        int at = (int)KvCache.Bytes(type, ((long)h * maxSeq + p) * headDim + (b * 32));
                        Assert.That(cache.AsSpan(at, quantBytes).ToArray(), Is.EqualTo(expectedQuants.AsSpan(block * quantBytes, quantBytes).ToArray()), $"{what}: head {h}, position {p}, block {b}");
                        Assert.That(BitConverter.ToSingle(cache, at + quantBytes), Is.EqualTo(expectedScales[block]), $"{what}: scale of head {h}, position {p}, block {b}");
                    }
                }
            }
        }
        // Positions the write did not touch stay as they were (zero bytes).
        Assert.That(kCache.AsSpan(0, (int)KvCache.Bytes(type, (long)start * headDim)).ToArray(), Has.All.EqualTo((byte)0));
        return (kCache, vCache);
    }

    /// <summary>
    /// The attention shapes each quantized cache is checked at (seq, startPos, nHeads, nKvHeads, headDim, window):
    /// decode with one head a block and with grouped heads, windows, head dims 32 to 128, prefill chunks.
    /// </summary>
    public static IEnumerable<TestCaseData> AttentionShapes(string cache)
    {
        yield return new TestCaseData(1, 0, 4, 4, 64, 0).SetName($"{cache}: first token");
        yield return new TestCaseData(1, 511, 12, 12, 64, 0).SetName($"{cache}: decode at context 512, 12 heads (one head a block, keys widened in registers)");
        yield return new TestCaseData(1, 300, 8, 1, 128, 0).SetName($"{cache}: decode, GQA 8, headDim 128");
        yield return new TestCaseData(1, 511, 32, 4, 64, 0).SetName($"{cache}: decode at 512, 32 heads on 4 KV heads");
        yield return new TestCaseData(1, 300, 32, 4, 64, 100).SetName($"{cache}: decode, window 100");
        yield return new TestCaseData(1, 300, 32, 8, 64, 0).SetName($"{cache}: decode, 32 heads on 8 KV heads (four a block, values widened as read)");
        yield return new TestCaseData(3, 17, 4, 2, 32, 0).SetName($"{cache}: three tokens after 17, headDim 32");
        yield return new TestCaseData(17, 5, 8, 2, 64, 0).SetName($"{cache}: 17 tokens after 5, GQA 4");
        yield return new TestCaseData(67, 100, 8, 4, 128, 0).SetName($"{cache}: 67 tokens after 100, headDim 128");
        yield return new TestCaseData(300, 0, 8, 1, 64, 40).SetName($"{cache}: window 40, prefill 300, GQA 8");
    }

    /// <summary>Every value of <paramref name="positions"/> rows of <paramref name="headDim"/> read through <typeparamref name="TR"/> sixteen, eight and one at a time.</summary>
    public static unsafe (float[] By16, float[] By8, float[] By1) ReadEveryWidth<TR>(byte[] cache, int positions, int headDim) where TR : struct, KvCache.IRowReader
    {
        var by16 = new float[positions * headDim];
        var by8 = new float[by16.Length];
        var by1 = new float[by16.Length];
        fixed (byte* c = cache)
        {
            for (int p = 0; p < positions; p++)
            {
                byte* row = c + TR.Bytes((nint)p * headDim);
                for (int i = 0; i < headDim; i += 16)
                {
                    TR.Load16(row, i).CopyTo(by16.AsSpan((p * headDim) + i));
                }
                for (int i = 0; i < headDim; i += 8)
                {
                    TR.Load8(row, i).CopyTo(by8.AsSpan((p * headDim) + i));
                }
                for (int i = 0; i < headDim; i++)
                {
                    by1[(p * headDim) + i] = TR.Load(row, i);
                }
            }
        }
        return (by16, by8, by1);
    }

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
