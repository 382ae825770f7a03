using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using static TorchSharp.torch;

namespace AscendCC.TorchSharpBackend;

/// <summary>How <see cref="torch_npu.compile"/> lowers a module.</summary>
public sealed record NpuCompileOptions
{
    /// <summary>Target device, "npu:N"; null means the current device.</summary>
    public string? Device { get; init; }

    /// <summary>
    /// torch_npu's jit_compile: false runs the program op by op (eager compileAndExecute), true loads
    /// it once as a task list (graph executeModel). Null follows <see cref="torch_npu.npu.set_compile_mode"/>.
    /// </summary>
    public bool? JitCompile { get; init; }

    /// <summary>
    /// Run the module's own CPU forward on probe inputs and refuse the compile when the device result
    /// differs by more than <see cref="SelfCheckTolerance"/>. Default true.
    /// </summary>
    public bool SelfCheck { get; init; } = true;

    /// <summary>
    /// Largest accepted absolute difference in the self-check. Null picks by weight dtype: 1e-3 for
    /// float32 weights, 5e-2 for float16, 0.25 for bfloat16 (the CPU forward rounds its activations to
    /// the weights' dtype, the device keeps them in float32).
    /// </summary>
    public double? SelfCheckTolerance { get; init; }

    /// <summary>Seed of the self-check's probe inputs.</summary>
    public int ProbeSeed { get; init; } = 1234;

    /// <summary>Standard modules: most rows (flattened leading dimensions) one device pass takes; larger inputs run in chunks. Default 256.</summary>
    public int MaxBatchRows { get; init; } = 256;

    /// <summary>Standard modules: input width, needed only when no module in the chain fixes it (e.g. a bare Softmax).</summary>
    public long? InputFeatures { get; init; }

    /// <summary>Language models: the configuration (a LlamaConfig or GptNeoConfig; its family must be the module's). Either this or <see cref="ConfigPath"/> is required.</summary>
    public ModelConfig? Config { get; init; }

    /// <summary>Language models: path of a Hugging Face config.json.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>
    /// Llama family: the RoPE pairing the module's q/k projections use. Hugging Face modules rotate
    /// halves (the default); Meta/llama2.c-style modules rotate interleaved pairs.
    /// </summary>
    public RopeConvention Rope { get; init; } = RopeConvention.Half;

    /// <summary>Language models: context the device KV cache holds; 0 means the configuration's maximum.</summary>
    public int MaxContext { get; init; }

    /// <summary>Language models: most tokens one forward pass takes (the prefill chunk); 0 means <see cref="MaxContext"/>.</summary>
    public int MaxBatchTokens { get; init; }

    /// <summary>Language models: precision of the weight matrices in HBM; null keeps the parameters' dtype.</summary>
    public WeightPrecision? WeightPrecision { get; init; }

    /// <summary>
    /// Language models: element type of the device KV cache; null means F32. A compiled module answers
    /// for the module's logits (the self-check compares them within the weights' tolerance), and an f16
    /// cache's rounding moves logits by a few thousandths within a few positions, so unlike
    /// <see cref="CausalLMOptions.DefaultKvCachePrecision"/> the half cache is asked for here, not
    /// assumed; the self-check's default tolerance then widens by what the cache's rounding adds.
    /// </summary>
    public KvCachePrecision? KvCachePrecision { get; init; }

    /// <summary>Language models: number of probe token ids in the self-check. Default 6.</summary>
    public int ProbeTokens { get; init; } = 6;

    /// <summary>
    /// Language models: called before and after the self-check's CPU forward, for modules that keep
    /// state between calls (a KV cache): the probe must start at position 0 and must not leave
    /// positions behind. Stateless modules need nothing.
    /// </summary>
    public Action<nn.Module>? ResetState { get; init; }
}
