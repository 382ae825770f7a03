using System.Runtime.CompilerServices;
using AscendCC.Device.Kernels;

namespace AscendCC.Device.Operators.Builtin;

/// <summary>
/// Appends new keys and values to a layer's KV cache, whose element type is the kv_dtype scalar
/// (0 F32, 1 F16, 2 BF16; half precision rounded to nearest even).
/// </summary>
internal sealed class KvCacheWriteOperator() : OperatorBase("kv_cache_write",
    "k:f32[seq,kv_heads*head_dim] v:f32[seq,kv_heads*head_dim] -> k_cache:kv_dtype[kv_heads,max_seq,head_dim] v_cache | seq start_pos kv_heads head_dim max_seq kv_dtype",
    ["k", "v", "k_cache", "v_cache"], [2, 3], 6)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int seq = c.Int(0, "seq", 1), startPos = c.Int(1, "start_pos"), kvHeads = c.Int(2, "kv_heads", 1), headDim = c.Int(3, "head_dim", 1), maxSeq = c.Int(4, "max_seq", 1);
        ElementType kvType = KvCacheType.Of(ref c, 5);
        long rows = (long)seq * kvHeads * headDim, cache = (long)kvHeads * maxSeq * headDim * ElementTypes.SizeOf(kvType);
        KvCache.KvCacheWrite(c.Buffer<float>(0, rows), c.Buffer<float>(1, rows), c.Buffer<byte>(2, cache), c.Buffer<byte>(3, cache), kvType,
            seq, startPos, kvHeads, headDim, maxSeq);
    }
}

/// <summary>
/// Causal grouped-query attention over the KV cache (flash-style, O(tile) memory). window &gt; 0 is a
/// sliding window (Mistral): position p sees keys p − window &lt; j ≤ p; 0 sees every earlier key.
/// kv_dtype is the caches' element type, as kv_cache_write's.
/// </summary>
internal sealed class AttentionOperator() : OperatorBase("attention",
    "q:f32[seq,heads*head_dim] k_cache:kv_dtype[kv_heads,max_seq,head_dim] v_cache -> out:f32[seq,heads*head_dim] | seq start_pos heads kv_heads head_dim max_seq scale window kv_dtype",
    ["q", "k_cache", "v_cache", "out"], [3], 9)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int seq = c.Int(0, "seq", 1), startPos = c.Int(1, "start_pos"), heads = c.Int(2, "heads", 1), kvHeads = c.Int(3, "kv_heads", 1);
        int headDim = c.Int(4, "head_dim", 1), maxSeq = c.Int(5, "max_seq", 1);
        float scale = c.Float(6, "scale");
        int window = c.Int(7, "window");
        ElementType kvType = KvCacheType.Of(ref c, 8);
        long rows = (long)seq * heads * headDim, cache = (long)kvHeads * maxSeq * headDim * ElementTypes.SizeOf(kvType);
        Attention.CausalAttention(c.Grid, c.Buffer<float>(0, rows), c.Buffer<byte>(1, cache), c.Buffer<byte>(2, cache), kvType, c.Buffer<float>(3, rows),
            seq, startPos, heads, kvHeads, headDim, maxSeq, scale, window);
    }
}

/// <summary>The kv_dtype scalar of the cache operators.</summary>
internal static class KvCacheType
{
    public static ElementType Of(ref KernelContext c, int i)
    {
        var type = (ElementType)c.Int(i, "kv_dtype", 0, (int)ElementType.Q4_0);
        if (!KvCache.IsCacheType(type))
        {
            throw new KernelArgumentException($"scalar 'kv_dtype' = {(int)type} ({type}): a KV cache holds F32 (0), F16 (1) or BF16 (2) elements, not a block format");
        }
        return type;
    }
}

/// <summary>Greedy decoding: index of the largest logit.</summary>
internal sealed class ArgmaxOperator() : OperatorBase("argmax", "logits:f32[n] -> token:i32[1] | n", ["logits", "token"], [1], 1)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int n = c.Int(0, "n", 1);
        c.Buffer<int>(1, 1)[0] = Sampling.Argmax(c.Buffer<float>(0, n));
    }
}

/// <summary>
/// Temperature / top-k / top-p sampling with the device's seeded generator (state in HBM), after
/// llama.cpp's repetition penalties and min-p. The pass's fed tokens are first written into the token
/// history at their positions, so the penalties see every token of the context up to this pass (prompt
/// and fed-back replies) without the host ever naming them; the last <c>repeat_last_n</c> of them are
/// penalised (−1 = the whole context).
/// </summary>
internal sealed class SampleOperator() : OperatorBase("sample",
    "logits:f32[n] rng:u64[1] scratch:f32[n] tokens:i32[seq] history:i32[max_seq] -> token:i32[1] | n temperature top_k top_p min_p repeat_penalty repeat_last_n frequency_penalty presence_penalty seq start max_seq",
    ["logits", "rng", "scratch", "tokens", "history", "token"], [1, 2, 4, 5], 12)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int n = c.Int(0, "n", 1);
        float temperature = c.Float(1, "temperature");
        int topK = c.Int(2, "top_k");
        float topP = c.Float(3, "top_p");
        float minP = c.Float(4, "min_p");
        // 0 is read as 1 (off), so a step block whose new slots were never written samples as before.
        float repeatPenalty = c.Float(5, "repeat_penalty") is var r && r == 0f ? 1f : r;
        int repeatLastN = c.Int(6, "repeat_last_n", -1);
        float frequencyPenalty = c.Float(7, "frequency_penalty");
        float presencePenalty = c.Float(8, "presence_penalty");
        int maxSeq = c.Int(11, "max_seq", 1);
        int seq = c.Int(9, "seq", 1, maxSeq);
        int start = c.Int(10, "start", 0, maxSeq - seq);

        Span<int> history = c.Buffer<int>(4, maxSeq);
        c.Buffer<int>(3, seq).CopyTo(history.Slice(start, seq));
        int end = start + seq;
        int window = repeatLastN < 0 ? end : Math.Min(repeatLastN, end);

        ref ulong state = ref c.Buffer<ulong>(1, 1)[0];
        Span<float> scratch = c.Buffer<float>(2, n);
        ReadOnlySpan<float> logits = c.Buffer<float>(0, n);
        if (minP > 0f || (window > 0 && SamplingPenalties.IsActive(repeatPenalty, frequencyPenalty, presencePenalty)))
        {
            // Adjusted in the scratch, which the sampler then also uses for its probabilities.
            logits.CopyTo(scratch);
            SamplingPenalties.Apply(scratch, history[(end - window)..end], repeatPenalty, frequencyPenalty, presencePenalty);
            SamplingPenalties.ApplyMinP(scratch, minP);
            logits = scratch;
        }
        c.Buffer<int>(5, 1)[0] = Sampling.Sample(logits, temperature, topK, topP, ref state, scratch);
    }
}
