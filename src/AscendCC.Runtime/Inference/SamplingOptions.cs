namespace AscendCC.Runtime.Inference;

/// <summary>How the next token is chosen, on the device.</summary>
/// <param name="Temperature">0 for greedy (argmax).</param>
/// <param name="TopK">Keep the k most likely tokens; 0 = off.</param>
/// <param name="TopP">Nucleus threshold; 1 = off.</param>
/// <param name="Seed">Seed of the device's generator.</param>
public sealed record SamplingOptions(float Temperature = 0f, int TopK = 0, float TopP = 1f, ulong Seed = 42)
{
    /// <summary>Greedy decoding.</summary>
    public static SamplingOptions Greedy { get; } = new();
}
