using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;

namespace LlamaChat;

/// <summary>The parsed command line.</summary>
internal sealed record ChatOptions
{
    public string? Model { get; init; }

    public string? Tokenizer { get; init; }

    public string? Prompt { get; init; }

    public int MaxTokens { get; init; } = 128;

    /// <summary>--ctx-size: tokens the context holds; 0 for the default.</summary>
    public int ContextSize { get; init; }

    /// <summary>--hbm: the simulated NPU's HBM, "2GiB", "512MiB" or a number of GiB (parsed by <see cref="ChatApp.ParseHbm"/>).</summary>
    public string Hbm { get; init; } = "2GiB";

    public float Temperature { get; init; } = 0.8f;

    public float TopP { get; init; } = 0.9f;

    public int TopK { get; init; }

    public ulong Seed { get; init; } = 42;

    public float MinP { get; init; }

    public float RepeatPenalty { get; init; } = 1f;

    public int RepeatLastN { get; init; } = 64;

    public float FrequencyPenalty { get; init; }

    public float PresencePenalty { get; init; }

    /// <summary>Stop strings (--stop, repeatable).</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    public bool NoCc { get; init; }

    /// <summary>--weights: the device precision of the weight matrices; null (auto) for what the checkpoint stores (<see cref="CheckpointPrecisions.Stored"/>).</summary>
    public WeightPrecision? Weights { get; init; }

    /// <summary>--kv-cache: the KV cache's element type on the device.</summary>
    public KvCachePrecision KvCache { get; init; } = CausalLMOptions.DefaultKvCachePrecision;

    public ExecutionMode Mode { get; init; } = ExecutionMode.Graph;

    public string? Transcript { get; init; }

    public string? Attack { get; init; }

    public bool Raw { get; init; }

    /// <summary>--chat-template: a .jinja file or a tokenizer_config.json whose template replaces the model folder's.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>--chat-template-kwargs: a JSON object of extra chat-template variables (e.g. {"enable_thinking": false}), as llama.cpp's server takes them.</summary>
    public string? ChatTemplateKwargs { get; init; }

    /// <summary>--system: the system message put first in the chat template's messages.</summary>
    public string? System { get; init; }

    /// <summary>--server: the remote AscendCC server's URL; null runs every party here.</summary>
    public string? Server { get; init; }

    /// <summary>--manufacturer: the folder of the manufacturer's public files (with --server).</summary>
    public string? Manufacturer { get; init; }

    /// <summary>--require-model: the model's graph measurement in hex (with --server).</summary>
    public string? RequireModel { get; init; }

    /// <summary>--device: the server's NPU index (with --server).</summary>
    public int Device { get; init; }

    /// <summary>--package: the package to be placed with (with --server).</summary>
    public string? Package { get; init; }

    public bool RebuildDemo { get; init; }

    public bool Quiet { get; init; }

    public bool Verbose { get; init; }

    public SamplingOptions Sampling => new(Temperature, TopK, TopP, Seed, MinP, RepeatPenalty, RepeatLastN, FrequencyPenalty, PresencePenalty);
}
