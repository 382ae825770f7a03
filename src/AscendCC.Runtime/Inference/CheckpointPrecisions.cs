using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Inference;

/// <summary>
/// The matrix precisions a checkpoint's own storage asks for: what <see cref="CausalLM.Load(Acl.NpuRuntime, ModelCheckpoint, CausalLMOptions?)"/>
/// and the provider tool use when <see cref="CausalLMOptions.MatrixPrecisions"/> is not given.
/// </summary>
public static class CheckpointPrecisions
{
    /// <summary>
    /// Under a 4-bit deployment (<see cref="WeightPrecision.Q4_0"/>, <see cref="WeightPrecision.Q4_K"/>), the
    /// layer matrices the file stores in a wider block type — Q5_0, Q5_1, Q5_K, Q6_K or Q8_0 — are kept in Q8_0
    /// rather than requantized to 4 bits. llama.cpp's mixed files choose those types on purpose: a
    /// Q4_K_M keeps attn_v and ffn_down of about half the layers in Q6_K (its use_more_bits), a Q4_K_S
    /// some in Q5_K; requantizing them to 4 bits doubles their rounding error (a 6-bit step is a quarter
    /// of a 4-bit one) where Q8_0 adds a quarter of it, at 8.5 bits a weight instead of 6.56. The token
    /// embedding and the classifier are Q8_0 under these deployments anyway. Empty for any other
    /// precision, and for checkpoints without block types (safetensors, llama2.c, plain GGUF).
    /// </summary>
    public static IReadOnlyDictionary<string, WeightPrecision> For(ModelCheckpoint checkpoint, WeightPrecision precision)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var kept = new SortedDictionary<string, WeightPrecision>(StringComparer.Ordinal);
        if (precision is not (WeightPrecision.Q4_0 or WeightPrecision.Q4_K))
        {
            return kept;
        }
        ModelConfig config = checkpoint.Config;
        foreach ((string name, long[] shape) in config.ExpectedTensors())
        {
            if (shape.Length != 2 || name == config.EmbeddingTensorName || name == config.LmHeadTensorName
                || !checkpoint.Tensors.TryGetValue(name, out CheckpointTensor? tensor))
            {
                continue;
            }
            if (tensor.StoredGgufType is GgufTensorType.Q5_0 or GgufTensorType.Q5_1 or GgufTensorType.Q5_K or GgufTensorType.Q6_K or GgufTensorType.Q8_0)
            {
                kept[name] = WeightPrecision.Q8_0;
            }
        }
        return kept;
    }

    /// <summary>
    /// The deployment precision a checkpoint's own storage suggests: what a llama.cpp user expects a
    /// quantized file to run in. The layer matrices' stored types, weighted by their weights, pick it:
    /// Q8_0, Q4_0 and Q4_K as stored; Q5_0, Q5_1, Q5_K and Q6_K → Q8_0 (the nearest device format that
    /// keeps their bits); Q4_1, IQ4_NL, IQ4_XS, Q3_K and Q2_K → Q4_K (the device's 4-bit format with
    /// scales and mins); plain F16 and BF16 as stored; F32 and anything else F32. While a matrix's input
    /// width is not whole blocks of its format under the pick (<see cref="Misfit"/>, with <see cref="For"/>'s
    /// wider matrices: a Q4_K file's narrow matrices stored in Q8_0 stay Q8_0) it steps wider, Q4_K → Q4_0
    /// → Q8_0 → F32. Pair it with <see cref="For"/> for the matrices a mixed file keeps wider.
    /// </summary>
    public static WeightPrecision Stored(ModelCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ModelConfig config = checkpoint.Config;
        var layers = new List<(long Weights, WeightPrecision Suggests)>();
        foreach ((string name, long[] shape) in config.ExpectedTensors())
        {
            if (shape.Length != 2 || !checkpoint.Tensors.TryGetValue(name, out CheckpointTensor? tensor))
            {
                continue;
            }
            if (name != config.EmbeddingTensorName && name != config.LmHeadTensorName)
            {
                layers.Add((shape[0] * shape[1], Suggests(tensor)));
            }
        }
        if (layers.Count == 0)
        {
            return WeightPrecision.F32;
        }
        WeightPrecision precision = layers.GroupBy(l => l.Suggests).MaxBy(g => g.Sum(l => l.Weights))!.Key;
        while (!Fits(precision))
        {
            precision = precision switch
            {
                WeightPrecision.Q4_K => WeightPrecision.Q4_0,
                WeightPrecision.Q4_0 => WeightPrecision.Q8_0,
                _ => WeightPrecision.F32,
            };
        }
        return precision;

        bool Fits(WeightPrecision p) => Misfit(config, p, For(checkpoint, p)) is null;
    }

    /// <summary>
    /// The deployment precisions whose formats hold every matrix of <paramref name="checkpoint"/> (with
    /// <see cref="For"/>'s wider matrices under a 4-bit one), narrowest first: what a tool can offer when
    /// the one asked for does not fit (<see cref="Misfit"/>).
    /// </summary>
    public static IReadOnlyList<WeightPrecision> Fitting(ModelCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        WeightPrecision[] narrowestFirst = [WeightPrecision.Q4_K, WeightPrecision.Q4_0, WeightPrecision.Q8_0, WeightPrecision.BF16, WeightPrecision.F16, WeightPrecision.F32];
        return [.. narrowestFirst.Where(p => Misfit(checkpoint.Config, p, For(checkpoint, p)) is null)];
    }

    /// <summary>
    /// Why a deployment of <paramref name="precision"/> (with <see cref="For"/>'s wider matrices) cannot hold
    /// <paramref name="checkpoint"/>, for a tool to put after its option's name — the first matrix that does
    /// not fit, its width and block, and the precisions that hold every matrix — or null when it fits.
    /// </summary>
    public static string? Refusal(ModelCheckpoint checkpoint, WeightPrecision precision)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return Misfit(checkpoint.Config, precision, For(checkpoint, precision)) is { } misfit
            ? $"'{misfit.Tensor}' has rows of {misfit.Width} weights, not whole blocks of {misfit.Block}; the precisions that hold every matrix: "
                + string.Join(", ", Fitting(checkpoint).Select(f => f.ToString().ToLowerInvariant()))
            : null;
    }

    /// <summary>
    /// The first weight matrix a deployment of <paramref name="precision"/> (with
    /// <paramref name="matrixPrecisions"/> for the matrices it keeps in another) cannot hold because its
    /// input width is not whole blocks of its format — with that width and the block — or null when
    /// every matrix fits. Q8_0 and Q4_0 cut rows into blocks of 32, Q4_K into super-blocks of 256; the
    /// embedding and the classifier are Q8_0 under a 4-bit deployment. A load would refuse the same matrix
    /// later; this lets a tool refuse it before anything is read or booted.
    /// </summary>
    public static (string Tensor, long Width, int Block)? Misfit(ModelConfig config, WeightPrecision precision, IReadOnlyDictionary<string, WeightPrecision>? matrixPrecisions = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        foreach ((string name, long[] shape) in config.ExpectedTensors())
        {
            if (shape.Length != 2)
            {
                continue;
            }
            bool table = name == config.EmbeddingTensorName || name == config.LmHeadTensorName;
            WeightPrecision p = matrixPrecisions is not null && matrixPrecisions.TryGetValue(name, out WeightPrecision kept) ? kept
                : table && precision is WeightPrecision.Q4_0 or WeightPrecision.Q4_K ? WeightPrecision.Q8_0 : precision;
            int block = p switch
            {
                WeightPrecision.Q8_0 or WeightPrecision.Q4_0 => 32,
                WeightPrecision.Q4_K => 256,
                _ => 1,
            };
            if (shape[1] % block != 0)
            {
                return (name, shape[1], block);
            }
        }
        return null;
    }

    private static WeightPrecision Suggests(CheckpointTensor tensor) => tensor.StoredGgufType switch
    {
        GgufTensorType.Q8_0 => WeightPrecision.Q8_0,
        GgufTensorType.Q4_0 => WeightPrecision.Q4_0,
        GgufTensorType.Q4_K => WeightPrecision.Q4_K,
        GgufTensorType.Q5_0 or GgufTensorType.Q5_1 or GgufTensorType.Q5_K or GgufTensorType.Q6_K => WeightPrecision.Q8_0,
        GgufTensorType.Q4_1 or GgufTensorType.IQ4_NL or GgufTensorType.IQ4_XS or GgufTensorType.Q3_K or GgufTensorType.Q2_K => WeightPrecision.Q4_K,
        _ => tensor.DType switch
        {
            TensorDType.F16 => WeightPrecision.F16,
            TensorDType.BF16 => WeightPrecision.BF16,
            _ => WeightPrecision.F32,
        },
    };
}
