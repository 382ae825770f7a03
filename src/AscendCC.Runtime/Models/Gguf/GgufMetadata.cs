using System.Globalization;

namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// One GGUF metadata value: its type and the value as .NET holds it (byte, sbyte, ushort, short,
/// uint, int, float, bool, string, ulong, long, double, or a <see cref="GgufArray"/>).
/// </summary>
public sealed record GgufValue(GgufValueType Type, object Value)
{
    /// <summary>The value as a 64-bit integer when it is an integer of any width; null otherwise.</summary>
    public long? AsInt64() => Value switch
    {
        byte v => v,
        sbyte v => v,
        ushort v => v,
        short v => v,
        uint v => v,
        int v => v,
        long v => v,
        ulong v when v <= long.MaxValue => (long)v,
        _ => null,
    };

    /// <summary>The value as a double when it is a number of any type; null otherwise. A float32 becomes the
    /// double of its shortest decimal (1e-5f → 1e-5), the value its writer meant, not its binary widening.</summary>
    public double? AsDouble() => Value switch
    {
        float v => double.Parse(v.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
        double v => v,
        _ => AsInt64(),
    };

    /// <inheritdoc />
    public override string ToString() => Value is IFormattable f ? f.ToString(null, CultureInfo.InvariantCulture) : Value.ToString() ?? "";
}

/// <summary>A GGUF metadata array: its element type and the elements (a typed .NET array, string[] for strings,
/// <see cref="GgufArray"/>[] for nested arrays).</summary>
public sealed record GgufArray(GgufValueType ElementType, Array Values)
{
    /// <summary>Number of elements.</summary>
    public int Count => Values.Length;

    /// <inheritdoc />
    public override string ToString() => $"[{Count} × {ElementType}]";
}

/// <summary>The metadata key/values of a GGUF file, in file order, with typed accessors whose errors name the key.</summary>
public sealed class GgufMetadata
{
    private readonly Dictionary<string, GgufValue> _values;

    internal GgufMetadata(string source, Dictionary<string, GgufValue> values, IReadOnlyList<string> keys)
    {
        Source = source;
        _values = values;
        Keys = keys;
    }

    /// <summary>The file the metadata came from (for messages).</summary>
    public string Source { get; }

    /// <summary>Keys in file order.</summary>
    public IReadOnlyList<string> Keys { get; }

    /// <summary>All values by key.</summary>
    public IReadOnlyDictionary<string, GgufValue> Values => _values;

    /// <summary>True when <paramref name="key"/> is present.</summary>
    public bool Contains(string key) => _values.ContainsKey(key);

    /// <summary>The value of <paramref name="key"/>, or null when absent.</summary>
    public GgufValue? Find(string key) => _values.GetValueOrDefault(key);

    /// <summary>A string value; null when absent; an error when present with another type.</summary>
    public string? GetString(string key) => Find(key) switch
    {
        null => null,
        { Value: string s } => s,
        var v => throw WrongType(key, v, "a string"),
    };

    /// <summary>An integer value of any width; null when absent; an error for other types or values outside int.</summary>
    public int? GetInt32(string key)
    {
        var v = Find(key);
        if (v is null)
        {
            return null;
        }
        long? n = v.AsInt64();
        return n is >= int.MinValue and <= int.MaxValue ? (int)n.Value : throw WrongType(key, v, "an integer within int32");
    }

    /// <summary>A numeric value as double; null when absent.</summary>
    public double? GetDouble(string key)
    {
        var v = Find(key);
        return v is null ? null : v.AsDouble() ?? throw WrongType(key, v, "a number");
    }

    /// <summary>An array; null when absent.</summary>
    public GgufArray? GetArray(string key) => Find(key) switch
    {
        null => null,
        { Value: GgufArray a } => a,
        var v => throw WrongType(key, v, "an array"),
    };

    /// <summary>An integer that must be present.</summary>
    public int RequireInt32(string key) =>
        GetInt32(key) ?? throw new CheckpointFormatException(Source, null, $"has no metadata key '{key}'.", "The file is not a complete llama.cpp GGUF model; convert it again with llama.cpp's convert_hf_to_gguf.py.");

    private CheckpointFormatException WrongType(string key, GgufValue v, string expected) =>
        new(Source, null, $"metadata key '{key}' is {v.Type} ({v}), expected {expected}.", "The file is malformed or from an incompatible writer.");
}
