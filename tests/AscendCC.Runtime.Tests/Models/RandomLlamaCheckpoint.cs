using AscendCC.Runtime.Models;
using AscendCC.Tests;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// An untrained Llama checkpoint folder of random weights whose every matrix width is whole
/// 256-value super-blocks (hidden 256, MLP 768, 4 heads of 64, 2 KV heads, 2 layers, stories260K's
/// 512-token tokenizer, untied output), for checks of the k-quant formats against llama.cpp. The
/// matrices are Gaussian with a per-row spread (as trained weights' rows differ in scale) and rare
/// outliers; the first super-blocks of each matrix are the <see cref="EdgeSuperBlock"/> cases.
/// </summary>
internal static class RandomLlamaCheckpoint
{
    /// <summary>How many kinds of <see cref="EdgeSuperBlock"/> there are.</summary>
    public const int EdgeKinds = 13;

    /// <summary>The configuration: every matrix's rows are multiples of 256 values.</summary>
    public static LlamaConfig Config { get; } = new()
    {
        Architecture = "LlamaForCausalLM",
        ModelType = "llama",
        HiddenSize = 256,
        IntermediateSize = 768,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        VocabSize = 512,
        MaxPositionEmbeddings = 256,
        RmsNormEps = 1e-5,
        TieWordEmbeddings = false,
        BosTokenId = 1,
        EosTokenIds = [2],
        TorchDtype = "float32",
    };

    /// <summary>
    /// Writes the Hugging Face folder (config.json, model.safetensors in F32, stories260K's
    /// tokenizer.model). Without <paramref name="edgeBlocks"/> every matrix is the plain Gaussian, for
    /// tests that run the model: the edge cases' rows (one of values of spread 100) would dominate its
    /// logits and make every greedy token the same.
    /// </summary>
    public static string WriteFolder(string folder, int seed, bool edgeBlocks = true)
    {
        var rng = new Random(seed);
        return WriteFolder(folder, Config, (_, shape) => shape.Length == 1 ? Norm(rng, (int)shape[0]) : Matrix(rng, (int)shape[0], (int)shape[1], edgeBlocks));
    }

    /// <summary>
    /// Writes a Hugging Face folder of <paramref name="config"/> (any Llama-family architecture): config.json,
    /// model.safetensors in F32 with each tensor's values from <paramref name="values"/> (asked in
    /// <see cref="ModelConfig.ExpectedTensors"/> order), and stories260K's tokenizer.model.
    /// </summary>
    public static string WriteFolder(string folder, LlamaConfig config, Func<string, long[], float[]> values)
    {
        var tensors = new List<(string, TensorDType, long[], byte[])>();
        foreach ((string name, long[] shape) in config.ExpectedTensors())
        {
            tensors.Add((name, TensorDType.F32, shape, TensorData.FromFloat32(name, shape, values(name, shape)).Bytes.ToArray()));
        }
        Directory.CreateDirectory(folder);
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), tensors.OrderBy(t => t.Item1, StringComparer.Ordinal));
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJson());
        File.Copy(Path.Combine(TestData.RequireModel("stories260K"), "tokenizer.model"), Path.Combine(folder, "tokenizer.model"));
        return folder;
    }

    /// <summary>A standard normal sample (Box–Muller).</summary>
    public static double Gaussian(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    /// <summary>
    /// 256 values at an edge of Q4_K's quantizer, by <paramref name="kind"/> (0 to
    /// <see cref="EdgeKinds"/> − 1): zeros; constants of either sign; one sign only; values so small
    /// that d rounds to zero or to an f16 subnormal; one sub-block far wider than the rest (its
    /// neighbours' 6-bit scales round to zero or near it); a sub-block of each kind side by side; a
    /// lone outlier; values on a 16-level grid (exact rounding ties); large values; a single spike.
    /// </summary>
    public static float[] EdgeSuperBlock(int kind, Random rng)
    {
        var x = new float[256];
        float Normal(float std) => (float)(Gaussian(rng) * std);
        switch (kind)
        {
            case 0:
                break;
            case 1:
                Array.Fill(x, 0.03f);
                break;
            case 2:
                Array.Fill(x, -0.02f);
                break;
            case 3:
                Fill(x, _ => 0.005f + (float)rng.NextDouble() * 0.045f);
                break;
            case 4:
                Fill(x, _ => -0.005f - (float)rng.NextDouble() * 0.045f);
                break;
            case 5:
                Fill(x, _ => Normal(1e-6f));
                break;
            case 6:
                Fill(x, _ => Normal(1e-4f));
                break;
            case 7:
                Fill(x, i => Normal(i / 32 == 3 ? 1f : 0.01f));
                break;
            case 8:
                for (int i = 0; i < 256; i++)
                {
                    x[i] = (i / 32) switch
                    {
                        0 => 0f,
                        1 => 0.015f,
                        2 => 0.002f + (float)rng.NextDouble() * 0.04f,
                        3 => -0.002f - (float)rng.NextDouble() * 0.04f,
                        4 => i == 4 * 32 + 7 ? 0.1f : 0f,
                        5 => Normal(0.02f),
                        6 => (i & 1) == 0 ? 0.02f : -0.02f,
                        _ => Normal(1e-7f),
                    };
                }
                break;
            case 9:
                Fill(x, _ => Normal(0.02f));
                x[rng.Next(256)] = 1f;
                break;
            case 10:
                Fill(x, _ => rng.Next(16) * 0.01f - 0.07f);
                break;
            case 11:
                Fill(x, _ => Normal(100f));
                break;
            case 12:
                x[rng.Next(256)] = -0.5f;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, $"edge kinds are 0 to {EdgeKinds - 1}");
        }
        return x;
    }

    private static void Fill(float[] x, Func<int, float> value)
    {
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = value(i);
        }
    }

    private static float[] Norm(Random rng, int n)
    {
        var x = new float[n];
        Fill(x, _ => 1f + (float)(Gaussian(rng) * 0.05));
        return x;
    }

    private static float[] Matrix(Random rng, int rows, int columns, bool edgeBlocks)
    {
        var x = new float[rows * columns];
        for (int r = 0; r < rows; r++)
        {
            // Rows differ in scale (log-normal around 0.02); one value in 256 is an outlier eight times wider.
            double rowStd = 0.02 * Math.Exp(0.5 * Gaussian(rng));
            for (int c = 0; c < columns; c++)
            {
                double v = Gaussian(rng) * rowStd;
                x[r * columns + c] = (float)(rng.Next(256) == 0 ? v * 8 : v);
            }
        }
        for (int k = 0; edgeBlocks && k < EdgeKinds && (k + 1) * 256 <= x.Length; k++)
        {
            EdgeSuperBlock(k, rng).CopyTo(x, k * 256);
        }
        return x;
    }
}
