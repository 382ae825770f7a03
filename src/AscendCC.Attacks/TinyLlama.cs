using AscendCC.Runtime.Models;

namespace AscendCC.Attacks;

/// <summary>
/// A small Llama with random weights, so that attacks and audits run without the shared model files.
/// The weights are deterministic per seed; their values only need to be distinct enough that a leak
/// of any 32-byte window would be recognisable.
/// </summary>
public static class TinyLlama
{
    /// <summary>A config small enough to load, attest and run a few tokens in milliseconds.</summary>
    public static LlamaConfig Config(int hidden = 32, int layers = 2, int heads = 4, int kvHeads = 2, int intermediate = 64, int vocab = 64) => new()
    {
        Architecture = "LlamaForCausalLM",
        ModelType = "llama",
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        NumKeyValueHeads = kvHeads,
        VocabSize = vocab,
        MaxPositionEmbeddings = 256,
        RmsNormEps = 1e-5,
        BosTokenId = 1,
        EosTokenIds = [2],
    };

    /// <summary>
    /// The model provider's weights for <paramref name="config"/>: every tensor
    /// <see cref="ModelConfig.ExpectedTensors"/> lists (of any family), Gaussian-ish values scaled by 1/sqrt(fan-in)
    /// (norm weights around 1), from a seeded generator.
    /// </summary>
    public static Func<string, TensorData> Weights(ModelConfig config, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(config);
        var tensors = new Dictionary<string, TensorData>(StringComparer.Ordinal);
        var random = new Random(seed);
        foreach ((string name, long[] shape) in config.ExpectedTensors())
        {
            long count = shape.Aggregate(1L, (a, b) => a * b);
            var values = new float[count];
            if (shape.Length == 1)
            {
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = 1f + (float)((random.NextDouble() - 0.5) * 0.2);
                }
            }
            else
            {
                float scale = 1f / MathF.Sqrt(shape[1]);
                for (int i = 0; i < values.Length; i++)
                {
                    // Sum of three uniforms: roughly normal, cheap and deterministic.
                    values[i] = scale * (float)(random.NextDouble() + random.NextDouble() + random.NextDouble() - 1.5) * 2f;
                }
            }
            tensors[name] = TensorData.FromFloat32(name, shape, values);
        }
        return name => tensors.TryGetValue(name, out TensorData? t) ? t : throw new KeyNotFoundException($"the tiny model has no tensor '{name}'");
    }
}
