using AscendCC.Device;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Programs;

namespace AscendCC.Runtime.GptNeo;

/// <summary>
/// The GPT-Neo family's program builder: the forward pass that <see cref="CausalLMProgram.Build"/>
/// places between the shared prologue and the classifier, read top to bottom:
/// <code>
/// x = wte[tokens] + wpe[start .. start+seq]
/// for each layer:  xb = layernorm(x; ln_1);  q,k,v = xb·Wqᵀ, xb·Wkᵀ, xb·Wvᵀ;  cache ← k, v
///                  att = softmax(q·Kᵀ + causal [+ window if local])·V     (no 1/√d: GPT-Neo does not scale)
///                  x += att·Woᵀ + b_o
///                  xb = layernorm(x; ln_2);  hb = gelu_new(xb·W_fcᵀ + b_fc);  x += hb·W_projᵀ + b_proj
/// final norm: layernorm(·; ln_f);  classifier: lm_head (or wte when tied)
/// </code>
/// </summary>
internal static class GptNeoProgram
{
    public static void BuildForward(CausalLMProgramBuilder b, GptNeoConfig config)
    {
        static ScalarRef I(long v) => ScalarRef.Of(v);
        static ScalarRef F(double v) => ScalarRef.Of(v);
        DeviceProgram p = b.Program;
        int dim = config.HiddenSize, inner = config.IntermediateSize, heads = config.NumAttentionHeads, headDim = config.HeadDim;
        int vocab = config.VocabSize, T = b.MaxBatchTokens, maxContext = b.MaxContext;
        if (maxContext > config.MaxPositionEmbeddings)
        {
            // Learned positions: there is no row for a position past the table.
            throw new ArgumentException(
                $"GPT-Neo learns {config.MaxPositionEmbeddings} positions (max_position_embeddings); a context of {maxContext} has positions with no embedding: use a MaxContext of at most {config.MaxPositionEmbeddings}", nameof(b));
        }
        float eps = (float)config.LayerNormEpsilon;

        ProgramBuffer wte = b.Table(GptNeoTensorNames.TokenEmbedding, vocab, dim);
        // Read as f32 rows by slice_rows at the pass's start position, whatever the matrices' precision.
        ProgramBuffer wpe = b.Float32(GptNeoTensorNames.PositionEmbedding, (long)config.MaxPositionEmbeddings * dim);
        ProgramBuffer lnF = b.Float32(GptNeoTensorNames.FinalNormWeight, dim), lnFBias = b.Float32(GptNeoTensorNames.FinalNormBias, dim);
        b.Classifier = config.TieWordEmbeddings ? wte : b.Table(GptNeoTensorNames.LmHead, vocab, dim);
        b.FinalNorm = (input, output, rows) => p.Launch("layer_norm", [input, lnF, lnFBias, output], rows, I(dim), F(eps));

        ProgramBuffer x = b.X, xb = b.Xb, xb2 = b.Act("xb2", (long)T * dim), pos = b.Act("pos", (long)T * dim);
        ProgramBuffer q = b.Act("q", (long)T * dim), k = b.Act("k", (long)T * dim), v = b.Act("v", (long)T * dim), att = b.Act("att", (long)T * dim);
        ProgramBuffer hb = b.Act("hb", (long)T * inner);
        ScalarRef seq = b.Seq;

        p.Launch("embedding", [wte, b.Tokens, x], seq, I(vocab), I(dim), I(b.DtOf(wte)));
        b.PositionRows(wpe, pos, config.MaxPositionEmbeddings, dim);
        p.Launch("add", [x, pos, x], b.SeqDim);
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            ProgramBuffer ln1 = b.Float32(GptNeoTensorNames.Ln1Weight(l), dim), ln1Bias = b.Float32(GptNeoTensorNames.Ln1Bias(l), dim);
            ProgramBuffer wq = b.Matrix(GptNeoTensorNames.QProj(l), dim, dim), wk = b.Matrix(GptNeoTensorNames.KProj(l), dim, dim), wv = b.Matrix(GptNeoTensorNames.VProj(l), dim, dim);
            ProgramBuffer wo = b.Matrix(GptNeoTensorNames.OutProj(l), dim, dim), bo = b.Float32(GptNeoTensorNames.OutProjBias(l), dim);
            ProgramBuffer ln2 = b.Float32(GptNeoTensorNames.Ln2Weight(l), dim), ln2Bias = b.Float32(GptNeoTensorNames.Ln2Bias(l), dim);
            ProgramBuffer wFc = b.Matrix(GptNeoTensorNames.FcWeight(l), inner, dim), bFc = b.Float32(GptNeoTensorNames.FcBias(l), inner);
            ProgramBuffer wProj = b.Matrix(GptNeoTensorNames.ProjWeight(l), dim, inner), bProj = b.Float32(GptNeoTensorNames.ProjBias(l), dim);
            ProgramBuffer kCache = b.KvCache($"k_cache.{l}", heads, headDim);
            ProgramBuffer vCache = b.KvCache($"v_cache.{l}", heads, headDim);

            p.Launch("layer_norm", [x, ln1, ln1Bias, xb], seq, I(dim), F(eps));
            b.Linears(xb, seq, dim, (wq, q, dim), (wk, k, dim), (wv, v, dim));
            b.KvCacheWrite(k, v, kCache, vCache, heads, headDim);
            // Scale 1: GPT-Neo's attention scores are q·k, unscaled (its weights were trained that way).
            b.Attention(q, kCache, vCache, att, heads, heads, headDim, 1.0, config.WindowOf(l));
            b.Linear(att, seq, dim, wo, bo, xb2, dim);
            p.Launch("add", [x, xb2, x], b.SeqDim);

            p.Launch("layer_norm", [x, ln2, ln2Bias, xb], seq, I(dim), F(eps));
            b.Linear(xb, seq, dim, wFc, bFc, hb, inner);
            p.Launch("gelu_tanh", [hb, hb], b.SeqHidden);
            b.Linear(hb, seq, inner, wProj, bProj, xb2, dim);
            p.Launch("add", [x, xb2, x], b.SeqDim);
        }
    }
}
