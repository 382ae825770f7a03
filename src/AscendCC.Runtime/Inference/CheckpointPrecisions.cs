using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Inference;

/// <summary>
/// The matrix precisions a checkpoint's own storage asks for: what <see cref="CausalLM.Load(Acl.NpuRuntime, ModelCheckpoint, CausalLMOptions?)"/>
/// and the provider tool use when <see cref="CausalLMOptions.MatrixPrecisions"/> is not given.
/// </summary>
public static class CheckpointPrecisions
{
    /// <summary>
    /// Under a 4-bit deployment (<see cref="WeightPrecision.Q4_0"/>, <see cref="WeightPrecision.Q4_K"/>), the
    /// layer matrices the file stores in a wider block type — Q5_0, Q5_1, Q5_K, Q6_K or Q8_0 — are kept in Q8_0
    /// rather than requantized to 4 bits. llama.cpp's mixed files choose those types on purpose: a
    /// Q4_K_M keeps attn_v and ffn_down of about half the layers in Q6_K (its use_more_bits), a Q4_K_S
    /// some in Q5_K; requantizing them to 4 bits doubles their rounding error (a 6-bit step is a quarter
    /// of a 4-bit one) where Q8_0 adds a quarter of it, at 8.5 bits a weight instead of 6.56. The token
    /// embedding and the classifier are Q8_0 under these deployments anyway. Empty for any other
    /// precision, and for checkpoints without block types (safetensors, llama2.c, plain GGUF).
    /// </summary>
    public static IReadOnlyDictionary<string, WeightPrecision> For(ModelCheckpoint checkpoint, WeightPrecision precision)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var kept = new SortedDictionary<string, WeightPrecision>(StringComparer.Ordinal);
        if (precision is not (WeightPrecision.Q4_0 or WeightPrecision.Q4_K))
        {
            return kept;
        }
        ModelConfig config = checkpoint.Config;
        foreach ((string name, long[] shape) in config.ExpectedTensors())
        {
            if (shape.Length != 2 || name == config.EmbeddingTensorName || name == config.LmHeadTensorName
                || !checkpoint.Tensors.TryGetValue(name, out CheckpointTensor? tensor))
            {
                continue;
            }
            if (tensor.StoredGgufType is GgufTensorType.Q5_0 or GgufTensorType.Q5_1 or GgufTensorType.Q5_K or GgufTensorType.Q6_K or GgufTensorType.Q8_0)
            {
                kept[name] = WeightPrecision.Q8_0;
            }
        }
        return kept;
    }
}
