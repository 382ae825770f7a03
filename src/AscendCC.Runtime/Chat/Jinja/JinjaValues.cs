using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>
/// An error raised while evaluating, without a position: the evaluator adds the line and column of
/// the expression it was evaluating.
/// </summary>
internal sealed class JinjaError(string message) : Exception(message);

/// <summary><c>raise_exception(message)</c> called by the template.</summary>
internal sealed class JinjaRaise(string message) : Exception(message);

/// <summary>
/// Jinja's default Undefined: falsy, renders as nothing, iterates as empty, equals only another
/// undefined; reading an attribute or item of it, or computing with it, is an error naming what was
/// undefined.
/// </summary>
internal sealed class JinjaUndefined(string description)
{
    /// <summary>What was undefined, as Jinja words it (e.g. "'tools' is undefined").</summary>
    public string Description { get; } = description;

    public static JinjaUndefined Named(string name) => new($"'{name}' is undefined");
}

/// <summary>What <c>namespace(...)</c> returns: the one object whose attributes <c>{% set ns.x = ... %}</c> may assign, from any scope.</summary>
internal sealed class JinjaNamespace
{
    public Dictionary<string, object?> Values { get; } = new(StringComparer.Ordinal);
}

/// <summary>A function the template can call: a global (range, namespace, raise_exception…), a macro or a bound method.</summary>
internal sealed class JinjaFunction(string name, Func<IReadOnlyList<object?>, IReadOnlyDictionary<string, object?>, object?> body)
{
    public string Name { get; } = name;

    public object? Invoke(IReadOnlyList<object?> positional, IReadOnlyDictionary<string, object?> keywords) => body(positional, keywords);
}

/// <summary>A Python tuple: renders and compares as one, indexes like a list.</summary>
internal sealed class JinjaTuple(IReadOnlyList<object?> items) : IReadOnlyList<object?>
{
    public object? this[int index] => items[index];

    public int Count => items.Count;

    public IEnumerator<object?> GetEnumerator() => items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>The <c>loop</c> variable inside a for loop.</summary>
internal sealed class JinjaLoop(IReadOnlyList<object?> items)
{
    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index0" => (long)Index0,
        "index" => (long)Index0 + 1,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : new JinjaUndefined("there is no previous item"),
        "nextitem" => Index0 < items.Count - 1 ? items[Index0 + 1] : new JinjaUndefined("there is no next item"),
        "cycle" => new JinjaFunction("loop.cycle", (args, _) => args.Count == 0 ? throw new JinjaError("loop.cycle() needs at least one value") : args[Index0 % args.Count]),
        _ => new JinjaUndefined($"'loop' has no attribute '{name}'"),
    };
}

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
