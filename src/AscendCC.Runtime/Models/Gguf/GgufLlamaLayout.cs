using AscendCC.Runtime.Llama;

namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// How llama.cpp's "llama", "qwen2" and "qwen3" architectures map onto the runtime's Llama: metadata keys to
/// <see cref="LlamaConfig"/>, GGUF tensor names to the Hugging Face names the program builder uses.
/// </summary>
/// <remarks>
/// llama.cpp's converter permutes Hugging Face q/k rows back into Meta's interleaved-pair order, so a
/// GGUF Llama's q/k weights are <see cref="RopeConvention.Interleaved"/>, as llama2.c's are.
/// </remarks>
public static class GgufLlamaLayout
{
    /// <summary>The architectures read (<c>general.architecture</c>).</summary>
    public static IReadOnlyList<string> SupportedArchitectures { get; } = ["llama", "qwen2", "qwen3"];

    /// <summary>
    /// How <paramref name="architecture"/>'s q/k rows are paired for RoPE in a GGUF file: llama.cpp's
    /// converter permutes a Llama's into Meta's interleaved order, and leaves Qwen2's and Qwen3's
    /// (NeoX-style rotate_half) as they are.
    /// </summary>
    public static RopeConvention RopeConventionOf(string architecture) =>
        architecture is LlamaConfig.Qwen2Architecture or LlamaConfig.Qwen3Architecture ? RopeConvention.Half : RopeConvention.Interleaved;

    /// <summary>The GGUF <c>general.architecture</c> of a Llama-family configuration.</summary>
    public static string ArchitectureOf(LlamaConfig config) => config.Architecture switch
    {
        LlamaConfig.Qwen2Architecture => "qwen2",
        LlamaConfig.Qwen3Architecture => "qwen3",
        _ => "llama",
    };

    private static readonly (string Gguf, string Runtime)[] GlobalNames =
    [
        ("token_embd.weight", LlamaTensorNames.Embedding),
        ("output_norm.weight", LlamaTensorNames.FinalNorm),
        ("output.weight", LlamaTensorNames.LmHead),
    ];

    private static readonly (string Gguf, Func<int, string> Runtime)[] LayerNames =
    [
        ("attn_norm.weight", LlamaTensorNames.InputLayerNorm),
        ("attn_q.weight", LlamaTensorNames.QProj),
        ("attn_k.weight", LlamaTensorNames.KProj),
        ("attn_v.weight", LlamaTensorNames.VProj),
        ("attn_q.bias", LlamaTensorNames.QBias),
        ("attn_k.bias", LlamaTensorNames.KBias),
        ("attn_v.bias", LlamaTensorNames.VBias),
        ("attn_q_norm.weight", LlamaTensorNames.QNorm),
        ("attn_k_norm.weight", LlamaTensorNames.KNorm),
        ("attn_output.weight", LlamaTensorNames.OProj),
        ("ffn_norm.weight", LlamaTensorNames.PostAttentionLayerNorm),
        ("ffn_gate.weight", LlamaTensorNames.GateProj),
        ("ffn_up.weight", LlamaTensorNames.UpProj),
        ("ffn_down.weight", LlamaTensorNames.DownProj),
    ];

    /// <summary>The runtime (Hugging Face) name of a GGUF tensor name, or null when it is not a Llama weight.</summary>
    public static string? ToRuntimeName(string ggufName)
    {
        ArgumentNullException.ThrowIfNull(ggufName);
        foreach (var (gguf, runtime) in GlobalNames)
        {
            if (gguf == ggufName)
            {
                return runtime;
            }
        }
        if (ggufName.StartsWith("blk.", StringComparison.Ordinal))
        {
            int dot = ggufName.IndexOf('.', 4);
            if (dot > 4 && int.TryParse(ggufName.AsSpan(4, dot - 4), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int layer))
            {
                string rest = ggufName[(dot + 1)..];
                foreach (var (gguf, runtime) in LayerNames)
                {
                    if (gguf == rest)
                    {
                        return runtime(layer);
                    }
                }
            }
        }
        return null;
    }

    /// <summary>The GGUF name of a runtime (Hugging Face) Llama tensor name, or null when it has none.</summary>
    public static string? ToGgufName(string runtimeName, int layers)
    {
        ArgumentNullException.ThrowIfNull(runtimeName);
        foreach (var (gguf, runtime) in GlobalNames)
        {
            if (runtime == runtimeName)
            {
                return gguf;
            }
        }
        for (int l = 0; l < layers; l++)
        {
            foreach (var (gguf, runtime) in LayerNames)
            {
                if (runtime(l) == runtimeName)
                {
                    return $"blk.{l}.{gguf}";
                }
            }
        }
        return null;
    }

    /// <summary>Reads the Llama configuration from <paramref name="file"/>'s metadata; an unknown architecture is refused.</summary>
    public static LlamaConfig ReadConfig(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var m = file.Metadata;
        string architecture = m.GetString("general.architecture")
            ?? throw new CheckpointFormatException(file.Path, null, "has no general.architecture metadata.", "The file is not a llama.cpp model GGUF; convert it with llama.cpp's convert_hf_to_gguf.py.");
        if (!SupportedArchitectures.Contains(architecture))
        {
            throw new CheckpointFormatException(file.Path, null, $"is a GGUF model of architecture '{architecture}', which this runtime does not run; supported: {string.Join(", ", SupportedArchitectures)}.",
                "Use a Llama-, Qwen2- or Qwen3-architecture GGUF (Llama 2/3, TinyLlama, Mistral converted as llama, Qwen2/2.5, dense Qwen3…), or the model's Hugging Face folder if its family is supported.");
        }
        // The architecture's own metadata prefix: llama.embedding_length, qwen2.embedding_length…
        string a = architecture;
        int hidden = m.RequireInt32($"{a}.embedding_length");
        int heads = m.RequireInt32($"{a}.attention.head_count");
        double theta = m.GetDouble($"{a}.rope.freq_base") ?? 10000.0;
        int rotaryDim = m.GetInt32($"{a}.rope.dimension_count") ?? m.GetInt32($"{a}.attention.key_length") ?? (heads > 0 ? hidden / heads : 0);
        int? keyLength = m.GetInt32($"{a}.attention.key_length");
        GgufArray? tokens = m.GetArray("tokenizer.ggml.tokens");
        int vocab = tokens?.Count
            ?? m.GetInt32($"{a}.vocab_size")
            ?? (file.FindTensor("token_embd.weight") is { Dimensions.Count: 2 } embd ? (int)embd.Dimensions[1] : 0);
        int? eos = m.GetInt32("tokenizer.ggml.eos_token_id");
        var config = new LlamaConfig
        {
            Architecture = architecture switch { "qwen2" => LlamaConfig.Qwen2Architecture, "qwen3" => LlamaConfig.Qwen3Architecture, _ => "LlamaForCausalLM" },
            ModelType = architecture,
            QkvBias = architecture == "qwen2",
            QkNorm = architecture == "qwen3",
            HiddenSize = hidden,
            IntermediateSize = m.RequireInt32($"{a}.feed_forward_length"),
            NumHiddenLayers = m.RequireInt32($"{a}.block_count"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = m.GetInt32($"{a}.attention.head_count_kv") ?? heads,
            ExplicitHeadDim = keyLength is { } k && heads > 0 && k != hidden / heads ? k : null,
            VocabSize = vocab,
            MaxPositionEmbeddings = m.RequireInt32($"{a}.context_length"),
            RmsNormEps = m.GetDouble($"{a}.attention.layer_norm_rms_epsilon") ?? 1e-5,
            RopeTheta = theta,
            RopeScaling = GgufRopeScaling.Read(file, a, rotaryDim, theta),
            TieWordEmbeddings = file.FindTensor("output.weight") is null,
            BosTokenId = m.GetInt32("tokenizer.ggml.bos_token_id") ?? 1,
            EosTokenIds = [eos ?? 2],
            TorchDtype = "float32",
        };
        try
        {
            config.Validate();
        }
        catch (CheckpointFormatException e)
        {
            throw new CheckpointFormatException(file.Path, null, $"llama metadata is inconsistent: {e.Message}", "The file is malformed; convert it again.", e);
        }
        return config;
    }
}
