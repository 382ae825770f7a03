using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>Python semantics for the values a template handles: None (null), bool, long, double, string, lists, tuples, dicts.</summary>
internal static class JinjaValue
{
    /// <summary>A .NET value (strings, numbers, booleans, lists, dictionaries, JSON elements) as a template value.</summary>
    public static object? From(object? value) => value switch
    {
        null => null,
        string or bool or long or double or JinjaUndefined or JinjaNamespace or JinjaFunction or JinjaTuple => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        uint u => (long)u,
        float f => (double)f,
        decimal m => (double)m,
        ChatTurn turn => new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = turn.Role, ["content"] = turn.Content },
        JsonElement json => FromJson(json),
        IDictionary<string, object?> dict => dict.ToDictionary(kv => kv.Key, kv => From(kv.Value), StringComparer.Ordinal),
        IReadOnlyDictionary<string, object?> dict => dict.ToDictionary(kv => kv.Key, kv => From(kv.Value), StringComparer.Ordinal),
        IDictionary dict => dict.Keys.Cast<object>().ToDictionary(k => Convert.ToString(k, CultureInfo.InvariantCulture)!, k => From(dict[k]), StringComparer.Ordinal),
        IEnumerable items => items.Cast<object?>().Select(From).ToList(),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture),
    };

    private static object? FromJson(JsonElement json) => json.ValueKind switch
    {
        JsonValueKind.String => json.GetString(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.Number => json.TryGetInt64(out long l) ? (object)l : json.GetDouble(),
        JsonValueKind.Array => json.EnumerateArray().Select(FromJson).ToList(),
        _ => json.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value), StringComparer.Ordinal),
    };

    public static bool IsSequence(object? value) => value is List<object?> or JinjaTuple;

    public static bool IsNumber(object? value) => value is long or double or bool;

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        JinjaTuple => "tuple",
        Dictionary<string, object?> => "dict",
        JinjaUndefined => "Undefined",
        JinjaNamespace => "Namespace",
        JinjaFunction => "function",
        JinjaLoop => "LoopContext",
        _ => value.GetType().Name,
    };

    public static bool Truthy(object? value) => value switch
    {
        null or JinjaUndefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        ICollection c => c.Count > 0,
        JinjaTuple t => t.Count > 0,
        _ => true,
    };

    /// <summary>Python's str(): what <c>{{ value }}</c> prints (undefined prints nothing).</summary>
    public static string ToStr(object? value) => value switch
    {
        string s => s,
        JinjaUndefined => "",
        _ => Repr(value),
    };

    /// <summary>Python's repr(), as str() shows list and dict items.</summary>
    public static string Repr(object? value)
    {
        switch (value)
        {
            case null: return "None";
            case bool b: return b ? "True" : "False";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case double d: return FloatRepr(d);
            case string s: return StringRepr(s);
            case JinjaUndefined: return "";
            case List<object?> list: return "[" + string.Join(", ", list.Select(Repr)) + "]";
            case JinjaTuple tuple: return "(" + string.Join(", ", tuple.Select(Repr)) + (tuple.Count == 1 ? ",)" : ")");
            case Dictionary<string, object?> dict: return "{" + string.Join(", ", dict.Select(kv => StringRepr(kv.Key) + ": " + Repr(kv.Value))) + "}";
            case JinjaNamespace ns: return "<Namespace " + Repr(ns.Values) + ">";
            case JinjaFunction f: return $"<function {f.Name}>";
            default: return Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
        }
    }

    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }
        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }
        if (d == Math.Floor(d) && Math.Abs(d) < 1e16)
        {
            return d.ToString("F1", CultureInfo.InvariantCulture);
        }
        return d.ToString("R", CultureInfo.InvariantCulture).Replace('E', 'e');
    }

    private static string StringRepr(string s)
    {
        char quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
        var b = new StringBuilder().Append(quote);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': b.Append("\\\\"); break;
                case '\n': b.Append("\\n"); break;
                case '\r': b.Append("\\r"); break;
                case '\t': b.Append("\\t"); break;
                default:
                    if (c == quote)
                    {
                        b.Append('\\').Append(c);
                    }
                    else if (c < 0x20 || c == 0x7f)
                    {
                        b.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        b.Append(c);
                    }
                    break;
            }
        }
        return b.Append(quote).ToString();
    }

    /// <summary>Python's ==.</summary>
    public static bool PyEquals(object? a, object? b)
    {
        if (a is JinjaUndefined || b is JinjaUndefined)
        {
            return a is JinjaUndefined && b is JinjaUndefined;
        }
        if (a is null || b is null)
        {
            return a is null && b is null;
        }
        if (IsNumber(a) && IsNumber(b))
        {
            return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        }
        switch (a)
        {
            case string sa:
                return b is string sb && string.Equals(sa, sb, StringComparison.Ordinal);
            case List<object?> la:
                return b is List<object?> lb && la.Count == lb.Count && la.Zip(lb).All(p => PyEquals(p.First, p.Second));
            case JinjaTuple ta:
                return b is JinjaTuple tb && ta.Count == tb.Count && ta.Zip(tb).All(p => PyEquals(p.First, p.Second));
            case Dictionary<string, object?> da:
                return b is Dictionary<string, object?> db && da.Count == db.Count
                    && da.All(kv => db.TryGetValue(kv.Key, out object? other) && PyEquals(kv.Value, other));
            default:
                return ReferenceEquals(a, b);
        }
    }

    /// <summary>Python's ordering for &lt;, &lt;=, &gt;, &gt;=: numbers, strings, and sequences item by item.</summary>
    public static int Compare(object? a, object? b, string op)
    {
        if (IsNumber(a) && IsNumber(b))
        {
            return a is double || b is double ? ToDouble(a).CompareTo(ToDouble(b)) : ToLong(a).CompareTo(ToLong(b));
        }
        if (a is string sa && b is string sb)
        {
            return string.CompareOrdinal(sa, sb);
        }
        if (IsSequence(a) && IsSequence(b) && a!.GetType() == b!.GetType())
        {
            var la = (IReadOnlyList<object?>)a;
            var lb = (IReadOnlyList<object?>)b;
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (!PyEquals(la[i], lb[i]))
                {
                    return Compare(la[i], lb[i], op);
                }
            }
            return la.Count.CompareTo(lb.Count);
        }
        if (a is JinjaUndefined u)
        {
            throw new JinjaError(u.Description);
        }
        if (b is JinjaUndefined ub)
        {
            throw new JinjaError(ub.Description);
        }
        throw new JinjaError($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    public static long ToLong(object? value) => value switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        double d => (long)d,
        _ => throw new JinjaError($"expected a number, got '{TypeName(value)}'"),
    };

    public static double ToDouble(object? value) => value switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        double d => d,
        _ => throw new JinjaError($"expected a number, got '{TypeName(value)}'"),
    };

    /// <summary>Python's iteration: a list's or tuple's items, a dict's keys, a string's characters; undefined is empty.</summary>
    public static IReadOnlyList<object?> Iterate(object? value) => value switch
    {
        List<object?> list => list,
        JinjaTuple tuple => tuple,
        Dictionary<string, object?> dict => dict.Keys.Cast<object?>().ToList(),
        string s => s.EnumerateRunes().Select(r => (object?)r.ToString()).ToList(),
        JinjaUndefined => [],
        _ => throw new JinjaError($"'{TypeName(value)}' object is not iterable"),
    };

    /// <summary>Python's len().</summary>
    public static long Length(object? value) => value switch
    {
        string s => s.EnumerateRunes().Count(),
        ICollection c => c.Count,
        JinjaTuple t => t.Count,
        JinjaUndefined => 0,
        _ => throw new JinjaError($"object of type '{TypeName(value)}' has no len()"),
    };

    /// <summary>Python's 'in': substring, list membership or dict key.</summary>
    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new JinjaError($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        Dictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        List<object?> or JinjaTuple => ((IReadOnlyList<object?>)container).Any(x => PyEquals(x, item)),
        // Undefined iterates as empty, so nothing is in it (Jinja's Undefined has no __contains__).
        JinjaUndefined => false,
        _ => throw new JinjaError($"argument of type '{TypeName(container)}' is not iterable"),
    };
}
