using AscendCC.Runtime.Models;

namespace AscendCC.Runtime.GptNeo;

/// <summary>Hugging Face tensor names of a GPT-Neo (<c>GPTNeoForCausalLM</c>) checkpoint.</summary>
public static class GptNeoTensorNames
{
    /// <summary>Token embedding [vocab, hidden] (also the classifier when tied).</summary>
    public const string TokenEmbedding = "transformer.wte.weight";

    /// <summary>Learned absolute position embedding [max_position_embeddings, hidden].</summary>
    public const string PositionEmbedding = "transformer.wpe.weight";

    /// <summary>Final LayerNorm scale [hidden].</summary>
    public const string FinalNormWeight = "transformer.ln_f.weight";

    /// <summary>Final LayerNorm shift [hidden].</summary>
    public const string FinalNormBias = "transformer.ln_f.bias";

    /// <summary>Untied classifier [vocab, hidden].</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>Attention LayerNorm scale [hidden].</summary>
    public static string Ln1Weight(int layer) => $"transformer.h.{layer}.ln_1.weight";

    /// <summary>Attention LayerNorm shift [hidden].</summary>
    public static string Ln1Bias(int layer) => $"transformer.h.{layer}.ln_1.bias";

    /// <summary>Query projection [hidden, hidden], no bias.</summary>
    public static string QProj(int layer) => $"transformer.h.{layer}.attn.attention.q_proj.weight";

    /// <summary>Key projection [hidden, hidden], no bias.</summary>
    public static string KProj(int layer) => $"transformer.h.{layer}.attn.attention.k_proj.weight";

    /// <summary>Value projection [hidden, hidden], no bias.</summary>
    public static string VProj(int layer) => $"transformer.h.{layer}.attn.attention.v_proj.weight";

    /// <summary>Attention output projection [hidden, hidden].</summary>
    public static string OutProj(int layer) => $"transformer.h.{layer}.attn.attention.out_proj.weight";

    /// <summary>Attention output projection's bias [hidden].</summary>
    public static string OutProjBias(int layer) => $"transformer.h.{layer}.attn.attention.out_proj.bias";

    /// <summary>MLP LayerNorm scale [hidden].</summary>
    public static string Ln2Weight(int layer) => $"transformer.h.{layer}.ln_2.weight";

    /// <summary>MLP LayerNorm shift [hidden].</summary>
    public static string Ln2Bias(int layer) => $"transformer.h.{layer}.ln_2.bias";

    /// <summary>MLP up projection [inner, hidden].</summary>
    public static string FcWeight(int layer) => $"transformer.h.{layer}.mlp.c_fc.weight";

    /// <summary>MLP up projection's bias [inner].</summary>
    public static string FcBias(int layer) => $"transformer.h.{layer}.mlp.c_fc.bias";

    /// <summary>MLP down projection [hidden, inner].</summary>
    public static string ProjWeight(int layer) => $"transformer.h.{layer}.mlp.c_proj.weight";

    /// <summary>MLP down projection's bias [hidden].</summary>
    public static string ProjBias(int layer) => $"transformer.h.{layer}.mlp.c_proj.bias";

    /// <summary>Every tensor a model with <paramref name="config"/> needs, with its shape.</summary>
    public static IEnumerable<(string Name, long[] Shape)> Expected(GptNeoConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long hidden = config.HiddenSize, inner = config.IntermediateSize, vocab = config.VocabSize;
        yield return (TokenEmbedding, [vocab, hidden]);
        yield return (PositionEmbedding, [config.MaxPositionEmbeddings, hidden]);
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            yield return (Ln1Weight(l), [hidden]);
            yield return (Ln1Bias(l), [hidden]);
            yield return (QProj(l), [hidden, hidden]);
            yield return (KProj(l), [hidden, hidden]);
            yield return (VProj(l), [hidden, hidden]);
            yield return (OutProj(l), [hidden, hidden]);
            yield return (OutProjBias(l), [hidden]);
            yield return (Ln2Weight(l), [hidden]);
            yield return (Ln2Bias(l), [hidden]);
            yield return (FcWeight(l), [inner, hidden]);
            yield return (FcBias(l), [inner]);
            yield return (ProjWeight(l), [hidden, inner]);
            yield return (ProjBias(l), [hidden]);
        }
        yield return (FinalNormWeight, [hidden]);
        yield return (FinalNormBias, [hidden]);
        if (!config.TieWordEmbeddings)
        {
            yield return (LmHead, [vocab, hidden]);
        }
    }
}
