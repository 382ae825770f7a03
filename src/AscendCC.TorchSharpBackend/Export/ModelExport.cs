using System.Text.Json;
using AscendCC.Runtime.Models;
using static TorchSharp.torch;

namespace AscendCC.TorchSharpBackend;

/// <summary>
/// A trained Llama-family model captured from a TorchSharp module: its configuration and every
/// weight under its Hugging Face name, in rotate_half RoPE order, sorted by name. Writers
/// (<see cref="IModelExportWriter"/>) turn it into files: a Hugging Face folder, or — written by the
/// confidential-computing layer — an encrypted, signed model package.
/// </summary>
public sealed class ExportedModel
{
    internal ExportedModel(ModelConfig config, IReadOnlyList<TensorData> tensors)
    {
        Config = config;
        Tensors = tensors;
    }

    /// <summary>The configuration.</summary>
    public ModelConfig Config { get; }

    /// <summary>The weights, sorted by name (ordinal); a tied classifier appears once, as the embedding.</summary>
    public IReadOnlyList<TensorData> Tensors { get; }

    /// <summary>The configuration as a Hugging Face config.json.</summary>
    public string ConfigJson() => ModelExport.ToConfigJson(Config);
}

/// <summary>Writes an <see cref="ExportedModel"/> somewhere; implement it to add an export format.</summary>
public interface IModelExportWriter
{
    /// <summary>Writes <paramref name="model"/> to <paramref name="destination"/> (a folder or file, as the format defines).</summary>
    void Write(ExportedModel model, string destination);
}

/// <summary>Writes a Hugging Face model folder: config.json and model.safetensors.</summary>
public sealed class HuggingFaceFolderWriter : IModelExportWriter
{
    /// <inheritdoc />
    public void Write(ExportedModel model, string destination)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(destination);
        Directory.CreateDirectory(destination);
        File.WriteAllText(Path.Combine(destination, "config.json"), model.ConfigJson());
        // The header lists tensors in the order given; sorted names make the file deterministic.
        SafetensorsFile.Write(Path.Combine(destination, "model.safetensors"),
            model.Tensors.Select(t => (t.Name, t.DType, t.Shape.ToArray(), t.Bytes.ToArray())),
            new Dictionary<string, string> { ["format"] = "pt" });
    }
}

/// <summary>Model-provider export: capture a trained TorchSharp model (of any supported family) and write it out.</summary>
public static class ModelExport
{
    /// <summary>
    /// Captures <paramref name="module"/>'s weights (checked against <paramref name="config"/> as the
    /// compiler checks them). <paramref name="rope"/> says how the module pairs q/k dimensions; an
    /// interleaved module's q_proj/k_proj rows are permuted to the rotate_half order Hugging Face files use.
    /// </summary>
    public static ExportedModel Capture(nn.Module module, ModelConfig config, RopeConvention rope = RopeConvention.Half)
    {
        ArgumentNullException.ThrowIfNull(module);
        var parameters = CausalLMParameters.Collect(module, config);
        var tensors = new List<TensorData>();
        foreach (var (name, parameter) in parameters.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            TensorData data = CausalLMParameters.ToTensorData(name, parameter);
            if (rope == RopeConvention.Interleaved && config is LlamaConfig llama)
            {
                if (name.EndsWith(".self_attn.q_proj.weight", StringComparison.Ordinal))
                {
                    data = InterleavedToHalf(data, llama.NumAttentionHeads);
                }
                else if (name.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal))
                {
                    data = InterleavedToHalf(data, llama.NumKeyValueHeads);
                }
            }
            tensors.Add(data);
        }
        return new ExportedModel(config, tensors);
    }

    /// <summary>Captures <paramref name="module"/> and writes it with <paramref name="writer"/> (default: a Hugging Face folder).</summary>
    public static ExportedModel Export(nn.Module module, ModelConfig config, string destination, IModelExportWriter? writer = null, RopeConvention rope = RopeConvention.Half)
    {
        ExportedModel model = Capture(module, config, rope);
        (writer ?? new HuggingFaceFolderWriter()).Write(model, destination);
        return model;
    }

    /// <summary>A configuration as Hugging Face config.json text (with the activation and dtype fields Hugging Face loaders expect).</summary>
    public static string ToConfigJson(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var o = (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(config.ToJson())!;
        if (config is LlamaConfig)
        {
            o["hidden_act"] = "silu";
        }
        o["torch_dtype"] = config.TorchDtype ?? "float32";
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Within each head, rows (2i, 2i+1) of Meta order become rows (i, i + d/2) of rotate_half order.</summary>
    private static TensorData InterleavedToHalf(TensorData weight, int heads)
    {
        int rows = (int)weight.Shape[0], size = TensorDTypes.SizeOf(weight.DType);
        int rowBytes = (int)weight.Shape[1] * size, headDim = rows / heads, half = headDim / 2;
        ReadOnlySpan<byte> source = weight.Bytes.Span;
        var result = new byte[source.Length];
        for (int h = 0; h < heads; h++)
        {
            for (int i = 0; i < half; i++)
            {
                int head = h * headDim;
                source.Slice((head + 2 * i) * rowBytes, rowBytes).CopyTo(result.AsSpan((head + i) * rowBytes));
                source.Slice((head + 2 * i + 1) * rowBytes, rowBytes).CopyTo(result.AsSpan((head + half + i) * rowBytes));
            }
        }
        return new TensorData(weight.Name, weight.DType, weight.Shape, result);
    }

}
