namespace AscendCC.Runtime.Inference;

/// <summary>How a model is laid out on the device and run.</summary>
public sealed record CausalLMOptions
{
    /// <summary>Eager (op by op) or graph (one task list) execution. Default graph.</summary>
    public ExecutionMode Mode { get; init; } = ExecutionMode.Graph;

    /// <summary>Longest context the KV cache holds; 0 means the model's maximum.</summary>
    public int MaxContext { get; init; }

    /// <summary>Most tokens one forward pass takes (the prefill chunk); 0 means <see cref="MaxContext"/>.</summary>
    public int MaxBatchTokens { get; init; }

    /// <summary>
    /// Sequences the model holds at once (CC off): the KV cache gets one slot per sequence, and
    /// <see cref="CausalLM.CreateBatch"/> decodes them together, each weight read once per step for all of
    /// them (continuous batching). Default 1, the single-sequence program.
    /// </summary>
    public int MaxSequences { get; init; } = 1;

    /// <summary>Element type the matrix weights are kept in on the device. Default F32.</summary>
    public WeightPrecision WeightPrecision { get; init; } = WeightPrecision.F32;

    /// <summary>
    /// A mixed deployment: weight matrices, by tensor name (as <see cref="Models.ModelConfig.ExpectedTensors"/>
    /// names them), kept in another precision than <see cref="WeightPrecision"/> gives them. Null, the
    /// default: <see cref="CausalLM.Load(Acl.NpuRuntime, Models.ModelCheckpoint, CausalLMOptions?)"/>
    /// takes what the checkpoint's storage asks for (<see cref="CheckpointPrecisions.For"/>: the Q6_K and
    /// Q5_K matrices of a Q4_K_M or Q4_K_S file kept in Q8_0 under a 4-bit deployment), and a load
    /// from named tensors uses none. An empty map: every matrix in <see cref="WeightPrecision"/>.
    /// </summary>
    public IReadOnlyDictionary<string, WeightPrecision>? MatrixPrecisions { get; init; }

    /// <summary>
    /// Element type of the KV cache on the device. Default <see cref="DefaultKvCachePrecision"/>. A
    /// confidential deployment carries its own (<see cref="Confidential.ModelDeployment.KvPrecision"/>),
    /// and it is part of the program's measurement.
    /// </summary>
    public KvCachePrecision KvCachePrecision { get; init; } = DefaultKvCachePrecision;

    /// <summary>The default <see cref="KvCachePrecision"/> (see docs/architecture.md, "KV cache precision", for the measurements behind it).</summary>
    public const KvCachePrecision DefaultKvCachePrecision = KvCachePrecision.F16;
}

/// <summary>Precision of the weight matrices in HBM; activations and accumulation are always fp32.</summary>
public enum WeightPrecision
{
    /// <summary>IEEE binary32.</summary>
    F32 = 0,
    /// <summary>IEEE binary16.</summary>
    F16 = 1,
    /// <summary>bfloat16, DaVinci's native half precision.</summary>
    BF16 = 2,
    /// <summary>
    /// llama.cpp's Q8_0: blocks of 32 weights along each row, one f16 scale and 32 int8 each (8.5
    /// bits a weight); the device multiplies it with activations quantized on the fly in int8. F32,
    /// F16 and BF16 checkpoints are quantized on load with llama.cpp's rounding; GGUF Q8_0 tensors
    /// are kept as stored. Every matrix's input width must be a multiple of 32 (the embedding and
    /// the classifier included); norms and biases stay F32.
    /// </summary>
    Q8_0 = 3,
    /// <summary>
    /// llama.cpp's Q4_0 for the layers' matrices: blocks of 32 weights, one f16 scale and 32 4-bit
    /// integers each (4.5 bits a weight), multiplied on the device in int8 like Q8_0. The token
    /// embedding and the classifier are kept in Q8_0, as llama.cpp keeps its output matrix in a
    /// 6-bit or wider type: one 4-bit step of the classifier moves every logit. Quantized on load with
    /// llama.cpp's rounding, or kept as stored from GGUF Q4_0 tensors; widths must be multiples of 32.
    /// </summary>
    Q4_0 = 4,
    /// <summary>
    /// llama.cpp's Q4_K for the layers' matrices: super-blocks of 256 weights with an f16 scale and
    /// min, and a 6-bit scale and min per block of 32 (4.5 bits a weight in GGUF; 4.75 on the device,
    /// which keeps the scales unpacked), multiplied in int8 like Q4_0. The token embedding and the
    /// classifier are kept in Q8_0, as with <see cref="Q4_0"/>. GGUF Q4_K tensors (Q4_K_M and Q4_K_S
    /// files) are kept as stored; anything else — F32, F16, BF16, and the Q6_K and Q5_K matrices Q4_K_M
    /// and Q4_K_S files keep for some layers — is quantized on load with llama.cpp's rounding
    /// (quantize_row_q4_K_ref). Every layer matrix's input width must be a multiple of 256.
    /// </summary>
    Q4_K = 5,
}
