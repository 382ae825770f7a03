using System.Globalization;
using System.Text;

namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>
/// The <c>tojson</c> filter as Hugging Face defines it for chat templates: Python's
/// <c>json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)</c>
/// (not Jinja's HTML-safe variant): ", " and ": " between items, non-ASCII text as is.
/// </summary>
internal static class JinjaJson
{
    public static string Serialize(object? value, int? indent, string? itemSeparator, string? keySeparator, bool sortKeys)
    {
        var b = new StringBuilder();
        itemSeparator ??= indent is null ? ", " : ",";
        keySeparator ??= ": ";
        Write(b, value, indent, itemSeparator, keySeparator, sortKeys, 0);
        return b.ToString();
    }

    private static void Write(StringBuilder b, object? value, int? indent, string itemSeparator, string keySeparator, bool sortKeys, int level)
    {
        switch (value)
        {
            case null:
                b.Append("null");
                return;
            case bool v:
                b.Append(v ? "true" : "false");
                return;
            case long l:
                b.Append(l.ToString(CultureInfo.InvariantCulture));
                return;
            case double d:
                b.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : JinjaValue.FloatRepr(d));
                return;
            case string s:
                WriteString(b, s);
                return;
            case JinjaUndefined u:
                throw new JinjaError($"{u.Description}: an undefined value cannot be serialised to JSON");
            case Dictionary<string, object?> dict:
            {
                IEnumerable<KeyValuePair<string, object?>> entries = sortKeys ? dict.OrderBy(kv => kv.Key, StringComparer.Ordinal) : dict;
                WriteContainer(b, '{', '}', entries.ToList(), indent, itemSeparator, level, (entry, lvl) =>
                {
                    WriteString(b, entry.Key);
                    b.Append(keySeparator);
                    Write(b, entry.Value, indent, itemSeparator, keySeparator, sortKeys, lvl);
                });
                return;
            }
            case List<object?> or JinjaTuple:
                WriteContainer(b, '[', ']', ((IReadOnlyList<object?>)value).ToList(), indent, itemSeparator, level,
                    (item, lvl) => Write(b, item, indent, itemSeparator, keySeparator, sortKeys, lvl));
                return;
            default:
                throw new JinjaError($"Object of type {JinjaValue.TypeName(value)} is not JSON serializable");
        }
    }

    private static void WriteContainer<T>(StringBuilder b, char open, char close, List<T> items, int? indent, string itemSeparator, int level, Action<T, int> write)
    {
        if (items.Count == 0)
        {
            b.Append(open).Append(close);
            return;
        }
        b.Append(open);
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                b.Append(itemSeparator);
            }
            if (indent is { } n)
            {
                b.Append('\n').Append(' ', n * (level + 1));
            }
            write(items[i], level + 1);
        }
        if (indent is { } m)
        {
            b.Append('\n').Append(' ', m * level);
        }
        b.Append(close);
    }

    private static void WriteString(StringBuilder b, string s)
    {
        b.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': b.Append("\\\""); break;
                case '\\': b.Append("\\\\"); break;
                case '\n': b.Append("\\n"); break;
                case '\r': b.Append("\\r"); break;
                case '\t': b.Append("\\t"); break;
                case '\b': b.Append("\\b"); break;
                case '\f': b.Append("\\f"); break;
                default:
                    if (c < 0x20)
                    {
                        b.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        b.Append(c);
                    }
                    break;
            }
        }
        b.Append('"');
    }
}
