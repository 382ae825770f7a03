using AscendCC.Runtime.Models;
using AscendCC.Tests;

namespace AscendCC.Runtime.Tests.Llama;

/// <summary>
/// A trained model whose every matrix width is whole Q8_0 blocks: stories260K with its MLP widened
/// from 172 to 192 by zero units (gate and up rows of zeros, down columns of zeros). silu(0)·0 = 0,
/// so it is the same function as stories260K, with llama2.c's reference outputs; its widths (64 and
/// 192) are multiples of 32, which stories260K's 172 is not.
/// </summary>
internal static class PaddedStories260K
{
    /// <summary>The MLP width after padding.</summary>
    public const int Intermediate = 192;

    /// <summary>The configuration and the weights by Hugging Face name (rotate_half q/k, as the safetensors folder).</summary>
    public static (LlamaConfig Config, Dictionary<string, TensorData> Weights) Build()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = ModelCheckpoint.Open(folder);
        var config = (LlamaConfig)checkpoint.Config with { IntermediateSize = Intermediate };
        int hidden = checkpoint.Config.IntermediateSize, dim = checkpoint.Config.HiddenSize;
        var weights = new Dictionary<string, TensorData>(StringComparer.Ordinal);
        foreach ((string name, long[] _) in checkpoint.Config.ExpectedTensors())
        {
            TensorData t = TensorData.FromCheckpoint(checkpoint.GetTensor(name));
            float[] values = t.ToFloat32();
            if (name.EndsWith("gate_proj.weight", StringComparison.Ordinal) || name.EndsWith("up_proj.weight", StringComparison.Ordinal))
            {
                float[] padded = new float[Intermediate * dim];
                values.CopyTo(padded, 0);
                t = TensorData.FromFloat32(name, [Intermediate, dim], padded);
            }
            else if (name.EndsWith("down_proj.weight", StringComparison.Ordinal))
            {
                float[] padded = new float[dim * Intermediate];
                for (int r = 0; r < dim; r++)
                {
                    Array.Copy(values, r * hidden, padded, r * Intermediate, hidden);
                }
                t = TensorData.FromFloat32(name, [dim, Intermediate], padded);
            }
            weights[name] = t;
        }
        return (config, weights);
    }

    /// <summary>Writes it as a Hugging Face folder (config.json, model.safetensors in F32, stories260K's tokenizer.model).</summary>
    public static string WriteFolder(string folder) => WriteFolder(folder, Build());

    /// <summary>Writes a variant of stories260K (<paramref name="model"/>) as a Hugging Face folder with stories260K's tokenizer.model.</summary>
    internal static string WriteFolder(string folder, (LlamaConfig Config, Dictionary<string, TensorData> Weights) model)
    {
        (LlamaConfig config, Dictionary<string, TensorData> weights) = model;
        Directory.CreateDirectory(folder);
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"),
            weights.OrderBy(w => w.Key, StringComparer.Ordinal).Select(w => (w.Key, w.Value.DType, w.Value.Shape.ToArray(), w.Value.Bytes.ToArray())));
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJson());
        File.Copy(Path.Combine(TestData.RequireModel("stories260K"), "tokenizer.model"), Path.Combine(folder, "tokenizer.model"));
        return folder;
    }
}
