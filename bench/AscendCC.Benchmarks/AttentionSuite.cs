using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.Benchmarks;

/// <summary>
/// Causal attention: a 2K-token prefill (every query against its prefix) and one decode step at
/// context 512 (and 2048 over an f16 cache), against TorchSharp's fused scaled_dot_product_attention on the same tensors.
/// </summary>
internal sealed class AttentionSuite : IBenchmarkSuite
{
    public string Name => "attention";

    public string Description => "causal GQA attention over the KV cache vs TorchSharp scaled_dot_product_attention";

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        AiCoreGrid grid = AiCoreGrid.Shared;
        torch.set_num_threads(grid.CoreCount);
        double budgetMs = options.Quick ? 300 : 2000;
        RunCase(grid, "prefill 2048, 12 heads × 64", seq: 2048, startPos: 0, heads: 12, kvHeads: 12, headDim: 64, options, budgetMs, table);
        RunCase(grid, "prefill 2048, 32 heads / 4 kv × 64", seq: 2048, startPos: 0, heads: 32, kvHeads: 4, headDim: 64, options, budgetMs, table);
        RunCase(grid, "decode at 512, 12 heads × 64", seq: 1, startPos: 511, heads: 12, kvHeads: 12, headDim: 64, options, budgetMs, table);
        RunCase(grid, "decode at 512, 32 heads / 4 kv × 64", seq: 1, startPos: 511, heads: 32, kvHeads: 4, headDim: 64, options, budgetMs, table);
        // The models' default cache is f16: keys and values are widened as attention reads them.
        RunCase(grid, "decode at 512, 12 heads × 64, f16 cache", seq: 1, startPos: 511, heads: 12, kvHeads: 12, headDim: 64, options, budgetMs, table, ElementType.F16);
        RunCase(grid, "decode at 2048, 12 heads × 64, f16 cache", seq: 1, startPos: 2047, heads: 12, kvHeads: 12, headDim: 64, options, budgetMs, table, ElementType.F16);
        RunCase(grid, "decode at 512, 32 heads / 4 kv × 64, f16 cache", seq: 1, startPos: 511, heads: 32, kvHeads: 4, headDim: 64, options, budgetMs, table, ElementType.F16);
        RunCase(grid, "decode at 2048, 32 heads / 4 kv × 64, f16 cache", seq: 1, startPos: 2047, heads: 32, kvHeads: 4, headDim: 64, options, budgetMs, table, ElementType.F16);
        // Qwen3-0.6B's attention: head_dim 128, two query heads on each KV head.
        RunCase(grid, "decode at 512, 16 heads / 8 kv × 128, f16 cache", seq: 1, startPos: 511, heads: 16, kvHeads: 8, headDim: 128, options, budgetMs, table, ElementType.F16);
        RunCase(grid, "decode at 2048, 16 heads / 8 kv × 128, f16 cache", seq: 1, startPos: 2047, heads: 16, kvHeads: 8, headDim: 128, options, budgetMs, table, ElementType.F16);
        // The quantized caches (llama.cpp's q8_0 and q4_0 rules): widened in registers from int8 or nibbles.
        RunCase(grid, "decode at 2048, 12 heads × 64, q8_0 cache", seq: 1, startPos: 2047, heads: 12, kvHeads: 12, headDim: 64, options, budgetMs, table, ElementType.Q8_0Rows);
        RunCase(grid, "decode at 2048, 12 heads × 64, q4_0 cache", seq: 1, startPos: 2047, heads: 12, kvHeads: 12, headDim: 64, options, budgetMs, table, ElementType.Q4_0Rows);
        RunCase(grid, "decode at 2048, 32 heads / 4 kv × 64, q8_0 cache", seq: 1, startPos: 2047, heads: 32, kvHeads: 4, headDim: 64, options, budgetMs, table, ElementType.Q8_0Rows);
        RunCase(grid, "decode at 2048, 32 heads / 4 kv × 64, q4_0 cache", seq: 1, startPos: 2047, heads: 32, kvHeads: 4, headDim: 64, options, budgetMs, table, ElementType.Q4_0Rows);
    }

    private static void RunCase(AiCoreGrid grid, string name, int seq, int startPos, int heads, int kvHeads, int headDim, BenchmarkOptions options, double budgetMs, ResultTable table,
        ElementType cacheType = ElementType.F32)
    {
        if (!options.Includes(name))
        {
            return;
        }
        int context = startPos + seq, maxSeq = context;
        var rng = new Random(11);
        float[] q = Enumerable.Range(0, seq * heads * headDim).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        float[] kCache = Enumerable.Range(0, kvHeads * maxSeq * headDim).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        float[] vCache = Enumerable.Range(0, kvHeads * maxSeq * headDim).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        float[] output = new float[q.Length];
        // An f16 cache holds the values rounded to f16; TorchSharp gets the same rounded values in f32. A
        // quantized cache is written by the device's own kv_cache_write (TorchSharp keeps the f32 values:
        // this suite times, the kernel tests compare).
        byte[] kHalf = cacheType == ElementType.F16 ? ToHalfBytes(kCache) : cacheType == ElementType.F32 ? [] : Quantize(kCache, cacheType, kvHeads, maxSeq, headDim);
        byte[] vHalf = cacheType == ElementType.F16 ? ToHalfBytes(vCache) : cacheType == ElementType.F32 ? [] : Quantize(vCache, cacheType, kvHeads, maxSeq, headDim);
        float scale = 1f / MathF.Sqrt(headDim);

        // Torch layout: [1, heads, seq, d] queries against [1, heads, context, d] keys (GQA expanded,
        // as a plain TorchSharp Llama does with repeat_interleave before the fused kernel).
        using Tensor tq = tensor(q, 1, seq, heads, headDim).transpose(1, 2).contiguous();
        using Tensor tk0 = tensor(kCache, 1, kvHeads, maxSeq, headDim);
        using Tensor tv0 = tensor(vCache, 1, kvHeads, maxSeq, headDim);
        using Tensor tk = tk0.repeat_interleave(heads / kvHeads, dim: 1).contiguous();
        using Tensor tv = tv0.repeat_interleave(heads / kvHeads, dim: 1).contiguous();
        // Prefill from position 0 is plain causal; a decode query sees the whole prefix.
        bool causal = seq > 1;

        void Ours()
        {
            if (cacheType != ElementType.F32)
            {
                Attention.CausalAttention(grid, q, kHalf, vHalf, cacheType, output, seq, startPos, heads, kvHeads, headDim, maxSeq, scale);
            }
            else
            {
                Attention.CausalAttention(grid, q, kCache, vCache, output, seq, startPos, heads, kvHeads, headDim, maxSeq, scale);
            }
        }
        void Torch()
        {
            using Tensor r = nn.functional.scaled_dot_product_attention(tq, tk, tv, is_casual: causal);
        }

        // Causal prefill does about half the full QKᵀ and PV work.
        double flops = 4.0 * heads * headDim * (causal ? seq * (double)context / 2 : context);
        int reps = Measure.RepetitionsFor(Math.Max(0.05, flops / 50e9 * 1e3), budgetMs);
        (Timing ours, Timing theirs) = Measure.Compare(Ours, Torch, warmup: 2, reps);
        table.Add(new ResultRow(name, ours, theirs, flops, "GFLOPS"));
    }

    // The cache [kvHeads, maxSeq, headDim] of these values in a quantized type (each value stays where it was).
    private static byte[] Quantize(float[] values, ElementType type, int kvHeads, int maxSeq, int headDim)
    {
        var cache = new byte[KvCache.Bytes(type, values.Length)];
        var scratch = new byte[cache.Length];
        // kv_cache_write takes rows as [positions, kvHeads·headDim]: one head at a time, as rows of one KV head.
        int headBytes = (int)KvCache.Bytes(type, (long)maxSeq * headDim);
        for (int h = 0; h < kvHeads; h++)
        {
            ReadOnlySpan<float> head = values.AsSpan(h * maxSeq * headDim, maxSeq * headDim);
            KvCache.KvCacheWrite(head, head, cache.AsSpan(h * headBytes, headBytes), scratch.AsSpan(0, headBytes), type, maxSeq, 0, 1, headDim, maxSeq);
        }
        return cache;
    }

    // Rounds the values in place to f16 and returns their f16 bytes.
    private static byte[] ToHalfBytes(float[] values)
    {
        byte[] bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            Half h = (Half)values[i];
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), h);
            values[i] = (float)h;
        }
        return bytes;
    }
}
