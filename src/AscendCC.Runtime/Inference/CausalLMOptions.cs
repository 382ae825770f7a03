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

    /// <summary>Element type the matrix weights are kept in on the device. Default F32.</summary>
    public WeightPrecision WeightPrecision { get; init; } = WeightPrecision.F32;
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
}
