using AscendCC.Runtime.Models;
using AscendCC.Tests;

namespace AscendCC.Runtime.Tests.Llama;

/// <summary>
/// A trained model whose heads are whole blocks of 32: stories260K with each 8-wide head widened to 32 by
/// zero dimensions (head_dim 32). In rotate_half order dimension i of an 8-wide head pairs with i + 4 at
/// frequency θ^(−2i/8); in a 32-wide head dimension j pairs with j + 16 at θ^(−2j/32), so original
/// dimensions i and i + 4 go to 4i and 4i + 16 and rotate exactly as before, the zeros add nothing to a
/// score, and the query rows are doubled so 1/√32 scales the scores as 1/√8 did (a power of two: exact).
/// Values keep the same places and o_proj reads them there. The same function as stories260K, so
/// llama2.c's reference outputs are its outputs — the model the Q8_0 KV cache (rows of whole 32-blocks)
/// is checked on.
/// </summary>
internal static class WideHeadStories260K
{
    /// <summary>The widened head dimension.</summary>
    public const int HeadDim = 32;

    /// <summary>The configuration and the weights by Hugging Face name (rotate_half q/k, as the safetensors folder).</summary>
    public static (LlamaConfig Config, Dictionary<string, TensorData> Weights) Build()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = ModelCheckpoint.Open(folder);
        var original = (LlamaConfig)checkpoint.Config;
        int dim = original.HiddenSize, hd = original.HeadDim, half = hd / 2;
        int stride = HeadDim / hd;
        var config = original with { ExplicitHeadDim = HeadDim };
        float scoreScale = MathF.Sqrt(HeadDim / (float)hd);
        // Where dimension d of an original head goes in a widened one.
        int Place(int d) => d < half ? stride * d : (stride * (d - half)) + (HeadDim / 2);
        var weights = new Dictionary<string, TensorData>(StringComparer.Ordinal);
        foreach ((string name, long[] _) in original.ExpectedTensors())
        {
            TensorData t = TensorData.FromCheckpoint(checkpoint.GetTensor(name));
            float[] values = t.ToFloat32();
            bool q = name.EndsWith("q_proj.weight", StringComparison.Ordinal);
            if (q || name.EndsWith("k_proj.weight", StringComparison.Ordinal) || name.EndsWith("v_proj.weight", StringComparison.Ordinal))
            {
                // Rows [heads·hd, dim] → [heads·32, dim].
                int heads = values.Length / dim / hd;
                var wide = new float[heads * HeadDim * dim];
                for (int h = 0; h < heads; h++)
                {
                    for (int d = 0; d < hd; d++)
                    {
                        for (int c = 0; c < dim; c++)
                        {
                            wide[(((h * HeadDim) + Place(d)) * dim) + c] = values[(((h * hd) + d) * dim) + c] * (q ? scoreScale : 1f);
                        }
                    }
                }
                t = TensorData.FromFloat32(name, [heads * HeadDim, dim], wide);
            }
            else if (name.EndsWith("o_proj.weight", StringComparison.Ordinal))
            {
                // Columns [dim, heads·hd] → [dim, heads·32].
                int heads = values.Length / dim / hd;
                var wide = new float[dim * heads * HeadDim];
                for (int r = 0; r < dim; r++)
                {
                    for (int h = 0; h < heads; h++)
                    {
                        for (int d = 0; d < hd; d++)
                        {
                            wide[(r * heads * HeadDim) + (h * HeadDim) + Place(d)] = values[(r * heads * hd) + (h * hd) + d];
                        }
                    }
                }
                t = TensorData.FromFloat32(name, [dim, heads * HeadDim], wide);
            }
            weights[name] = t;
        }
        return (config, weights);
    }

    /// <summary>Writes it as a Hugging Face folder (config.json, model.safetensors in F32, stories260K's tokenizer.model).</summary>
    public static string WriteFolder(string folder) => PaddedStories260K.WriteFolder(folder, Build());

    /// <summary>
    /// Writes the folder to <paramref name="folder"/> and the same model as an F32 GGUF to <paramref name="gguf"/>
    /// (what the llama.cpp comparisons load into both engines); returns the folder.
    /// </summary>
    public static string WriteFolderAndGguf(string folder, string gguf)
    {
        WriteFolder(folder);
        using var checkpoint = ModelCheckpoint.Open(folder);
        Runtime.Models.Gguf.GgufWriter.WriteLlama(gguf, checkpoint, Runtime.Tokenizers.TextTokenizer.Load(folder));
        return folder;
    }
}
