using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AscendCC.Runtime.Models;

/// <summary>
/// Hugging Face <c>rope_scaling</c>: how RoPE's inverse frequencies are rescaled so a model reaches past
/// its pre-training context. Two types are applied on the device, as transformers computes them:
/// <list type="bullet">
/// <item><c>linear</c> (position interpolation): inv_freq / factor.</item>
/// <item><c>llama3</c> (Llama 3.1+): with wavelen = 2π / inv_freq and orig = original_max_position_embeddings,
/// wavelen &lt; orig / high_freq_factor keeps inv_freq, wavelen &gt; orig / low_freq_factor divides it by
/// factor, and in between smooth = (orig / wavelen − low) / (high − low) blends
/// (1 − smooth)·inv_freq / factor + smooth·inv_freq.</item>
/// </list>
/// Neither rescales the attention logits. Build one with <see cref="Linear"/> or <see cref="Llama3"/>.
/// </summary>
public sealed record RopeScaling
{
    /// <summary>rope_type of linear scaling.</summary>
    public const string LinearType = "linear";

    /// <summary>rope_type of Llama 3 scaling.</summary>
    public const string Llama3Type = "llama3";

    /// <summary>The rope_type values this runtime applies.</summary>
    public static IReadOnlyList<string> SupportedTypes { get; } = [LinearType, Llama3Type];

    private RopeScaling(string type, double factor)
    {
        Type = type;
        Factor = factor;
    }

    /// <summary>"rope_type": <see cref="LinearType"/> or <see cref="Llama3Type"/>.</summary>
    public string Type { get; }

    /// <summary>"factor": how many times longer the context is meant to be.</summary>
    public double Factor { get; init; }

    /// <summary>llama3 only: "low_freq_factor" (1 for Llama 3.1); 0 for linear.</summary>
    public double LowFreqFactor { get; init; }

    /// <summary>llama3 only: "high_freq_factor" (4 for Llama 3.1); 0 for linear.</summary>
    public double HighFreqFactor { get; init; }

    /// <summary>llama3 only: "original_max_position_embeddings", the pre-training context (8192 for Llama 3.1); 0 for linear.</summary>
    public int OriginalMaxPositionEmbeddings { get; init; }

    /// <summary>Linear scaling (position interpolation) by <paramref name="factor"/>.</summary>
    public static RopeScaling Linear(double factor) => new(LinearType, factor);

    /// <summary>Llama 3 scaling.</summary>
    public static RopeScaling Llama3(double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositionEmbeddings) =>
        new(Llama3Type, factor)
        {
            LowFreqFactor = lowFreqFactor,
            HighFreqFactor = highFreqFactor,
            OriginalMaxPositionEmbeddings = originalMaxPositionEmbeddings,
        };

    /// <summary>The rope_scaling object as in config.json.</summary>
    public JsonObject ToJsonObject()
    {
        var o = new JsonObject { ["rope_type"] = Type, ["factor"] = Factor };
        if (Type == Llama3Type)
        {
            o["low_freq_factor"] = LowFreqFactor;
            o["high_freq_factor"] = HighFreqFactor;
            o["original_max_position_embeddings"] = OriginalMaxPositionEmbeddings;
        }
        return o;
    }

    /// <summary>Throws naming the field unless the parameters make sense for <see cref="Type"/>.</summary>
    internal void Validate(string source)
    {
        void Positive(double value, string field)
        {
            if (!(value > 0) || !double.IsFinite(value))
            {
                throw new CheckpointFormatException(source, null, $"rope_scaling.{field} = {value.ToString(CultureInfo.InvariantCulture)}; it must be a positive finite number.", "Fix config.json.");
            }
        }
        if (!SupportedTypes.Contains(Type))
        {
            throw Unsupported(source, Type);
        }
        Positive(Factor, "factor");
        if (Type == Llama3Type)
        {
            Positive(LowFreqFactor, "low_freq_factor");
            Positive(HighFreqFactor, "high_freq_factor");
            Positive(OriginalMaxPositionEmbeddings, "original_max_position_embeddings");
            if (!(HighFreqFactor > LowFreqFactor))
            {
                throw new CheckpointFormatException(source, null, $"rope_scaling.high_freq_factor {HighFreqFactor.ToString(CultureInfo.InvariantCulture)} is not above low_freq_factor {LowFreqFactor.ToString(CultureInfo.InvariantCulture)}; llama3 scaling blends between them.", "Fix config.json.");
            }
        }
    }

    /// <summary>
    /// Reads config.json's rope_scaling: null when absent, null or of type "default" (plain RoPE);
    /// refuses types other than <see cref="SupportedTypes"/>, naming them.
    /// </summary>
    internal static RopeScaling? Parse(JsonElement root, string source)
    {
        if (!root.TryGetProperty("rope_scaling", out var s) || s.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (s.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointFormatException(source, null, "field \"rope_scaling\" is not null or an object.", "Fix config.json.");
        }
        // transformers reads "rope_type", falling back to the older "type".
        if (!(s.TryGetProperty("rope_type", out var t) || s.TryGetProperty("type", out t)) || t.ValueKind != JsonValueKind.String)
        {
            throw new CheckpointFormatException(source, null, "rope_scaling has no \"rope_type\" (or \"type\") string.", $"Give one of: {string.Join(", ", SupportedTypes)}.");
        }
        string type = t.GetString()!;
        switch (type)
        {
            case "default":
                return null;
            case LinearType:
                return Linear(Number(s, "factor", source));
            case Llama3Type:
                double originalMax = Number(s, "original_max_position_embeddings", source);
                if (originalMax != Math.Floor(originalMax) || originalMax > int.MaxValue)
                {
                    throw new CheckpointFormatException(source, null, $"rope_scaling.original_max_position_embeddings = {originalMax.ToString(CultureInfo.InvariantCulture)} is not an integer.", "Fix config.json.");
                }
                return Llama3(Number(s, "factor", source), Number(s, "low_freq_factor", source), Number(s, "high_freq_factor", source), (int)originalMax);
            default:
                throw Unsupported(source, type);
        }
    }

    private static CheckpointFormatException Unsupported(string source, string type) =>
        new(source, null, $"rope_scaling type '{type}' is not supported.",
            $"Supported rope_scaling types: {string.Join(", ", SupportedTypes)} (or none/\"default\" for plain RoPE); dynamic, yarn, longrope and the others are not implemented on the NPU.");

    private static double Number(JsonElement scaling, string field, string source) =>
        scaling.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Number
            ? v.GetDouble()
            : throw new CheckpointFormatException(source, null, $"rope_scaling lacks the number \"{field}\".", "Add it to config.json (see the model card).");
}
