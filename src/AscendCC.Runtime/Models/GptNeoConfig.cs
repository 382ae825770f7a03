using System.Globalization;
using System.Text.Json;

namespace AscendCC.Runtime.Models;

/// <summary>
/// The hyperparameters of a GPT-Neo decoder (<c>GPTNeoForCausalLM</c>), as in its Hugging Face
/// <c>config.json</c>: learned absolute positions, LayerNorm with bias, <c>gelu_new</c>, and layers
/// alternating global and local (windowed) attention. Hugging Face names some fields differently
/// from Llama (<c>num_layers</c>, <c>num_heads</c>); both spellings are read. Its program builder is
/// <see cref="GptNeo.GptNeoProgram"/>.
/// </summary>
public sealed record GptNeoConfig : ModelConfig
{
    /// <summary>Architectures of this family.</summary>
    public static new IReadOnlyList<string> SupportedArchitectures { get; } = ["GPTNeoForCausalLM"];

    /// <summary>model_type values matching <see cref="SupportedArchitectures"/>.</summary>
    public static new IReadOnlyList<string> SupportedModelTypes { get; } = ["gpt_neo"];

    /// <summary>The attention kind of a layer.</summary>
    public const string GlobalAttention = "global", LocalAttention = "local";

    /// <summary>Activations GPT-Neo checkpoints use that the device computes exactly: the tanh approximation of GELU.</summary>
    public static IReadOnlyList<string> SupportedActivations { get; } = ["gelu_new", "gelu_pytorch_tanh"];

    /// <summary>Each layer's attention, "global" or "local" (expanded from config.json's run-length <c>attention_types</c>).</summary>
    public required IReadOnlyList<string> AttentionLayers { get; init; }

    /// <summary>window_size: a local layer's query at position p attends to keys p − window &lt; j ≤ p.</summary>
    public int WindowSize { get; init; } = 256;

    /// <summary>activation_function of the MLP.</summary>
    public string ActivationFunction { get; init; } = "gelu_new";

    /// <summary>Epsilon inside LayerNorm's square root.</summary>
    public double LayerNormEpsilon { get; init; } = 1e-5;

    /// <inheritdoc />
    public override string Family => "GPT-Neo";

    /// <summary>The window of layer <paramref name="layer"/>'s attention: <see cref="WindowSize"/> for a local layer, 0 (none) for a global one.</summary>
    public int WindowOf(int layer) => AttentionLayers[layer] == LocalAttention ? WindowSize : 0;

    /// <inheritdoc />
    public override string EmbeddingTensorName => GptNeo.GptNeoTensorNames.TokenEmbedding;

    /// <inheritdoc />
    public override string LmHeadTensorName => GptNeo.GptNeoTensorNames.LmHead;

    /// <inheritdoc />
    public override IEnumerable<(string Name, long[] Shape)> ExpectedTensors() => GptNeo.GptNeoTensorNames.Expected(this);

    /// <inheritdoc />
    internal override void BuildForward(Programs.CausalLMProgramBuilder b) => GptNeo.GptNeoProgram.BuildForward(b, this);

    internal static GptNeoConfig FromJson(JsonElement root, string architecture, string? modelType, string source)
    {
        int hidden = ConfigJson.RequiredInt(root, "hidden_size", source);
        int layers = ConfigJson.OptionalInt(root, "num_layers", source) ?? ConfigJson.RequiredInt(root, "num_hidden_layers", source);
        var config = new GptNeoConfig
        {
            Architecture = architecture,
            ModelType = modelType,
            HiddenSize = hidden,
            // Hugging Face's GPTNeoMLP takes intermediate_size, or 4 × hidden_size when it is null.
            IntermediateSize = ConfigJson.OptionalInt(root, "intermediate_size", source) ?? 4 * hidden,
            NumHiddenLayers = layers,
            NumAttentionHeads = ConfigJson.OptionalInt(root, "num_heads", source) ?? ConfigJson.RequiredInt(root, "num_attention_heads", source),
            VocabSize = ConfigJson.RequiredInt(root, "vocab_size", source),
            MaxPositionEmbeddings = ConfigJson.RequiredInt(root, "max_position_embeddings", source),
            TieWordEmbeddings = ConfigJson.OptionalBool(root, "tie_word_embeddings", source) ?? true,
            BosTokenId = ConfigJson.OptionalInt(root, "bos_token_id", source),
            EosTokenIds = ConfigJson.ReadEos(root, source),
            TorchDtype = ConfigJson.OptionalString(root, "torch_dtype", source) ?? ConfigJson.OptionalString(root, "dtype", source),
            AttentionLayers = ReadAttentionTypes(root, source),
            WindowSize = ConfigJson.OptionalInt(root, "window_size", source) ?? 256,
            ActivationFunction = ConfigJson.OptionalString(root, "activation_function", source) ?? "gelu_new",
            LayerNormEpsilon = ConfigJson.OptionalDouble(root, "layer_norm_epsilon", source) ?? 1e-5,
        };
        config.ValidateFrom(source);
        return config;
    }

    /// <summary>Expands <c>attention_types</c>, a list of [[kinds...], repeat] pairs, into one kind per layer.</summary>
    private static string[] ReadAttentionTypes(JsonElement root, string source)
    {
        const string Shape = "a list of [[\"global\"|\"local\", ...], repeat] pairs, e.g. [[[\"global\", \"local\"], 6]]";
        if (!root.TryGetProperty("attention_types", out var types) || types.ValueKind == JsonValueKind.Null)
        {
            throw new CheckpointFormatException(source, null, "lacks the required field \"attention_types\".", $"Add it to config.json: {Shape}.");
        }
        var layers = new List<string>();
        if (types.ValueKind != JsonValueKind.Array)
        {
            throw ConfigJson.Bad(source, "attention_types", Shape);
        }
        foreach (JsonElement pair in types.EnumerateArray())
        {
            if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2 || pair[0].ValueKind != JsonValueKind.Array
                || !pair[1].TryGetInt32(out int repeat) || repeat < 0)
            {
                throw ConfigJson.Bad(source, "attention_types", Shape);
            }
            string[] kinds = pair[0].EnumerateArray().Select(k => k.ValueKind == JsonValueKind.String ? k.GetString()! : k.GetRawText()).ToArray();
            for (int r = 0; r < repeat; r++)
            {
                layers.AddRange(kinds);
            }
        }
        return layers.ToArray();
    }

    /// <inheritdoc />
    public override string ToJson()
    {
        var o = CommonJson("gpt_neo");
        o["hidden_size"] = HiddenSize;
        o["intermediate_size"] = IntermediateSize;
        o["num_layers"] = NumHiddenLayers;
        o["num_heads"] = NumAttentionHeads;
        o["window_size"] = WindowSize;
        // One [[kind], 1] pair per layer: as valid as the run-length form, and unambiguous.
        o["attention_types"] = new System.Text.Json.Nodes.JsonArray(AttentionLayers
            .Select(kind => (System.Text.Json.Nodes.JsonNode?)new System.Text.Json.Nodes.JsonArray(new System.Text.Json.Nodes.JsonArray(kind), 1)).ToArray());
        o["activation_function"] = ActivationFunction;
        o["layer_norm_epsilon"] = LayerNormEpsilon;
        return o.ToJsonString(Indented);
    }

    private protected override void ValidateFrom(string source)
    {
        if (!SupportedArchitectures.Contains(Architecture))
        {
            throw new CheckpointFormatException(source, null, $"architecture '{Architecture}' is not GPT-Neo.", $"GPT-Neo architectures: {string.Join(", ", SupportedArchitectures)}.");
        }
        ValidateCommon(source);
        if (HiddenSize % NumAttentionHeads != 0)
        {
            throw new CheckpointFormatException(source, null, $"hidden_size {HiddenSize} is not divisible by num_heads {NumAttentionHeads}.", "Fix config.json.");
        }
        if (AttentionLayers.Count != NumHiddenLayers)
        {
            throw new CheckpointFormatException(source, null, $"attention_types describes {AttentionLayers.Count} layers but num_layers is {NumHiddenLayers}.", "Make the repeats of attention_types add up to num_layers.");
        }
        string? unknown = AttentionLayers.FirstOrDefault(k => k != GlobalAttention && k != LocalAttention);
        if (unknown is not null)
        {
            throw new CheckpointFormatException(source, null, $"attention_types names the attention kind '{unknown}'.", "GPT-Neo layers are \"global\" or \"local\"; fix config.json.");
        }
        if (AttentionLayers.Contains(LocalAttention))
        {
            Positive(WindowSize, source, "window_size");
        }
        if (!SupportedActivations.Contains(ActivationFunction))
        {
            throw new CheckpointFormatException(source, null, $"activation_function '{ActivationFunction}' is not supported.",
                $"The device computes {string.Join(" and ", SupportedActivations)} (GELU's tanh approximation); exact-erf 'gelu' or other activations would change the model's outputs.");
        }
        if (!(LayerNormEpsilon > 0) || !double.IsFinite(LayerNormEpsilon))
        {
            throw new CheckpointFormatException(source, null, $"layer_norm_epsilon = {LayerNormEpsilon.ToString(CultureInfo.InvariantCulture)}; it must be a positive finite number.", "Fix config.json.");
        }
    }
}
