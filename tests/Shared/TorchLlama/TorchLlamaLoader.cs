using AscendCC.Runtime.Models;
using static TorchSharp.torch;

namespace AscendCC.Tests.TorchLlama;

/// <summary>Builds a <see cref="LlamaForCausalLM"/> from a <see cref="ModelCheckpoint"/> in either layout.</summary>
public static class TorchLlamaLoader
{
    /// <summary>
    /// Creates the model and copies every parameter from the checkpoint (widened to float32).
    /// Interleaved-RoPE checkpoints (llama2.c) get their q/k rows permuted to rotate_half order,
    /// because this model applies Hugging Face RoPE.
    /// </summary>
    public static LlamaForCausalLM Load(ModelCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var config = checkpoint.Config as LlamaConfig ?? throw new ArgumentException($"{checkpoint.SourcePath} is a {checkpoint.Config.Family} checkpoint, not a Llama", nameof(checkpoint));
        var model = new LlamaForCausalLM(config);
        try
        {
            using var noGrad = no_grad();
            foreach (var (name, parameter) in model.named_parameters())
            {
                var source = checkpoint.GetTensor(name);
                long[] shape = source.Shape.ToArray();
                if (!shape.SequenceEqual(parameter.shape))
                {
                    throw new InvalidOperationException($"{checkpoint.SourcePath}: tensor '{name}' has shape [{string.Join(", ", shape)}] but the model expects [{string.Join(", ", parameter.shape)}].");
                }
                using var scope = NewDisposeScope();
                var value = tensor(source.ReadFloat32(), shape);
                if (checkpoint.RopeConvention == RopeConvention.Interleaved)
                {
                    if (name.EndsWith(".self_attn.q_proj.weight", StringComparison.Ordinal))
                    {
                        value = InterleavedToHalf(value, config.NumAttentionHeads);
                    }
                    else if (name.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal))
                    {
                        value = InterleavedToHalf(value, config.NumKeyValueHeads);
                    }
                }
                parameter.copy_(value);
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reorders q/k rows from Meta's interleaved pairs (2i, 2i+1) to rotate_half pairs (i, i + d/2)
    /// within each head: the permutation of Hugging Face's convert_llama_weights_to_hf.py.
    /// </summary>
    public static Tensor InterleavedToHalf(Tensor weight, int heads)
    {
        ArgumentNullException.ThrowIfNull(weight);
        long rows = weight.shape[0], cols = weight.shape[1];
        return weight.view(heads, rows / heads / 2, 2, cols).transpose(1, 2).reshape(rows, cols);
    }
}
