using System.Globalization;
using System.Text.Json;

namespace AscendCC.Runtime.Models;

/// <summary>
/// The hyperparameters of a Llama-family decoder (Llama 2/3, Mistral), as in a Hugging Face
/// <c>config.json</c>. Names follow the Hugging Face fields; <see cref="Validate"/> checks that they agree.
/// </summary>
public sealed record LlamaConfig
{
    /// <summary>Architectures this runtime can run: all share the Llama decoder block.</summary>
    public static IReadOnlyList<string> SupportedArchitectures { get; } = ["LlamaForCausalLM", "MistralForCausalLM"];

    /// <summary>model_type values matching <see cref="SupportedArchitectures"/>.</summary>
    public static IReadOnlyList<string> SupportedModelTypes { get; } = ["llama", "mistral"];

    /// <summary>The architecture (first entry of "architectures", or derived from model_type).</summary>
    public required string Architecture { get; init; }

    /// <summary>"model_type", e.g. "llama".</summary>
    public string? ModelType { get; init; }

    /// <summary>dim: width of the residual stream.</summary>
    public required int HiddenSize { get; init; }

    /// <summary>hidden_dim: width of the SiLU-gated MLP.</summary>
    public required int IntermediateSize { get; init; }

    /// <summary>n_layers.</summary>
    public required int NumHiddenLayers { get; init; }

    /// <summary>n_heads: query heads.</summary>
    public required int NumAttentionHeads { get; init; }

    /// <summary>n_kv_heads: key/value heads (grouped-query attention when fewer than query heads).</summary>
    public required int NumKeyValueHeads { get; init; }

    /// <summary>vocab_size.</summary>
    public required int VocabSize { get; init; }

    /// <summary>seq_len: the longest context the model was trained for.</summary>
    public required int MaxPositionEmbeddings { get; init; }

    /// <summary>Epsilon inside RMSNorm's square root.</summary>
    public double RmsNormEps { get; init; } = 1e-6;

    /// <summary>RoPE base frequency theta.</summary>
    public double RopeTheta { get; init; } = 10000.0;

    /// <summary>True when the classifier (lm_head) shares the token embedding matrix.</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>Beginning-of-sequence token id, when given.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>End-of-sequence token ids (Llama 3 lists several); empty when not given.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>"torch_dtype" as written (e.g. "float32", "bfloat16"), when given.</summary>
    public string? TorchDtype { get; init; }

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
    public int HeadDim => ExplicitHeadDim ?? (NumAttentionHeads > 0 ? HiddenSize / NumAttentionHeads : 0);

    /// <summary>kv_dim: num_key_value_heads * head_dim, the width of k_proj and v_proj.</summary>
    public int KeyValueDim => NumKeyValueHeads * HeadDim;

    /// <summary>Reads and validates a Hugging Face config.json.</summary>
    public static LlamaConfig Load(string configPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(configPath);
        configPath = Path.GetFullPath(configPath);
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException($"config.json not found: {configPath}. A Hugging Face model folder needs its config.json beside the weights.", configPath);
        }
        return Parse(File.ReadAllText(configPath), configPath);
    }

    /// <summary>Parses and validates config.json text; <paramref name="source"/> names it in errors.</summary>
    public static LlamaConfig Parse(string json, string source = "config.json")
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(source, null, $"is not valid JSON ({e.Message}).", "Fix or re-download config.json.", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointFormatException(source, null, "is not a JSON object.", "Fix or re-download config.json.");
            }
            string? modelType = OptionalString(root, "model_type", source);
            string architecture = ReadArchitecture(root, modelType, source);
            int heads = RequiredInt(root, "num_attention_heads", source);
            var config = new LlamaConfig
            {
                Architecture = architecture,
                ModelType = modelType,
                HiddenSize = RequiredInt(root, "hidden_size", source),
                IntermediateSize = RequiredInt(root, "intermediate_size", source),
                NumHiddenLayers = RequiredInt(root, "num_hidden_layers", source),
                NumAttentionHeads = heads,
                NumKeyValueHeads = OptionalInt(root, "num_key_value_heads", source) ?? heads,
                VocabSize = RequiredInt(root, "vocab_size", source),
                MaxPositionEmbeddings = RequiredInt(root, "max_position_embeddings", source),
                RmsNormEps = OptionalDouble(root, "rms_norm_eps", source) ?? 1e-6,
                RopeTheta = OptionalDouble(root, "rope_theta", source) ?? 10000.0,
                TieWordEmbeddings = OptionalBool(root, "tie_word_embeddings", source) ?? false,
                BosTokenId = OptionalInt(root, "bos_token_id", source),
                EosTokenIds = ReadEos(root, source),
                TorchDtype = OptionalString(root, "torch_dtype", source) ?? OptionalString(root, "dtype", source),
                ExplicitHeadDim = OptionalInt(root, "head_dim", source),
                RopeScaling = RopeScaling.Parse(root, source),
                SlidingWindow = OptionalInt(root, "sliding_window", source),
            };
            config.ValidateFrom(source);
            return config;
        }
    }

    /// <summary>Checks that the hyperparameters are positive and consistent; throws naming the field and the fix.</summary>
    public void Validate() => ValidateFrom("config");

    /// <summary>The configuration as Hugging Face config.json text (the fields this runtime reads).</summary>
    public string ToJson()
    {
        var o = new System.Text.Json.Nodes.JsonObject
        {
            ["architectures"] = new System.Text.Json.Nodes.JsonArray(Architecture),
            ["model_type"] = ModelType ?? (Architecture == "MistralForCausalLM" ? "mistral" : "llama"),
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["vocab_size"] = VocabSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["tie_word_embeddings"] = TieWordEmbeddings,
        };
        if (BosTokenId is { } bos)
        {
            o["bos_token_id"] = bos;
        }
        if (EosTokenIds.Count == 1)
        {
            o["eos_token_id"] = EosTokenIds[0];
        }
        else if (EosTokenIds.Count > 1)
        {
            o["eos_token_id"] = new System.Text.Json.Nodes.JsonArray(EosTokenIds.Select(e => (System.Text.Json.Nodes.JsonNode?)e).ToArray());
        }
        if (TorchDtype is not null)
        {
            o["torch_dtype"] = TorchDtype;
        }
        if (ExplicitHeadDim is { } hd)
        {
            o["head_dim"] = hd;
        }
        if (SlidingWindow is { } sw)
        {
            o["sliding_window"] = sw;
        }
        if (RopeScaling is { } scaling)
        {
            o["rope_scaling"] = scaling.ToJsonObject();
        }
        return o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }

    private void ValidateFrom(string source)
    {
        void Positive(int value, string field)
        {
            if (value <= 0)
            {
                throw new CheckpointFormatException(source, null, $"{field} = {value}; it must be positive.", "Fix config.json.");
            }
        }
        if (!SupportedArchitectures.Contains(Architecture))
        {
            throw new CheckpointFormatException(source, null, $"architecture '{Architecture}' is not supported.", $"Supported architectures: {string.Join(", ", SupportedArchitectures)}.");
        }
        Positive(HiddenSize, "hidden_size");
        Positive(IntermediateSize, "intermediate_size");
        Positive(NumHiddenLayers, "num_hidden_layers");
        Positive(NumAttentionHeads, "num_attention_heads");
        Positive(NumKeyValueHeads, "num_key_value_heads");
        Positive(VocabSize, "vocab_size");
        Positive(MaxPositionEmbeddings, "max_position_embeddings");
        if (ExplicitHeadDim is { } hd)
        {
            Positive(hd, "head_dim");
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
        if (SlidingWindow is { } window && window < 0)
        {
            throw new CheckpointFormatException(source, null, $"sliding_window = {window}; it must be positive (or null/0 for none).", "Fix config.json.");
        }
        if (BosTokenId is { } bos && (bos < 0 || bos >= VocabSize))
        {
            throw new CheckpointFormatException(source, null, $"bos_token_id {bos} is outside the vocabulary [0, {VocabSize}).", "Fix config.json.");
        }
        foreach (int eos in EosTokenIds)
        {
            if (eos < 0 || eos >= VocabSize)
            {
                throw new CheckpointFormatException(source, null, $"eos_token_id {eos} is outside the vocabulary [0, {VocabSize}).", "Fix config.json.");
            }
        }
    }

    private static string ReadArchitecture(JsonElement root, string? modelType, string source)
    {
        if (root.TryGetProperty("architectures", out var archs) && archs.ValueKind == JsonValueKind.Array && archs.GetArrayLength() > 0)
        {
            var names = archs.EnumerateArray().Select(a => a.ValueKind == JsonValueKind.String ? a.GetString()! : a.GetRawText()).ToList();
            string? supported = names.FirstOrDefault(n => SupportedArchitectures.Contains(n));
            if (supported is null)
            {
                throw new CheckpointFormatException(source, null, $"architectures [{string.Join(", ", names)}] name no supported architecture.", $"Supported architectures: {string.Join(", ", SupportedArchitectures)} (model_type {string.Join(" or ", SupportedModelTypes)}).");
            }
            return supported;
        }
        int index = modelType is null ? -1 : SupportedModelTypes.ToList().IndexOf(modelType);
        if (index < 0)
        {
            throw new CheckpointFormatException(source, null, modelType is null ? "has neither \"architectures\" nor \"model_type\"." : $"model_type '{modelType}' is not supported.", $"Supported architectures: {string.Join(", ", SupportedArchitectures)} (model_type {string.Join(" or ", SupportedModelTypes)}).");
        }
        return SupportedArchitectures[index];
    }

    private static int[] ReadEos(JsonElement root, string source)
    {
        if (!root.TryGetProperty("eos_token_id", out var e) || e.ValueKind == JsonValueKind.Null)
        {
            return [];
        }
        if (e.ValueKind == JsonValueKind.Array)
        {
            return e.EnumerateArray().Select(x => x.TryGetInt32(out int v) ? v : throw Bad(source, "eos_token_id", "a list of integers")).ToArray();
        }
        return [e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int one) ? one : throw Bad(source, "eos_token_id", "an integer or a list of integers")];
    }

    private static int RequiredInt(JsonElement root, string field, string source) =>
        OptionalInt(root, field, source) ?? throw new CheckpointFormatException(source, null, $"lacks the required field \"{field}\".", "Add it to config.json (see the model card).");

    private static int? OptionalInt(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Bad(source, field, "an integer");
    }

    private static double? OptionalDouble(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Bad(source, field, "a number");
    }

    private static bool? OptionalBool(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(source, field, "true or false"),
        };
    }

    private static string? OptionalString(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Bad(source, field, "a string");
    }

    private static CheckpointFormatException Bad(string source, string field, string expected) =>
        new(source, null, $"field \"{field}\" is not {expected}.", "Fix config.json.");
}
