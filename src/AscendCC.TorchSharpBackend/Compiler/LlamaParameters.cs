using AscendCC.Runtime.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AscendCC.TorchSharpBackend;

/// <summary>
/// Finds a Llama-family decoder in a module by its Hugging Face parameter names and hands its
/// parameters out as <see cref="TensorData"/>, checked against the configuration.
/// </summary>
internal static class LlamaParameters
{
    /// <summary>True when the module's parameters are named like a Hugging Face LlamaForCausalLM.</summary>
    public static bool LooksLikeLlama(nn.Module module) =>
        module.named_parameters().Any(p => p.name == LlamaTensorNames.Embedding)
        && module.named_parameters().Any(p => p.name == LlamaTensorNames.QProj(0));

    /// <summary>The configuration from options: the object, else config.json.</summary>
    public static LlamaConfig ResolveConfig(NpuCompileOptions options) =>
        options.Config
        ?? (options.ConfigPath is { } path ? LlamaConfig.Load(path) : null)
        ?? throw new NpuCompileException("the module is a Llama-family model (it has model.embed_tokens.weight and model.layers.0.self_attn.q_proj.weight) but no configuration was given; set NpuCompileOptions.Config (a LlamaConfig) or NpuCompileOptions.ConfigPath (a Hugging Face config.json)");

    /// <summary>
    /// The module's parameters by name, checked: every tensor the configuration needs is present with
    /// the right shape, nothing else is (an unknown parameter would be silently ignored by the device
    /// program), and a tied classifier really equals the embedding.
    /// </summary>
    public static Dictionary<string, Parameter> Collect(nn.Module module, LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        // rope_scaling (linear, llama3) and sliding_window are applied by the device program itself;
        // Validate has already refused every other scaling type.
        config.Validate();
        var parameters = new Dictionary<string, Parameter>(StringComparer.Ordinal);
        foreach (var (name, p) in module.named_parameters())
        {
            parameters[name] = p;
        }
        var expected = LlamaTensorNames.Expected(config).ToDictionary(e => e.Name, e => e.Shape);
        if (config.TieWordEmbeddings && parameters.TryGetValue(LlamaTensorNames.LmHead, out Parameter? head))
        {
            // Some modules register the tied matrix twice; accept that only if it is truly the same.
            using var noGrad = no_grad();
            if (!head.shape.SequenceEqual(parameters[LlamaTensorNames.Embedding].shape) || !head.allclose(parameters[LlamaTensorNames.Embedding], rtol: 0, atol: 0))
            {
                throw new NpuCompileException("the configuration says tie_word_embeddings=true but lm_head.weight differs from model.embed_tokens.weight; set TieWordEmbeddings = false in the configuration");
            }
            parameters.Remove(LlamaTensorNames.LmHead);
        }
        var missing = expected.Keys.Where(n => !parameters.ContainsKey(n)).ToList();
        if (missing.Count > 0)
        {
            string hint = missing.Contains(LlamaTensorNames.LmHead) ? " (no lm_head.weight: if the classifier is tied to the embedding, set tie_word_embeddings=true)" : "";
            throw new NpuCompileException($"the module lacks parameters the configuration needs: {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? ", ..." : "")}{hint}. Check num_hidden_layers and the parameter names (Hugging Face naming)");
        }
        var unknown = parameters.Keys.Where(n => !expected.ContainsKey(n)).ToList();
        if (unknown.Count > 0)
        {
            throw new NpuCompileException($"the module has parameters the Llama device program has no place for: {string.Join(", ", unknown.Take(8))}{(unknown.Count > 8 ? ", ..." : "")}. The device Llama has no biases and no extra layers; such a model is not a plain Llama and cannot be compiled");
        }
        foreach (var (name, shape) in expected)
        {
            if (!parameters[name].shape.SequenceEqual(shape))
            {
                throw new NpuCompileException($"parameter '{name}' has shape [{string.Join(", ", parameters[name].shape)}] but the configuration needs [{string.Join(", ", shape)}]; the configuration does not describe this module");
            }
        }
        return parameters;
    }

    /// <summary>A TorchSharp tensor as <see cref="TensorData"/> (float32, float16 or bfloat16).</summary>
    public static TensorData ToTensorData(string name, Tensor tensor)
    {
        TensorDType dtype = tensor.dtype switch
        {
            ScalarType.Float32 => TensorDType.F32,
            ScalarType.Float16 => TensorDType.F16,
            ScalarType.BFloat16 => TensorDType.BF16,
            _ => throw new NpuCompileException($"parameter '{name}' is {tensor.dtype}; the NPU takes float32, float16 or bfloat16 weights"),
        };
        using Tensor host = tensor.detach().cpu().contiguous();
        return new TensorData(name, dtype, host.shape, host.bytes.ToArray());
    }

    /// <summary>The dtype shared by the weight matrices (the embedding's).</summary>
    public static ScalarType WeightDType(Dictionary<string, Parameter> parameters) => parameters[LlamaTensorNames.Embedding].dtype;
}
