using AscendCC.Runtime.Models;
using AscendCC.Runtime.Programs;

namespace AscendCC.Runtime.Llama;

/// <summary>
/// The Llama family's program builder (Llama 2/3, Mistral, Qwen2, Qwen3): the forward pass that
/// <see cref="CausalLMProgram.Build"/> places between the shared prologue and the classifier, read
/// top to bottom:
/// <code>
/// x = embedding[tokens]
/// for each layer:  xb = rmsnorm(x)·w_attn;  q,k,v = xb·Wqᵀ, xb·Wkᵀ, xb·Wvᵀ (+ bq, bk, bv: Qwen2)
///                  (q, k = rmsnorm of each head·w_qnorm, ·w_knorm: Qwen3);  rope(q, k);  cache ← k, v
///                  att = softmax(q·Kᵀ/√d + causal [+ sliding window])·V;  x += att·Woᵀ
///                  xb = rmsnorm(x)·w_ffn;  hb = silu(xb·W1ᵀ) ⊙ (xb·W3ᵀ);  x += hb·W2ᵀ
/// final norm: rmsnorm(·)·w_norm;  classifier: lm_head (or the embedding when tied)
/// </code>
/// </summary>
internal static class LlamaProgram
{
    public static void BuildForward(CausalLMProgramBuilder b, LlamaConfig config)
    {
        static ScalarRef I(long v) => ScalarRef.Of(v);
        static ScalarRef F(double v) => ScalarRef.Of(v);
        Programs.DeviceProgram p = b.Program;
        int dim = config.HiddenSize, hidden = config.IntermediateSize, heads = config.NumAttentionHeads, kvHeads = config.NumKeyValueHeads;
        int headDim = config.HeadDim, qDim = heads * headDim, kvDim = kvHeads * headDim, vocab = config.VocabSize, T = b.MaxBatchTokens;

        ProgramBuffer embedding = b.Table(LlamaTensorNames.Embedding, vocab, dim);
        ProgramBuffer finalNorm = b.Float32(LlamaTensorNames.FinalNorm, dim);
        b.Classifier = config.TieWordEmbeddings ? embedding : b.Table(LlamaTensorNames.LmHead, vocab, dim);
        float eps = (float)config.RmsNormEps, theta = (float)config.RopeTheta;
        b.FinalNorm = (input, output, rows) => p.Launch("rms_norm", [input, finalNorm, output], rows, I(dim), F(eps));

        ProgramBuffer x = b.X, xb = b.Xb, xb2 = b.Act("xb2", (long)T * dim);
        ProgramBuffer q = b.Act("q", (long)T * qDim), k = b.Act("k", (long)T * kvDim), v = b.Act("v", (long)T * kvDim), att = b.Act("att", (long)T * qDim);
        ProgramBuffer hb = b.Act("hb", (long)T * hidden), hb2 = b.Act("hb2", (long)T * hidden);
        string ropeOp = b.Rope == RopeConvention.Interleaved ? "rope_interleaved" : "rope_half";
        // rope_scaling as the rope operator's scalars: kind (0 none, 1 linear, 2 llama3), factor, low, high,
        // original context; unused ones are 0, so the launch (and the graph measurement) is one fixed encoding.
        RopeScaling? scaling = config.RopeScaling;
        ScalarRef[] ropeScaling =
        [
            I(scaling is null ? 0 : scaling.Type == RopeScaling.LinearType ? 1 : 2),
            F(scaling?.Factor ?? 0), F(scaling?.LowFreqFactor ?? 0), F(scaling?.HighFreqFactor ?? 0), I(scaling?.OriginalMaxPositionEmbeddings ?? 0),
        ];
        // Mistral's sliding window, 0 for none; the KV cache stays full-length either way.
        int window = config.SlidingWindow ?? 0;
        ScalarRef seq = b.Seq;

        p.Launch("embedding", [embedding, b.Tokens, x], seq, I(vocab), I(dim), I(b.DtOf(embedding)));
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            ProgramBuffer attnNorm = b.Float32(LlamaTensorNames.InputLayerNorm(l), dim);
            ProgramBuffer wq = b.Matrix(LlamaTensorNames.QProj(l), qDim, dim), wk = b.Matrix(LlamaTensorNames.KProj(l), kvDim, dim), wv = b.Matrix(LlamaTensorNames.VProj(l), kvDim, dim);
            ProgramBuffer wo = b.Matrix(LlamaTensorNames.OProj(l), dim, qDim);
            ProgramBuffer ffnNorm = b.Float32(LlamaTensorNames.PostAttentionLayerNorm(l), dim);
            ProgramBuffer w1 = b.Matrix(LlamaTensorNames.GateProj(l), hidden, dim), w3 = b.Matrix(LlamaTensorNames.UpProj(l), hidden, dim), w2 = b.Matrix(LlamaTensorNames.DownProj(l), dim, hidden);
            ProgramBuffer kCache = b.KvCache($"k_cache.{l}", kvHeads, headDim);
            ProgramBuffer vCache = b.KvCache($"v_cache.{l}", kvHeads, headDim);

            p.Launch("rms_norm", [x, attnNorm, xb], seq, I(dim), F(eps));
            if (config.QkvBias)
            {
                // Qwen2: each projection with its bias (linear adds it; the fused launch has none).
                ProgramBuffer bq = b.Float32(LlamaTensorNames.QBias(l), qDim), bk = b.Float32(LlamaTensorNames.KBias(l), kvDim), bv = b.Float32(LlamaTensorNames.VBias(l), kvDim);
                b.Linear(xb, seq, dim, wq, bq, q, qDim);
                b.Linear(xb, seq, dim, wk, bk, k, kvDim);
                b.Linear(xb, seq, dim, wv, bv, v, kvDim);
            }
            else
            {
                // q, k and v read the same xb: one launch (see LinearKernel.LinearFused) unless their types differ.
                b.Linears(xb, seq, dim, (wq, q, qDim), (wk, k, kvDim), (wv, v, kvDim));
            }
            if (config.QkNorm)
            {
                // Qwen3: every head of q and k normalised on its own, in place, before it is rotated.
                ProgramBuffer qNorm = b.Float32(LlamaTensorNames.QNorm(l), headDim), kNorm = b.Float32(LlamaTensorNames.KNorm(l), headDim);
                p.Launch("rms_norm_heads", [q, qNorm, q], seq, I(heads), I(headDim), F(eps));
                p.Launch("rms_norm_heads", [k, kNorm, k], seq, I(kvHeads), I(headDim), F(eps));
            }
            b.Rotate(ropeOp, q, heads, headDim, theta, ropeScaling);
            b.Rotate(ropeOp, k, kvHeads, headDim, theta, ropeScaling);
            b.KvCacheWrite(k, v, kCache, vCache, kvHeads, headDim);
            b.Attention(q, kCache, vCache, att, heads, kvHeads, headDim, 1.0 / Math.Sqrt(headDim), window);
            b.Linears(att, seq, qDim, (wo, xb2, dim));
            p.Launch("add", [x, xb2, x], b.SeqDim);

            p.Launch("rms_norm", [x, ffnNorm, xb], seq, I(dim), F(eps));
            b.Linears(xb, seq, dim, (w1, hb, hidden), (w3, hb2, hidden));
            p.Launch("silu_mul", [hb, hb2, hb], b.SeqHidden);
            b.Linears(hb, seq, hidden, (w2, xb2, dim));
            p.Launch("add", [x, xb2, x], b.SeqDim);
        }
    }
}
