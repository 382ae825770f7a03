using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using TorchSharp;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// Causal GQA attention over the cache against torch.nn.functional.scaled_dot_product_attention with an
/// explicit causal mask, computed in float64 so the reference error is negligible. The kernel accumulates
/// in float32 (dot products over headDim, weighted sums over up to 2048 keys, online rescaling), which with
/// N(0,1) inputs stays within atol 2e-5 / rtol 1e-4 of exact. Cache positions past startPos + seq hold NaN:
/// reading any of them would poison the output. With a sliding window W the reference mask is
/// p − W &lt; j ≤ p (transformers' sliding_window_overlay), and the cache positions before the first
/// query's window hold NaN too: tiles there must be skipped, not merely masked (0 · NaN is NaN).
/// </summary>
[Category(KernelTestData.Category)]
public class AttentionTests
{
    // seq, startPos, nHeads, nKvHeads, headDim
    [TestCase(1, 0, 4, 4, 64, TestName = "First token")]
    [TestCase(1, 511, 8, 8, 64, TestName = "Decode at context 512")]
    [TestCase(1, 300, 8, 1, 128, TestName = "Decode, GQA 8, headDim 128")]
    [TestCase(1, 511, 32, 4, 64, TestName = "Decode at 512, 32 heads on 4 KV heads (heads of a group share a block)")]
    [TestCase(1, 100, 64, 1, 32, TestName = "Decode, 64 heads on 1 KV head")]
    [TestCase(1, 300, 32, 8, 64, TestName = "Decode after 300, 32 heads on 8 KV heads (four heads a block)")]
    [TestCase(1, 200, 16, 2, 128, TestName = "Decode after 200, 16 heads on 2 KV heads, headDim 128 (four heads a block)")]
    [TestCase(1, 300, 16, 8, 128, TestName = "Decode after 300, 16 heads on 8 KV heads, headDim 128 (a group of two, 32-key tiles)")]
    [TestCase(1, 300, 4, 4, 128, TestName = "Decode after 300, headDim 128 (one head a block, f32 tiles of 32 keys)")]
    [TestCase(3, 17, 4, 2, 8, TestName = "Three tokens after 17, GQA 2, headDim 8")]
    [TestCase(17, 5, 8, 2, 64, TestName = "17 tokens after 5, GQA 4")]
    [TestCase(40, 0, 2, 1, 8, TestName = "Prefill 40, headDim 8")]
    [TestCase(33, 60, 6, 3, 80, TestName = "33 tokens after 60, headDim 80")]
    [TestCase(67, 0, 4, 1, 64, TestName = "Prefill 67, GQA 4")]
    [TestCase(67, 100, 8, 4, 128, TestName = "67 tokens after 100, GQA 2, headDim 128")]
    [TestCase(300, 0, 8, 1, 64, TestName = "Prefill 300, GQA 8")]
    [TestCase(300, 0, 4, 4, 128, TestName = "Prefill 300, headDim 128")]
    [TestCase(2048, 0, 12, 12, 64, TestName = "Prefill 2048, 12 heads x 64")]
    [TestCase(2048, 0, 4, 1, 64, TestName = "Prefill 2048, GQA 4")]
    public void MatchesTorchScaledDotProductAttention(int seq, int startPos, int nHeads, int nKvHeads, int headDim)
    {
        float scale = 1f / MathF.Sqrt(headDim);
        Check(seq, startPos, nHeads, nKvHeads, headDim, scale, aliasOutput: false);
    }

    // seq, startPos, nHeads, nKvHeads, headDim, window
    [TestCase(100, 0, 4, 2, 64, 16, TestName = "Window 16, prefill 100, GQA 2")]
    [TestCase(300, 0, 8, 1, 64, 40, TestName = "Window 40, prefill 300, GQA 8")]
    [TestCase(200, 0, 4, 4, 32, 64, TestName = "Window 64 = KeyTile, prefill 200")]
    [TestCase(70, 0, 2, 1, 8, 1, TestName = "Window 1 (self only), prefill 70")]
    [TestCase(40, 0, 2, 2, 8, 5, TestName = "Window 5 inside one query tile, prefill 40")]
    [TestCase(67, 0, 4, 1, 64, 100, TestName = "Window longer than the context, prefill 67")]
    [TestCase(33, 60, 6, 3, 80, 7, TestName = "Window 7, 33 tokens after 60, headDim 80")]
    [TestCase(150, 200, 8, 2, 128, 90, TestName = "Window 90, chunked prefill 150 after 200, GQA 4")]
    [TestCase(3, 17, 4, 2, 8, 4, TestName = "Window 4, three tokens after 17")]
    [TestCase(1, 511, 8, 8, 64, 128, TestName = "Window 128, decode at 512")]
    [TestCase(1, 300, 8, 1, 128, 5, TestName = "Window 5, decode, GQA 8, headDim 128")]
    [TestCase(1, 300, 32, 4, 64, 70, TestName = "Window 70, decode, 32 heads on 4 KV heads")]
    [TestCase(1, 300, 16, 8, 128, 45, TestName = "Window 45, decode, 16 heads on 8 KV heads, headDim 128")]
    [TestCase(1, 4, 4, 2, 16, 5, TestName = "Window 5, decode at the window's edge")]
    public void SlidingWindowMatchesTorchWithAnExplicitMask(int seq, int startPos, int nHeads, int nKvHeads, int headDim, int window)
    {
        Check(seq, startPos, nHeads, nKvHeads, headDim, 1f / MathF.Sqrt(headDim), aliasOutput: false, window);
    }

    /// <summary>
    /// In decode the query heads that share a KV head run in one block over one widening of each key
    /// and value tile, in lanes of 8 heads × 2 keys, 4 × 4 or 2 × 8 by how many share the block; per
    /// head the arithmetic is the same whatever the layout, so each KV head's group, run as its own
    /// single-KV-head attention (where a block holds fewer heads: two here, on two cores), gives the same
    /// bits. Half caches too, where the shared widening happens.
    /// </summary>
    [TestCase((int)ElementType.F32, 32, 4, TestName = "{m}(F32, 8 heads a block)")]
    [TestCase((int)ElementType.F16, 32, 4, TestName = "{m}(F16, 8 heads a block)")]
    [TestCase((int)ElementType.BF16, 32, 4, TestName = "{m}(BF16, 8 heads a block)")]
    [TestCase((int)ElementType.F32, 32, 8, TestName = "{m}(F32, 4 heads a block)")]
    [TestCase((int)ElementType.F16, 32, 8, TestName = "{m}(F16, 4 heads a block)")]
    public void GroupedDecodeGivesEachHeadTheBitsItGetsAlone(int typeCode, int nHeads, int nKvHeads)
    {
        var type = (ElementType)typeCode;
        const int headDim = 64, startPos = 300, maxSeq = 320;
        int group = nHeads / nKvHeads;
        int size = ElementTypes.SizeOf(type);
        float[] q = Normal(nHeads * headDim, 41);
        float[] keys = Normal(nKvHeads * maxSeq * headDim, 42), values = Normal(nKvHeads * maxSeq * headDim, 43);
        byte[] kCache = new byte[keys.Length * size], vCache = new byte[values.Length * size];
        KvCache.KvCacheWrite(keys, values, kCache, vCache, type, maxSeq, 0, nKvHeads, headDim, maxSeq);
        float[] grouped = new float[q.Length];
        Attention.CausalAttention(AiCoreGrid.Shared, q, kCache, vCache, type, grouped, 1, startPos, nHeads, nKvHeads, headDim, maxSeq, 0.125f);
        int kvBytes = maxSeq * headDim * size;
        for (int g = 0; g < nKvHeads; g++)
        {
            float[] alone = new float[group * headDim];
            Attention.CausalAttention(AiCoreGrid.Shared, q.AsSpan(g * group * headDim, group * headDim), kCache.AsSpan(g * kvBytes, kvBytes), vCache.AsSpan(g * kvBytes, kvBytes),
                type, alone, 1, startPos, group, 1, headDim, maxSeq, 0.125f);
            for (int i = 0; i < alone.Length; i++)
            {
                Assert.That(BitConverter.SingleToInt32Bits(grouped[(g * group * headDim) + i]), Is.EqualTo(BitConverter.SingleToInt32Bits(alone[i])), $"KV head {g}, element {i}");
            }
        }
    }

    [Test]
    public void NegativeWindowThrows()
    {
        var cache = new float[2 * 16 * 8];
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            Attention.CausalAttention(AiCoreGrid.Shared, new float[4 * 8], cache, cache, new float[4 * 8], 1, 0, 4, 2, 8, 16, 1f, window: -1));
        Assert.That(ex!.ParamName, Is.EqualTo("window"));
    }

    [Test]
    public void NonDefaultScaleAndOutputAliasingQ()
    {
        Check(45, 20, 4, 2, 64, 0.05f, aliasOutput: true);
        Check(1, 20, 4, 2, 64, 0.3f, aliasOutput: true);
    }

    [Test]
    public void CacheTooShortForTheWindowThrows()
    {
        var cache = new float[2 * 16 * 8];
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            Attention.CausalAttention(AiCoreGrid.Shared, new float[2 * 4 * 8], cache, cache, new float[2 * 4 * 8], 2, 15, 4, 2, 8, 16, 1f));
        Assert.That(ex!.ParamName, Is.EqualTo("startPos"));
    }

    [Test]
    public void HeadsNotAMultipleOfKvHeadsThrows()
    {
        var cache = new float[2 * 16 * 8];
        var ex = Assert.Throws<ArgumentException>(() =>
            Attention.CausalAttention(AiCoreGrid.Shared, new float[3 * 8], cache, cache, new float[3 * 8], 1, 0, 3, 2, 8, 16, 1f));
        Assert.That(ex!.ParamName, Is.EqualTo("nHeads"));
    }

    private static void Check(int seq, int startPos, int nHeads, int nKvHeads, int headDim, float scale, bool aliasOutput, int window = 0)
    {
        int ctx = startPos + seq;
        int maxSeq = ctx + 13;
        // No query of the launch sees a key at or before startPos − window.
        int unseen = window > 0 ? Math.Max(0, startPos - window + 1) : 0;
        float[] q = Normal(seq * nHeads * headDim, seq + 3 * headDim + nHeads);
        float[] kCache = CacheWithNaNOutside(nKvHeads, maxSeq, headDim, unseen, ctx, 7 * seq + startPos);
        float[] vCache = CacheWithNaNOutside(nKvHeads, maxSeq, headDim, unseen, ctx, 5 * seq + startPos + 1);
        float[] expected = TorchAttention(q, kCache, vCache, seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);

        float[] output = aliasOutput ? q : new float[q.Length];
        Attention.CausalAttention(AiCoreGrid.Shared, q, kCache, vCache, output, seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
        AssertClose(output, expected, 2e-5, 1e-4, $"attention seq={seq} startPos={startPos} heads={nHeads}/{nKvHeads} headDim={headDim} window={window}");
    }

    private static float[] CacheWithNaNOutside(int nKvHeads, int maxSeq, int headDim, int first, int filled, int seed)
    {
        float[] values = Normal(nKvHeads * maxSeq * headDim, seed);
        for (int h = 0; h < nKvHeads; h++)
        {
            values.AsSpan(h * maxSeq * headDim, first * headDim).Fill(float.NaN);
            values.AsSpan((h * maxSeq + filled) * headDim, (maxSeq - filled) * headDim).Fill(float.NaN);
        }
        return values;
    }

    /// <summary>
    /// Attention over a cache of <paramref name="type"/> is attention over its values widened to f32
    /// (<paramref name="kWide"/>, <paramref name="vWide"/>): bit for bit the f32 kernel's output over them, and
    /// within the f32 tolerance of torch's float64 attention over them.
    /// </summary>
    internal static void AssertIsAttentionOverWidenedValues(float[] q, byte[] kCache, byte[] vCache, ElementType type, float[] kWide, float[] vWide,
        int seq, int startPos, int nHeads, int nKvHeads, int headDim, int maxSeq, float scale, int window)
    {
        string what = $"{type} attention seq={seq} startPos={startPos} heads={nHeads}/{nKvHeads} headDim={headDim} window={window}";
        var output = new float[q.Length];
        Attention.CausalAttention(AiCoreGrid.Shared, q, kCache, vCache, type, output, seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
        var f32Output = new float[q.Length];
        Attention.CausalAttention(AiCoreGrid.Shared, q, kWide, vWide, f32Output, seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
        Assert.That(output, Is.EqualTo(f32Output), what + ": vs the f32 kernel over the widened cache");
        float[] expected = TorchAttention(q, kWide, vWide, seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
        AssertClose(output, expected, 2e-5, 1e-4, what);
    }

    internal static float[] TorchAttention(float[] q, float[] kCache, float[] vCache, int seq, int startPos, int nHeads, int nKvHeads, int headDim, int maxSeq, float scale, int window)
    {
        using var scope = NewDisposeScope();
        int ctx = startPos + seq;
        int group = nHeads / nKvHeads;
        // sdpa scales by 1/sqrt(headDim); fold the requested scale into q instead.
        var tq = tensor(q, [seq, nHeads, headDim]).permute(1, 0, 2).to_type(ScalarType.Float64) * (scale * Math.Sqrt(headDim));
        var tk = tensor(kCache, [nKvHeads, maxSeq, headDim]).narrow(1, 0, ctx).repeat_interleave(group, 0).to_type(ScalarType.Float64);
        var tv = tensor(vCache, [nKvHeads, maxSeq, headDim]).narrow(1, 0, ctx).repeat_interleave(group, 0).to_type(ScalarType.Float64);
        var queryPos = arange(seq, ScalarType.Int64).unsqueeze(1) + startPos;
        var keyPos = arange(ctx, ScalarType.Int64).unsqueeze(0);
        var allowed = keyPos.le(queryPos);
        if (window > 0)
        {
            // Explicit sliding-window mask, transformers' convention: kv_idx > q_idx - sliding_window.
            allowed = allowed.logical_and(keyPos.gt(queryPos - window));
        }
        // NaN keys and values the mask excludes still poison sdpa's matmuls; zero them in the reference only.
        tk = tk.nan_to_num(0);
        tv = tv.nan_to_num(0);
        // Blocks of query rows, each against only the keys up to its last position: causality makes the
        // rest masked anyway, so a 2K prefill's float64 reference does half the work and never holds all
        // heads' 2048×2048 score matrices (400 MB) at once.
        const int QueryBlock = 256;
        var blocks = new List<Tensor>();
        for (int r0 = 0; r0 < seq; r0 += QueryBlock)
        {
            int rows = Math.Min(QueryBlock, seq - r0);
            int keys = startPos + r0 + rows;
            blocks.Add(nn.functional.scaled_dot_product_attention(tq.narrow(1, r0, rows), tk.narrow(1, 0, keys), tv.narrow(1, 0, keys),
                allowed.narrow(0, r0, rows).narrow(1, 0, keys)));
        }
        return ToFloats(cat(blocks, 1).permute(1, 0, 2));
    }
}
