using System.Text.Json;
using AscendCC.Runtime.Programs;

namespace AscendCC.Runtime.Models;

/// <summary>
/// The hyperparameters of a decoder-only language model, as in a Hugging Face <c>config.json</c>: the
/// fields every family shares, and per family (<see cref="LlamaConfig"/>, <see cref="GptNeoConfig"/>)
/// the rest. The family is picked from <c>architectures</c> (or <c>model_type</c>) by
/// <see cref="Parse"/>; each family's configuration names its program builder, which turns it into
/// the device program (<see cref="CausalLMProgram.Build"/>).
/// </summary>
public abstract record ModelConfig
{
    /// <summary>Every architecture this runtime can run, across families.</summary>
    public static IReadOnlyList<string> SupportedArchitectures { get; } = [.. LlamaConfig.SupportedArchitectures, .. GptNeoConfig.SupportedArchitectures];

    /// <summary>model_type values matching <see cref="SupportedArchitectures"/>.</summary>
    public static IReadOnlyList<string> SupportedModelTypes { get; } = [.. LlamaConfig.SupportedModelTypes, .. GptNeoConfig.SupportedModelTypes];

    /// <summary>The architecture (first supported entry of "architectures", or derived from model_type).</summary>
    public required string Architecture { get; init; }

    /// <summary>"model_type", e.g. "llama" or "gpt_neo".</summary>
    public string? ModelType { get; init; }

    /// <summary>dim: width of the residual stream.</summary>
    public required int HiddenSize { get; init; }

    /// <summary>hidden_dim: width of the MLP's inner layer.</summary>
    public required int IntermediateSize { get; init; }

    /// <summary>n_layers.</summary>
    public required int NumHiddenLayers { get; init; }

    /// <summary>n_heads: query heads.</summary>
    public required int NumAttentionHeads { get; init; }

    /// <summary>vocab_size.</summary>
    public required int VocabSize { get; init; }

    /// <summary>seq_len: the longest context the model was trained for (for learned positions, the table's length).</summary>
    public required int MaxPositionEmbeddings { get; init; }

    /// <summary>True when the classifier (lm_head) shares the token embedding matrix.</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>Beginning-of-sequence token id, when given.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>End-of-sequence token ids (Llama 3 lists several); empty when not given.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>"torch_dtype" as written (e.g. "float32", "bfloat16"), when given.</summary>
    public string? TorchDtype { get; init; }

    /// <summary>head_size: width of one attention head.</summary>
    public virtual int HeadDim => NumAttentionHeads > 0 ? HiddenSize / NumAttentionHeads : 0;

    /// <summary>Key/value heads (fewer than query heads under grouped-query attention).</summary>
    public virtual int KeyValueHeads => NumAttentionHeads;

    /// <summary>The family's name for people ("Llama", "GPT-Neo").</summary>
    public abstract string Family { get; }

    /// <summary>Hugging Face name of the token embedding (the classifier too when <see cref="TieWordEmbeddings"/>).</summary>
    public abstract string EmbeddingTensorName { get; }

    /// <summary>Hugging Face name of an untied classifier.</summary>
    public abstract string LmHeadTensorName { get; }

    /// <summary>Every tensor a model with this configuration needs, by Hugging Face name, with its shape ([out, in] for linears).</summary>
    public abstract IEnumerable<(string Name, long[] Shape)> ExpectedTensors();

    /// <summary>The configuration as Hugging Face config.json text (the fields this runtime reads).</summary>
    public abstract string ToJson();

    /// <summary>Checks that the hyperparameters are positive and consistent; throws naming the field and the fix.</summary>
    public void Validate() => ValidateFrom("config");

    /// <summary>Validation with <paramref name="source"/> named in errors.</summary>
    private protected abstract void ValidateFrom(string source);

    /// <summary>Emits the family's forward pass (embedding, the layers, the final norm) into <paramref name="b"/>: its program builder.</summary>
    internal abstract void BuildForward(CausalLMProgramBuilder b);

    /// <summary>Reads and validates a Hugging Face config.json of any supported family.</summary>
    public static ModelConfig Load(string configPath) => Parse(ReadFile(configPath), Path.GetFullPath(configPath));

    /// <summary>Parses and validates config.json text of any supported family; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="CheckpointFormatException">Malformed, an unsupported architecture, or inconsistent fields.</exception>
    public static ModelConfig Parse(string json, string source = "config.json")
    {
        using JsonDocument doc = ConfigJson.ParseDocument(json, source);
        JsonElement root = doc.RootElement;
        string? modelType = ConfigJson.OptionalString(root, "model_type", source);
        string architecture = ReadArchitecture(root, modelType, source, SupportedArchitectures, SupportedModelTypes);
        return GptNeoConfig.SupportedArchitectures.Contains(architecture)
            ? GptNeoConfig.FromJson(root, architecture, modelType, source)
            : LlamaConfig.FromJson(root, architecture, modelType, source);
    }

    private protected static string ReadFile(string configPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(configPath);
        configPath = Path.GetFullPath(configPath);
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException($"config.json not found: {configPath}. A Hugging Face model folder needs its config.json beside the weights.", configPath);
        }
        return File.ReadAllText(configPath);
    }

    /// <summary>The first of <paramref name="supported"/> that "architectures" names, else the one "model_type" names.</summary>
    private protected static string ReadArchitecture(JsonElement root, string? modelType, string source, IReadOnlyList<string> supported, IReadOnlyList<string> modelTypes)
    {
        string fix = $"Supported architectures: {string.Join(", ", supported)} (model_type {string.Join(" or ", modelTypes)}).";
        if (root.TryGetProperty("architectures", out var archs) && archs.ValueKind == JsonValueKind.Array && archs.GetArrayLength() > 0)
        {
            var names = archs.EnumerateArray().Select(a => a.ValueKind == JsonValueKind.String ? a.GetString()! : a.GetRawText()).ToList();
            return names.FirstOrDefault(supported.Contains)
                ?? throw new CheckpointFormatException(source, null, $"architectures [{string.Join(", ", names)}] name no supported architecture.", fix);
        }
        int index = modelType is null ? -1 : modelTypes.ToList().IndexOf(modelType);
        if (index < 0)
        {
            throw new CheckpointFormatException(source, null, modelType is null ? "has neither \"architectures\" nor \"model_type\"." : $"model_type '{modelType}' is not supported.", fix);
        }
        return supported[index];
    }

    /// <summary>Checks shared by every family.</summary>
    private protected void ValidateCommon(string source)
    {
        Positive(HiddenSize, source, "hidden_size");
        Positive(IntermediateSize, source, "intermediate_size");
        Positive(NumHiddenLayers, source, "num_hidden_layers");
        Positive(NumAttentionHeads, source, "num_attention_heads");
        Positive(VocabSize, source, "vocab_size");
        Positive(MaxPositionEmbeddings, source, "max_position_embeddings");
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

    private protected static void Positive(int value, string source, string field)
    {
        if (value <= 0)
        {
            throw new CheckpointFormatException(source, null, $"{field} = {value}; it must be positive.", "Fix config.json.");
        }
    }

    /// <summary>The shared fields as config.json properties, to which a family adds its own.</summary>
    private protected System.Text.Json.Nodes.JsonObject CommonJson(string defaultModelType)
    {
        var o = new System.Text.Json.Nodes.JsonObject
        {
            ["architectures"] = new System.Text.Json.Nodes.JsonArray(Architecture),
            ["model_type"] = ModelType ?? defaultModelType,
            ["vocab_size"] = VocabSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
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
        return o;
    }

    private protected static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
