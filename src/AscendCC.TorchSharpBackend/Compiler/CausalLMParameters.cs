using AscendCC.Runtime.GptNeo;
using AscendCC.Runtime.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using AscendCC.Runtime.Llama;

namespace AscendCC.TorchSharpBackend;

/// <summary>
/// Finds a decoder-only language model of a supported family in a module by its Hugging Face
/// parameter names (any class tree) and hands its parameters out as <see cref="TensorData"/>,
/// checked against the configuration. The names that identify a family are its embedding and its
/// first layer's query projection; everything else comes from the configuration's
/// <see cref="ModelConfig.ExpectedTensors"/>.
/// </summary>
internal static class CausalLMParameters
{
    /// <summary>Per family: the two parameters that identify it, and a configuration type's name for messages.</summary>
    private static readonly (string Family, string Embedding, string FirstQuery, Type ConfigType)[] Families =
    [
        ("Llama", LlamaTensorNames.Embedding, LlamaTensorNames.QProj(0), typeof(LlamaConfig)),
        ("GPT-Neo", GptNeoTensorNames.TokenEmbedding, GptNeoTensorNames.QProj(0), typeof(GptNeoConfig)),
    ];

    /// <summary>The family whose Hugging Face parameter names the module has, or null.</summary>
    public static string? Recognise(nn.Module module)
    {
        var names = module.named_parameters().Select(p => p.name).ToHashSet(StringComparer.Ordinal);
        return Families.FirstOrDefault(f => names.Contains(f.Embedding) && names.Contains(f.FirstQuery)).Family;
    }

    /// <summary>What identifies each family, for an error that says what was looked for.</summary>
    public static string Identifiers => string.Join("; ", Families.Select(f => $"{f.Family}: {f.Embedding} and {f.FirstQuery}"));

    /// <summary>The configuration from options (the object, else config.json), checked to be of the module's family.</summary>
    public static ModelConfig ResolveConfig(NpuCompileOptions options, string family)
    {
        var f = Families.Single(x => x.Family == family);
        ModelConfig config = options.Config
            ?? (options.ConfigPath is { } path ? ModelConfig.Load(path) : null)
            ?? throw new NpuCompileException($"the module is a {family} model (it has {f.Embedding} and {f.FirstQuery}) but no configuration was given; set NpuCompileOptions.Config (a {f.ConfigType.Name}) or NpuCompileOptions.ConfigPath (a Hugging Face config.json)");
        if (config.Family != family)
        {
            throw new NpuCompileException($"the module is a {family} model (it has {f.Embedding} and {f.FirstQuery}) but the configuration is a {config.Family} one ({config.Architecture}); give the module's own config.json");
        }
        return config;
    }

    /// <summary>
    /// The module's parameters by name, checked: every tensor the configuration needs is present with
    /// the right shape, nothing else is (an unknown parameter would be silently ignored by the device
    /// program), and a tied classifier really equals the embedding.
    /// </summary>
    public static Dictionary<string, Parameter> Collect(nn.Module module, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        // Everything the configuration says (rope_scaling, sliding windows, local attention, the
        // activation) is applied by the device program itself; Validate refuses what it cannot apply.
        config.Validate();
        var parameters = new Dictionary<string, Parameter>(StringComparer.Ordinal);
        foreach (var (name, p) in module.named_parameters())
        {
            parameters[name] = p;
        }
        var expected = config.ExpectedTensors().ToDictionary(e => e.Name, e => e.Shape);
        string embedding = config.EmbeddingTensorName, lmHead = config.LmHeadTensorName;
        if (config.TieWordEmbeddings && parameters.TryGetValue(lmHead, out Parameter? head))
        {
            // Some modules register the tied matrix twice; accept that only if it is truly the same.
            using var noGrad = no_grad();
            if (!parameters.TryGetValue(embedding, out Parameter? table) || !head.shape.SequenceEqual(table.shape) || !head.allclose(table, rtol: 0, atol: 0))
            {
                throw new NpuCompileException($"the configuration says tie_word_embeddings=true but {lmHead} differs from {embedding}; set TieWordEmbeddings = false in the configuration");
            }
            parameters.Remove(lmHead);
        }
        var missing = expected.Keys.Where(n => !parameters.ContainsKey(n)).ToList();
        if (missing.Count > 0)
        {
            string hint = missing.Contains(lmHead) ? $" (no {lmHead}: if the classifier is tied to the embedding, set tie_word_embeddings=true)" : "";
            throw new NpuCompileException($"the module lacks parameters the configuration needs: {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? ", ..." : "")}{hint}. Check the number of layers and the parameter names (Hugging Face naming)");
        }
        var unknown = parameters.Keys.Where(n => !expected.ContainsKey(n)).ToList();
        if (unknown.Count > 0)
        {
            throw new NpuCompileException($"the module has parameters the {config.Family} device program has no place for: {string.Join(", ", unknown.Take(8))}{(unknown.Count > 8 ? ", ..." : "")}. " +
                $"The device {config.Family} has exactly the parameters its Hugging Face model has; a module with extra biases or layers is not a plain {config.Family} and cannot be compiled");
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
    public static ScalarType WeightDType(Dictionary<string, Parameter> parameters, ModelConfig config) => parameters[config.EmbeddingTensorName].dtype;
}
