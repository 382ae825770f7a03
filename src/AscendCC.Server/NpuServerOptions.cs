using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;

namespace AscendCC.Server;

/// <summary>The host's configuration (section <c>Npu</c> of appsettings, environment <c>Npu__*</c> or command line <c>--Npu:*</c>).</summary>
public sealed class NpuServerOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Npu";

    /// <summary>How many NPUs to boot (at most the number of fuse images the hardware source provides). Default 1.</summary>
    public int DeviceCount { get; set; } = 1;

    /// <summary>HBM capacity of each simulated NPU in bytes. Default 1 GiB.</summary>
    public long HbmCapacity { get; set; } = 1L << 30;

    /// <summary>Folder where uploaded packages and deployment descriptors are stored. Default <c>model-store</c>.</summary>
    public string ModelStore { get; set; } = "model-store";

    /// <summary>Graph (executeModel) or eager inference. Default graph.</summary>
    public ExecutionMode Mode { get; set; } = ExecutionMode.Graph;

    /// <summary>Largest package upload accepted, in bytes. Default 16 GiB.</summary>
    public long MaxUploadBytes { get; set; } = 16L << 30;

    /// <summary>
    /// CC on (default): every NPU boots with confidential computing on and the host serves only the
    /// confidential protocol (attestation, channels, key release, packages, sealed records). CC off: the
    /// NPUs boot without it, load the plaintext model folder <see cref="Model"/>, and the host serves
    /// OpenAI's <c>/v1/chat/completions</c> and <c>/v1/models</c> instead; those endpoints never exist with CC on.
    /// </summary>
    public bool Confidential { get; set; } = true;

    /// <summary>CC off only: the model every NPU loads at startup: a Hugging Face folder (config.json, safetensors, tokenizer) or a llama.cpp .gguf.</summary>
    public string? Model { get; set; }

    /// <summary>
    /// CC off only: the precision of <see cref="Model"/>'s weight matrices on the device (F32, F16, BF16,
    /// Q8_0, Q4_0, Q4_K); null (the default) for what the checkpoint stores
    /// (<see cref="Runtime.Inference.CheckpointPrecisions.Stored"/>: a Q4_K_M .gguf in Q4_K). With CC on the
    /// model provider chooses it in the package's deployment.
    /// </summary>
    public Runtime.Inference.WeightPrecision? Weights { get; set; }

    /// <summary>
    /// CC off only: the KV cache's element type on the device (F32, F16, BF16, Q8_0 or Q4_0; default F16). Q8_0
    /// and Q4_0, llama.cpp's <c>-ctk/-ctv q8_0</c> and <c>q4_0</c>, need a head dimension that is a multiple of 32. With CC on the
    /// model provider chooses it in the package's deployment.
    /// </summary>
    public Runtime.Inference.KvCachePrecision KvCache { get; set; } = Runtime.Inference.CausalLMOptions.DefaultKvCachePrecision;

    /// <summary>CC off only: the model id <c>/v1/models</c> reports. Default: the model folder's name.</summary>
    public string? ModelId { get; set; }

    /// <summary>CC off only: tokens of context per NPU; 0 for the model's maximum (at most 2048).</summary>
    public int MaxContext { get; set; }

    /// <summary>
    /// CC off only: replies each NPU decodes together (continuous batching: requests join and leave
    /// between steps, and each step reads every weight once for all of them); each has a KV cache of
    /// <see cref="MaxContext"/> tokens in HBM. 1 answers one request at a time. Default 4.
    /// </summary>
    public int MaxSequences { get; set; } = 4;
}
