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
    internal ExportedModel(LlamaConfig config, IReadOnlyList<TensorData> tensors)
    {
        Config = config;
        Tensors = tensors;
    }

    /// <summary>The configuration.</summary>
    public LlamaConfig Config { get; }

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

/// <summary>Model-provider export: capture a trained TorchSharp Llama and write it out.</summary>
public static class ModelExport
{
    /// <summary>
    /// Captures <paramref name="module"/>'s weights (checked against <paramref name="config"/> as the
    /// compiler checks them). <paramref name="rope"/> says how the module pairs q/k dimensions; an
    /// interleaved module's q_proj/k_proj rows are permuted to the rotate_half order Hugging Face files use.
    /// </summary>
    public static ExportedModel Capture(nn.Module module, LlamaConfig config, RopeConvention rope = RopeConvention.Half)
    {
        ArgumentNullException.ThrowIfNull(module);
        var parameters = LlamaParameters.Collect(module, config);
        var tensors = new List<TensorData>();
        foreach (var (name, parameter) in parameters.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            TensorData data = LlamaParameters.ToTensorData(name, parameter);
            if (rope == RopeConvention.Interleaved)
            {
                if (name.EndsWith(".self_attn.q_proj.weight", StringComparison.Ordinal))
                {
                    data = InterleavedToHalf(data, config.NumAttentionHeads);
                }
                else if (name.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal))
                {
                    data = InterleavedToHalf(data, config.NumKeyValueHeads);
                }
            }
            tensors.Add(data);
        }
        return new ExportedModel(config, tensors);
    }

    /// <summary>Captures <paramref name="module"/> and writes it with <paramref name="writer"/> (default: a Hugging Face folder).</summary>
    public static ExportedModel Export(nn.Module module, LlamaConfig config, string destination, IModelExportWriter? writer = null, RopeConvention rope = RopeConvention.Half)
    {
        ExportedModel model = Capture(module, config, rope);
        (writer ?? new HuggingFaceFolderWriter()).Write(model, destination);
        return model;
    }

    /// <summary>A configuration as Hugging Face config.json text.</summary>
    public static string ToConfigJson(LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("architectures");
            w.WriteStringValue(config.Architecture);
            w.WriteEndArray();
            w.WriteString("model_type", config.ModelType ?? (config.Architecture == "MistralForCausalLM" ? "mistral" : "llama"));
            w.WriteNumber("hidden_size", config.HiddenSize);
            w.WriteNumber("intermediate_size", config.IntermediateSize);
            w.WriteNumber("num_hidden_layers", config.NumHiddenLayers);
            w.WriteNumber("num_attention_heads", config.NumAttentionHeads);
            w.WriteNumber("num_key_value_heads", config.NumKeyValueHeads);
            if (config.ExplicitHeadDim is { } headDim)
            {
                w.WriteNumber("head_dim", headDim);
            }
            w.WriteNumber("vocab_size", config.VocabSize);
            w.WriteNumber("max_position_embeddings", config.MaxPositionEmbeddings);
            w.WriteNumber("rms_norm_eps", config.RmsNormEps);
            w.WriteNumber("rope_theta", config.RopeTheta);
            w.WriteBoolean("tie_word_embeddings", config.TieWordEmbeddings);
            if (config.BosTokenId is { } bos)
            {
                w.WriteNumber("bos_token_id", bos);
            }
            if (config.EosTokenIds.Count == 1)
            {
                w.WriteNumber("eos_token_id", config.EosTokenIds[0]);
            }
            else if (config.EosTokenIds.Count > 1)
            {
                w.WriteStartArray("eos_token_id");
                foreach (int eos in config.EosTokenIds)
                {
                    w.WriteNumberValue(eos);
                }
                w.WriteEndArray();
            }
            if (config.SlidingWindow is { } window)
            {
                w.WriteNumber("sliding_window", window);
            }
            if (config.RopeScaling is { } scaling)
            {
                w.WritePropertyName("rope_scaling");
                scaling.ToJsonObject().WriteTo(w);
            }
            w.WriteString("hidden_act", "silu");
            w.WriteString("torch_dtype", config.TorchDtype ?? "float32");
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
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
