using System.Globalization;
using System.Text.Json;
using AscendCC.Runtime.Llama;

namespace AscendCC.Runtime.Models;

/// <summary>
/// The hyperparameters of a Llama-family decoder (Llama 2/3, Mistral, Qwen2, Qwen3), as in a Hugging Face
/// <c>config.json</c>. Names follow the Hugging Face fields; <see cref="ModelConfig.Validate"/> checks that they agree.
/// Its program builder is <see cref="Llama.LlamaProgram"/>.
/// </summary>
public sealed record LlamaConfig : ModelConfig
{
    /// <summary>Architectures of this family: all share the Llama decoder block.</summary>
    public static new IReadOnlyList<string> SupportedArchitectures { get; } = ["LlamaForCausalLM", "MistralForCausalLM", Qwen2Architecture, Qwen3Architecture];

    /// <summary>model_type values matching <see cref="SupportedArchitectures"/>.</summary>
    public static new IReadOnlyList<string> SupportedModelTypes { get; } = ["llama", "mistral", "qwen2", "qwen3"];

    /// <summary>Qwen2 (Qwen2, Qwen2.5): the Llama block with biases on q_proj, k_proj and v_proj.</summary>
    public const string Qwen2Architecture = "Qwen2ForCausalLM";

    /// <summary>Qwen3 (dense): the Llama block with an RMSNorm on each head of q and of k before RoPE, and no biases.</summary>
    public const string Qwen3Architecture = "Qwen3ForCausalLM";

    /// <summary>
    /// Whether q_proj, k_proj and v_proj carry biases (<c>…q_proj.bias</c> and so on), added after the
    /// projection: Qwen2's attention. Llama's own <c>attention_bias</c>, which biases o_proj too, is refused.
    /// </summary>
    public bool QkvBias { get; init; }

    /// <summary>
    /// Whether each head of q and of k is RMS-normalised (<c>…self_attn.q_norm.weight</c> and
    /// <c>k_norm.weight</c>, head_dim wide, shared by the heads) after the projection and before RoPE:
    /// Qwen3's attention.
    /// </summary>
    public bool QkNorm { get; init; }

    /// <summary>n_kv_heads: key/value heads (grouped-query attention when fewer than query heads).</summary>
    public required int NumKeyValueHeads { get; init; }

    /// <summary>Epsilon inside RMSNorm's square root.</summary>
    public double RmsNormEps { get; init; } = 1e-6;

    /// <summary>RoPE base frequency theta.</summary>
    public double RopeTheta { get; init; } = 10000.0;

    /// <summary>Explicit "head_dim" when the config gives one (Mistral-style); otherwise null.</summary>
    public int? ExplicitHeadDim { get; init; }

    /// <summary>"rope_scaling" (linear or llama3) when the config asks for RoPE scaling; null for plain RoPE.</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary>
    /// Mistral's "sliding_window" W: the query at position p attends only to keys p − W &lt; j ≤ p.
    /// Null (or 0) attends to every earlier position.
    /// </summary>
    public int? SlidingWindow { get; init; }

    /// <summary>head_size: the explicit head_dim, else hidden_size / num_attention_heads.</summary>
    public override int HeadDim => ExplicitHeadDim ?? base.HeadDim;

    /// <inheritdoc />
    public override int KeyValueHeads => NumKeyValueHeads;

    /// <summary>kv_dim: num_key_value_heads * head_dim, the width of k_proj and v_proj.</summary>
    public int KeyValueDim => NumKeyValueHeads * HeadDim;

    /// <inheritdoc />
    public override string Family => "Llama";

    /// <inheritdoc />
    public override string EmbeddingTensorName => LlamaTensorNames.Embedding;

    /// <inheritdoc />
    public override string LmHeadTensorName => LlamaTensorNames.LmHead;

    /// <inheritdoc />
    public override IEnumerable<(string Name, long[] Shape)> ExpectedTensors() => LlamaTensorNames.Expected(this);

    /// <inheritdoc />
    internal override void BuildForward(Programs.CausalLMProgramBuilder b) => Llama.LlamaProgram.BuildForward(b, this);

    /// <summary>Reads and validates a Hugging Face config.json of the Llama family.</summary>
    public static new LlamaConfig Load(string configPath) => Parse(ReadFile(configPath), Path.GetFullPath(configPath));

    /// <summary>Parses and validates config.json text of the Llama family; <paramref name="source"/> names it in errors.</summary>
    public static new LlamaConfig Parse(string json, string source = "config.json")
    {
        using JsonDocument doc = ConfigJson.ParseDocument(json, source);
        JsonElement root = doc.RootElement;
        string? modelType = ConfigJson.OptionalString(root, "model_type", source);
        return FromJson(root, ReadArchitecture(root, modelType, source, SupportedArchitectures, SupportedModelTypes), modelType, source);
    }

    internal static LlamaConfig FromJson(JsonElement root, string architecture, string? modelType, string source)
    {
        int heads = ConfigJson.RequiredInt(root, "num_attention_heads", source);
        var config = new LlamaConfig
        {
            Architecture = architecture,
            ModelType = modelType,
            HiddenSize = ConfigJson.RequiredInt(root, "hidden_size", source),
            IntermediateSize = ConfigJson.RequiredInt(root, "intermediate_size", source),
            NumHiddenLayers = ConfigJson.RequiredInt(root, "num_hidden_layers", source),
            NumAttentionHeads = heads,
            NumKeyValueHeads = ConfigJson.OptionalInt(root, "num_key_value_heads", source) ?? heads,
            VocabSize = ConfigJson.RequiredInt(root, "vocab_size", source),
            MaxPositionEmbeddings = ConfigJson.RequiredInt(root, "max_position_embeddings", source),
            RmsNormEps = ConfigJson.OptionalDouble(root, "rms_norm_eps", source) ?? 1e-6,
            RopeTheta = ConfigJson.OptionalDouble(root, "rope_theta", source) ?? 10000.0,
            TieWordEmbeddings = ConfigJson.OptionalBool(root, "tie_word_embeddings", source) ?? false,
            BosTokenId = ConfigJson.OptionalInt(root, "bos_token_id", source),
            EosTokenIds = ConfigJson.ReadEos(root, source),
            TorchDtype = ConfigJson.OptionalString(root, "torch_dtype", source) ?? ConfigJson.OptionalString(root, "dtype", source),
            ExplicitHeadDim = ConfigJson.OptionalInt(root, "head_dim", source),
            RopeScaling = RopeScaling.Parse(root, source),
            // Qwen2 and Qwen3 write sliding_window even when use_sliding_window is false, which means no window.
            SlidingWindow = IsQwen(architecture) ? null : ConfigJson.OptionalInt(root, "sliding_window", source),
            QkvBias = architecture == Qwen2Architecture,
            QkNorm = architecture == Qwen3Architecture,
        };
        if (IsQwen(architecture) && ConfigJson.OptionalBool(root, "use_sliding_window", source) == true)
        {
            throw new CheckpointFormatException(source, null, "use_sliding_window is true: Qwen's per-layer sliding window (max_window_layers) is not applied by this runtime.",
                "Use the model with use_sliding_window false (the Qwen2, Qwen2.5 and Qwen3 releases ship it so).");
        }
        if (architecture != Qwen2Architecture && (ConfigJson.OptionalBool(root, "attention_bias", source) == true || ConfigJson.OptionalBool(root, "mlp_bias", source) == true))
        {
            // Llama's and Qwen3's attention_bias biases o_proj too; only Qwen2's fixed q/k/v biases are added.
            throw new CheckpointFormatException(source, null, "attention_bias or mlp_bias is true: this model has biases on its projections, which this runtime's Llama does not add.",
                "Use a model without projection biases, or a Qwen2 config if it is one.");
        }
        config.ValidateFrom(source);
        return config;
    }

    /// <inheritdoc />
    public override string ToJson()
    {
        var o = CommonJson(Architecture switch { "MistralForCausalLM" => "mistral", Qwen2Architecture => "qwen2", Qwen3Architecture => "qwen3", _ => "llama" });
        o["hidden_size"] = HiddenSize;
        o["intermediate_size"] = IntermediateSize;
        o["num_hidden_layers"] = NumHiddenLayers;
        o["num_attention_heads"] = NumAttentionHeads;
        o["num_key_value_heads"] = NumKeyValueHeads;
        o["rms_norm_eps"] = RmsNormEps;
        o["rope_theta"] = RopeTheta;
        if (ExplicitHeadDim is { } hd)
        {
            o["head_dim"] = hd;
        }
        if (SlidingWindow is { } sw)
        {
            o["sliding_window"] = sw;
        }
        if (IsQwen(Architecture))
        {
            o["use_sliding_window"] = false;
        }
        if (RopeScaling is { } scaling)
        {
            o["rope_scaling"] = scaling.ToJsonObject();
        }
        return o.ToJsonString(Indented);
    }

    private static bool IsQwen(string architecture) => architecture is Qwen2Architecture or Qwen3Architecture;

    private protected override void ValidateFrom(string source)
    {
        if (!SupportedArchitectures.Contains(Architecture))
        {
            throw new CheckpointFormatException(source, null, $"architecture '{Architecture}' is not supported.", $"Supported architectures: {string.Join(", ", SupportedArchitectures)}.");
        }
        ValidateCommon(source);
        Positive(NumKeyValueHeads, source, "num_key_value_heads");
        if (ExplicitHeadDim is { } hd)
        {
            Positive(hd, source, "head_dim");
        }
        else if (HiddenSize % NumAttentionHeads != 0)
        {
            throw new CheckpointFormatException(source, null, $"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}.", "Fix config.json or give head_dim explicitly.");
        }
        if (HeadDim % 2 != 0)
        {
            throw new CheckpointFormatException(source, null, $"head_dim {HeadDim} is odd; RoPE rotates pairs of dimensions.", "Fix config.json.");
        }
        if (NumKeyValueHeads > NumAttentionHeads || NumAttentionHeads % NumKeyValueHeads != 0)
        {
            throw new CheckpointFormatException(source, null, $"num_attention_heads {NumAttentionHeads} is not a multiple of num_key_value_heads {NumKeyValueHeads}.", "Grouped-query attention shares each key/value head among a whole number of query heads; fix config.json.");
        }
        if (!(RmsNormEps > 0) || !double.IsFinite(RmsNormEps))
        {
            throw new CheckpointFormatException(source, null, $"rms_norm_eps = {RmsNormEps.ToString(CultureInfo.InvariantCulture)}; it must be a positive finite number.", "Fix config.json.");
        }
        if (!(RopeTheta > 0) || !double.IsFinite(RopeTheta))
        {
            throw new CheckpointFormatException(source, null, $"rope_theta = {RopeTheta.ToString(CultureInfo.InvariantCulture)}; it must be a positive finite number.", "Fix config.json.");
        }
        RopeScaling?.Validate(source);
        if (QkvBias != (Architecture == Qwen2Architecture))
        {
            throw new CheckpointFormatException(source, null, $"q/k/v biases are {(QkvBias ? "on" : "off")} for architecture '{Architecture}'; only Qwen2 has them.", "Fix the configuration.");
        }
        if (QkNorm != (Architecture == Qwen3Architecture))
        {
            throw new CheckpointFormatException(source, null, $"q/k norms are {(QkNorm ? "on" : "off")} for architecture '{Architecture}'; only Qwen3 has them.", "Fix the configuration.");
        }
        if (SlidingWindow is { } window && window < 0)
        {
            throw new CheckpointFormatException(source, null, $"sliding_window = {window}; it must be positive (or null/0 for none).", "Fix config.json.");
        }
    }
}
