using System.Runtime.CompilerServices;
using AscendCC.Device.Kernels;

namespace AscendCC.Device.Operators.Builtin;

/// <summary>
/// Appends new keys and values to a layer's KV cache, whose element type is the kv_dtype scalar
/// (0 F32, 1 F16, 2 BF16, 9 Q8_0Rows, 10 Q4_0Rows; half precision rounded to nearest even, Q8_0Rows and Q4_0Rows quantized per block of 32).
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
        long rows = (long)seq * kvHeads * headDim, cache = KvCache.Bytes(kvType, (long)kvHeads * maxSeq * headDim);
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
        long rows = (long)seq * heads * headDim, cache = KvCache.Bytes(kvType, (long)kvHeads * maxSeq * headDim);
        Attention.CausalAttention(c.Grid, c.Buffer<float>(0, rows), c.Buffer<byte>(1, cache), c.Buffer<byte>(2, cache), kvType, c.Buffer<float>(3, rows),
            seq, startPos, heads, kvHeads, headDim, maxSeq, scale, window);
    }
}

/// <summary>
/// Batched kv_cache_write: the pass's rows, in segment order, go to their segments' slots of caches
/// [slots, kv_heads, max_seq, head_dim] (see <see cref="SequenceSegment"/>).
/// </summary>
internal sealed class KvCacheWriteSegmentsOperator() : OperatorBase("kv_cache_write_segments",
    "k:f32[seq,kv_heads*head_dim] v:f32[seq,kv_heads*head_dim] segments:i32[segments,3] -> k_cache:kv_dtype[slots,kv_heads,max_seq,head_dim] v_cache | seq segments slots kv_heads head_dim max_seq kv_dtype",
    ["k", "v", "segments", "k_cache", "v_cache"], [3, 4], 7)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int seq = c.Int(0, "seq", 1), count = c.Int(1, "segments", 1), slots = c.Int(2, "slots", 1), kvHeads = c.Int(3, "kv_heads", 1), headDim = c.Int(4, "head_dim", 1), maxSeq = c.Int(5, "max_seq", 1);
        ElementType kvType = KvCacheType.Of(ref c, 6);
        ReadOnlySpan<SequenceSegment> segments = SequenceSegments.Read(c.Buffer<int>(2, (long)count * SequenceSegment.Ints), count, seq, slots, maxSeq);
        long rows = (long)seq * kvHeads * headDim, cache = KvCache.Bytes(kvType, (long)slots * kvHeads * maxSeq * headDim);
        KvCache.KvCacheWrite(c.Buffer<float>(0, rows), c.Buffer<float>(1, rows), c.Buffer<byte>(3, cache), c.Buffer<byte>(4, cache), kvType, segments, kvHeads, headDim, maxSeq);
    }
}

/// <summary>Batched attention: each segment's rows attend over their own slot of the caches only.</summary>
internal sealed class AttentionSegmentsOperator() : OperatorBase("attention_segments",
    "q:f32[seq,heads*head_dim] k_cache:kv_dtype[slots,kv_heads,max_seq,head_dim] v_cache segments:i32[segments,3] -> out:f32[seq,heads*head_dim] | seq segments slots heads kv_heads head_dim max_seq scale window kv_dtype",
    ["q", "k_cache", "v_cache", "segments", "out"], [4], 10)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int seq = c.Int(0, "seq", 1), count = c.Int(1, "segments", 1), slots = c.Int(2, "slots", 1), heads = c.Int(3, "heads", 1), kvHeads = c.Int(4, "kv_heads", 1);
        int headDim = c.Int(5, "head_dim", 1), maxSeq = c.Int(6, "max_seq", 1);
        float scale = c.Float(7, "scale");
        int window = c.Int(8, "window");
        ElementType kvType = KvCacheType.Of(ref c, 9);
        ReadOnlySpan<SequenceSegment> segments = SequenceSegments.Read(c.Buffer<int>(3, (long)count * SequenceSegment.Ints), count, seq, slots, maxSeq);
        long rows = (long)seq * heads * headDim, cache = KvCache.Bytes(kvType, (long)slots * kvHeads * maxSeq * headDim);
        Attention.CausalAttention(c.Grid, c.Buffer<float>(0, rows), c.Buffer<byte>(1, cache), c.Buffer<byte>(2, cache), kvType, c.Buffer<float>(4, rows),
            segments, heads, kvHeads, headDim, maxSeq, scale, window);
    }
}

/// <summary>The kv_dtype scalar of the cache operators.</summary>
internal static class KvCacheType
{
    public static ElementType Of(ref KernelContext c, int i)
    {
        var type = (ElementType)c.Int(i, "kv_dtype", 0, (int)ElementType.Q4_0Rows);
        if (!KvCache.IsCacheType(type))
        {
            throw new KernelArgumentException($"scalar 'kv_dtype' = {(int)type} ({type}): a KV cache holds F32 (0), F16 (1), BF16 (2), Q8_0Rows (9) or Q4_0Rows (10) elements, not a weight matrix format");
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
        var settings = new SamplingSettings(c.Float(1, "temperature"), c.Int(2, "top_k"), c.Float(3, "top_p"), c.Float(4, "min_p"),
            c.Float(5, "repeat_penalty"), c.Int(6, "repeat_last_n", -1), c.Float(7, "frequency_penalty"), c.Float(8, "presence_penalty"));
        int maxSeq = c.Int(11, "max_seq", 1);
        int seq = c.Int(9, "seq", 1, maxSeq);
        int start = c.Int(10, "start", 0, maxSeq - seq);
        c.Buffer<int>(5, 1)[0] = settings.Sample(c.Buffer<float>(0, n), ref c.Buffer<ulong>(1, 1)[0], c.Buffer<float>(2, n), c.Buffer<int>(4, maxSeq), c.Buffer<int>(3, seq), start);
    }
}

/// <summary>
/// One sequence's sampling settings, as the sampling operators read them: temperature / top-k / top-p
/// sampling after llama.cpp's repetition penalties and min-p.
/// </summary>
internal readonly record struct SamplingSettings(float Temperature, int TopK, float TopP, float MinP, float RepeatPenalty, int RepeatLastN, float FrequencyPenalty, float PresencePenalty)
{
    /// <summary>
    /// Writes the pass's fed tokens into the sequence's history at positions start.., then samples the
    /// next token from <paramref name="logits"/> with the generator state <paramref name="state"/>.
    /// </summary>
    public int Sample(ReadOnlySpan<float> logits, ref ulong state, Span<float> scratch, Span<int> history, ReadOnlySpan<int> fed, int start)
    {
        // 0 is read as 1 (off), so a step block whose new slots were never written samples as before.
        float repeatPenalty = RepeatPenalty == 0f ? 1f : RepeatPenalty;
        fed.CopyTo(history.Slice(start, fed.Length));
        int end = start + fed.Length;
        int window = RepeatLastN < 0 ? end : Math.Min(RepeatLastN, end);
        if (MinP > 0f || (window > 0 && SamplingPenalties.IsActive(repeatPenalty, FrequencyPenalty, PresencePenalty)))
        {
            // Adjusted in the scratch, which the sampler then also uses for its probabilities.
            logits.CopyTo(scratch);
            SamplingPenalties.Apply(scratch, history[(end - window)..end], repeatPenalty, FrequencyPenalty, PresencePenalty);
            SamplingPenalties.ApplyMinP(scratch, MinP);
            logits = scratch;
        }
        return Sampling.Sample(logits, Temperature, TopK, TopP, ref state, scratch);
    }
}

/// <summary>
/// Batched sampling: for each segment of the pass, samples the next token of its sequence from its
/// row of logits, with its slot's settings (<see cref="SamplingRow"/>), generator state and token
/// history, after writing the segment's fed tokens into that history (as <c>sample</c> does for one
/// sequence), into its slot of <c>next</c>.
/// </summary>
internal sealed class SampleSegmentsOperator() : OperatorBase("sample_segments",
    "logits:f32[segments,n] rng:u64[slots] scratch:f32[n] tokens:i32[seq] history:i32[slots,max_seq] settings:i64[slots,sampling] segments:i32[segments,3] -> next:i32[slots] | n seq segments slots max_seq",
    ["logits", "rng", "scratch", "tokens", "history", "settings", "segments", "next"], [1, 2, 4, 7], 5)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int n = c.Int(0, "n", 1), seq = c.Int(1, "seq", 1), count = c.Int(2, "segments", 1), slots = c.Int(3, "slots", 1), maxSeq = c.Int(4, "max_seq", 1);
        ReadOnlySpan<SequenceSegment> segments = SequenceSegments.Read(c.Buffer<int>(6, (long)count * SequenceSegment.Ints), count, seq, slots, maxSeq);
        Span<float> logits = c.Buffer<float>(0, (long)count * n), scratch = c.Buffer<float>(2, n);
        Span<ulong> rng = c.Buffer<ulong>(1, slots);
        Span<int> tokens = c.Buffer<int>(3, seq), history = c.Buffer<int>(4, (long)slots * maxSeq), next = c.Buffer<int>(7, slots);
        Span<long> table = c.Buffer<long>(5, (long)slots * SamplingRow.Count);
        int row = 0;
        for (int i = 0; i < segments.Length; i++)
        {
            SequenceSegment s = segments[i];
            Span<long> r = table.Slice(s.Slot * SamplingRow.Count, SamplingRow.Count);
            var settings = new SamplingSettings(Real(r[SamplingRow.Temperature]), (int)Math.Clamp(r[SamplingRow.TopK], 0, int.MaxValue), Real(r[SamplingRow.TopP]), Real(r[SamplingRow.MinP]),
                Real(r[SamplingRow.RepeatPenalty]), (int)Math.Clamp(r[SamplingRow.RepeatLastN], -1, int.MaxValue), Real(r[SamplingRow.FrequencyPenalty]), Real(r[SamplingRow.PresencePenalty]));
            next[s.Slot] = settings.Sample(logits.Slice(i * n, n), ref rng[s.Slot], scratch, history.Slice(s.Slot * maxSeq, maxSeq), tokens.Slice(row, s.Length), s.Start);
            row += s.Length;
        }

        float Real(long bits)
        {
            double v = BitConverter.Int64BitsToDouble(bits);
            return double.IsFinite(v) ? (float)v : throw new KernelArgumentException($"{Name}: a sampling setting is not a finite number");
        }
    }
}
