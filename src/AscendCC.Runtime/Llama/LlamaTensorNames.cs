using AscendCC.Runtime.Models;

namespace AscendCC.Runtime.Llama;

/// <summary>Hugging Face parameter names of a Llama decoder; both layouts are exposed under these names.</summary>
public static class LlamaTensorNames
{
    /// <summary>Token embedding [vocab, hidden].</summary>
    public const string Embedding = "model.embed_tokens.weight";

    /// <summary>Final RMSNorm weight [hidden].</summary>
    public const string FinalNorm = "model.norm.weight";

    /// <summary>Classifier [vocab, hidden]; absent when tied to the embedding.</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>Attention RMSNorm weight of layer <paramref name="layer"/> [hidden].</summary>
    public static string InputLayerNorm(int layer) => $"model.layers.{layer}.input_layernorm.weight";

    /// <summary>FFN RMSNorm weight of layer <paramref name="layer"/> [hidden].</summary>
    public static string PostAttentionLayerNorm(int layer) => $"model.layers.{layer}.post_attention_layernorm.weight";

    /// <summary>wq [heads*head_dim, hidden].</summary>
    public static string QProj(int layer) => $"model.layers.{layer}.self_attn.q_proj.weight";

    /// <summary>wk [kv_heads*head_dim, hidden].</summary>
    public static string KProj(int layer) => $"model.layers.{layer}.self_attn.k_proj.weight";

    /// <summary>wv [kv_heads*head_dim, hidden].</summary>
    public static string VProj(int layer) => $"model.layers.{layer}.self_attn.v_proj.weight";

    /// <summary>Qwen2's q_proj bias [heads*head_dim].</summary>
    public static string QBias(int layer) => $"model.layers.{layer}.self_attn.q_proj.bias";

    /// <summary>Qwen2's k_proj bias [kv_heads*head_dim].</summary>
    public static string KBias(int layer) => $"model.layers.{layer}.self_attn.k_proj.bias";

    /// <summary>Qwen2's v_proj bias [kv_heads*head_dim].</summary>
    public static string VBias(int layer) => $"model.layers.{layer}.self_attn.v_proj.bias";

    /// <summary>Qwen3's q_norm weight [head_dim], shared by every query head.</summary>
    public static string QNorm(int layer) => $"model.layers.{layer}.self_attn.q_norm.weight";

    /// <summary>Qwen3's k_norm weight [head_dim], shared by every key head.</summary>
    public static string KNorm(int layer) => $"model.layers.{layer}.self_attn.k_norm.weight";

    /// <summary>wo [hidden, heads*head_dim].</summary>
    public static string OProj(int layer) => $"model.layers.{layer}.self_attn.o_proj.weight";

    /// <summary>w1 [intermediate, hidden].</summary>
    public static string GateProj(int layer) => $"model.layers.{layer}.mlp.gate_proj.weight";

    /// <summary>w3 [intermediate, hidden].</summary>
    public static string UpProj(int layer) => $"model.layers.{layer}.mlp.up_proj.weight";

    /// <summary>w2 [hidden, intermediate].</summary>
    public static string DownProj(int layer) => $"model.layers.{layer}.mlp.down_proj.weight";

    /// <summary>Every tensor a model with <paramref name="config"/> needs, with its [out, in] shape.</summary>
    public static IEnumerable<(string Name, long[] Shape)> Expected(LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long hidden = config.HiddenSize, inter = config.IntermediateSize, vocab = config.VocabSize;
        long qDim = (long)config.NumAttentionHeads * config.HeadDim, kvDim = config.KeyValueDim;
        yield return (Embedding, [vocab, hidden]);
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            yield return (InputLayerNorm(l), [hidden]);
            yield return (QProj(l), [qDim, hidden]);
            yield return (KProj(l), [kvDim, hidden]);
            yield return (VProj(l), [kvDim, hidden]);
            if (config.QkvBias)
            {
                yield return (QBias(l), [qDim]);
                yield return (KBias(l), [kvDim]);
                yield return (VBias(l), [kvDim]);
            }
            if (config.QkNorm)
            {
                yield return (QNorm(l), [config.HeadDim]);
                yield return (KNorm(l), [config.HeadDim]);
            }
            yield return (OProj(l), [hidden, qDim]);
            yield return (PostAttentionLayerNorm(l), [hidden]);
            yield return (GateProj(l), [inter, hidden]);
            yield return (UpProj(l), [inter, hidden]);
            yield return (DownProj(l), [hidden, inter]);
        }
        yield return (FinalNorm, [hidden]);
        if (!config.TieWordEmbeddings)
        {
            yield return (LmHead, [vocab, hidden]);
        }
    }
}
