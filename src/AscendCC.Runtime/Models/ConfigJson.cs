using System.Text.Json;

namespace AscendCC.Runtime.Models;

/// <summary>Typed reads of config.json fields, each failure naming the field and the fix.</summary>
internal static class ConfigJson
{
    public static JsonDocument ParseDocument(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(source, null, $"is not valid JSON ({e.Message}).", "Fix or re-download config.json.", e);
        }
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw new CheckpointFormatException(source, null, "is not a JSON object.", "Fix or re-download config.json.");
        }
        return doc;
    }

    public static int[] ReadEos(JsonElement root, string source)
    {
        if (!root.TryGetProperty("eos_token_id", out var e) || e.ValueKind == JsonValueKind.Null)
        {
            return [];
        }
        if (e.ValueKind == JsonValueKind.Array)
        {
            return e.EnumerateArray().Select(x => x.TryGetInt32(out int v) ? v : throw Bad(source, "eos_token_id", "a list of integers")).ToArray();
        }
        return [e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int one) ? one : throw Bad(source, "eos_token_id", "an integer or a list of integers")];
    }

    public static int RequiredInt(JsonElement root, string field, string source) =>
        OptionalInt(root, field, source) ?? throw new CheckpointFormatException(source, null, $"lacks the required field \"{field}\".", "Add it to config.json (see the model card).");

    public static int? OptionalInt(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Bad(source, field, "an integer");
    }

    public static double? OptionalDouble(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Bad(source, field, "a number");
    }

    public static bool? OptionalBool(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(source, field, "true or false"),
        };
    }

    public static string? OptionalString(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Bad(source, field, "a string");
    }

    public static CheckpointFormatException Bad(string source, string field, string expected) =>
        new(source, null, $"field \"{field}\" is not {expected}.", "Fix config.json.");
}
