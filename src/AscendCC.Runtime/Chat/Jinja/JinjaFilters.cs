using System.Globalization;
using System.Net;

namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>
/// The filters of <c>value | name(args)</c>: Jinja's built-ins that chat templates use, with
/// <c>tojson</c> as Hugging Face overrides it (plain <c>json.dumps</c>, see <see cref="JinjaJson"/>).
/// </summary>
internal static class JinjaFilters
{
    private static readonly HashSet<string> Names = new(StringComparer.Ordinal)
    {
        "trim", "upper", "lower", "length", "count", "tojson", "default", "d", "first", "last", "join", "capitalize", "title",
        "replace", "string", "int", "float", "items", "list", "reverse", "selectattr", "rejectattr", "select", "reject", "map",
        "indent", "abs", "round", "safe", "escape", "e", "unique", "sort", "min", "max", "sum", "wordcount", "dictsort", "batch",
    };

    public static bool IsKnown(string name) => Names.Contains(name);

    /// <summary>Applies filter <paramref name="name"/>.</summary>
    public static object? Apply(string name, object? value, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs)
    {
        object? Opt(int i, string key, object? fallback)
        {
            return args.Count > i ? args[i] : kwargs.TryGetValue(key, out object? v) ? v : fallback;
        }
        switch (name)
        {
            case "trim":
                return Opt(0, "chars", null) is string chars ? Str(value).Trim(chars.ToCharArray()) : Str(value).Trim();
            case "upper":
                return Str(value).ToUpperInvariant();
            case "lower":
                return Str(value).ToLowerInvariant();
            case "length":
            case "count":
                return JinjaValue.Length(value);
            case "tojson":
            {
                object? indent = Opt(0, "indent", null);
                object? separators = Opt(1, "separators", null);
                string? item = null, key = null;
                if (separators is JinjaTuple or List<object?>)
                {
                    var pair = (IReadOnlyList<object?>)separators;
                    item = pair.Count > 0 ? pair[0] as string : null;
                    key = pair.Count > 1 ? pair[1] as string : null;
                }
                return JinjaJson.Serialize(value, indent is null or JinjaUndefined ? null : (int)JinjaValue.ToLong(indent), item, key, JinjaValue.Truthy(Opt(2, "sort_keys", false)));
            }
            case "default":
            case "d":
            {
                bool boolean = JinjaValue.Truthy(Opt(1, "boolean", false));
                return value is JinjaUndefined || (boolean && !JinjaValue.Truthy(value)) ? Opt(0, "default_value", "") : value;
            }
            case "first":
            {
                var items = JinjaValue.Iterate(value);
                return items.Count > 0 ? items[0] : new JinjaUndefined("the sequence is empty: it has no first item");
            }
            case "last":
            {
                var items = JinjaValue.Iterate(value);
                return items.Count > 0 ? items[^1] : new JinjaUndefined("the sequence is empty: it has no last item");
            }
            case "join":
            {
                string separator = Opt(0, "d", "") is string s ? s : "";
                object? attribute = Opt(1, "attribute", null);
                var items = JinjaValue.Iterate(value).Select(x => attribute is null ? x : Attribute(x, attribute));
                return string.Join(separator, items.Select(JinjaValue.ToStr));
            }
            case "capitalize":
                return JinjaMethods.Capitalize(Str(value));
            case "title":
                return JinjaTitle(Str(value));
            case "replace":
            {
                string from = Opt(0, "old", null) as string ?? throw new JinjaError("replace needs the text to replace");
                string to = Opt(1, "new", null) as string ?? throw new JinjaError("replace needs the replacement text");
                object? count = Opt(2, "count", null);
                return JinjaMethods.Replace(Str(value), from, to, count is null ? -1 : JinjaValue.ToLong(count));
            }
            case "string":
                return JinjaValue.ToStr(value);
            case "int":
                return ToInt(value, Opt(0, "default", 0L));
            case "float":
                return value switch
                {
                    long or double or bool => JinjaValue.ToDouble(value),
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
                    _ => Opt(0, "default", 0.0),
                };
            case "items":
                return value switch
                {
                    JinjaUndefined => new List<object?>(),
                    Dictionary<string, object?> dict => dict.Select(kv => (object?)new JinjaTuple([kv.Key, kv.Value])).ToList(),
                    _ => throw new JinjaError($"items filter expects a mapping, not '{JinjaValue.TypeName(value)}'"),
                };
            case "list":
                return JinjaValue.Iterate(value).ToList();
            case "reverse":
                return value is string rs ? string.Concat(JinjaValue.Iterate(rs).Reverse().Cast<string>()) : JinjaValue.Iterate(value).Reverse().ToList();
            case "selectattr":
            case "rejectattr":
            {
                object? attribute = args.Count > 0 ? args[0] : throw new JinjaError($"{name} needs an attribute name");
                bool keep = name == "selectattr";
                return JinjaValue.Iterate(value).Where(x => Select(Attribute(x, attribute), args.Skip(1).ToList()) == keep).ToList();
            }
            case "select":
            case "reject":
            {
                bool keep = name == "select";
                return JinjaValue.Iterate(value).Where(x => Select(x, args) == keep).ToList();
            }
            case "map":
            {
                if (kwargs.TryGetValue("attribute", out object? attribute))
                {
                    object? fallback = kwargs.TryGetValue("default", out object? dv) ? dv : null;
                    return JinjaValue.Iterate(value).Select(x => Attribute(x, attribute) is JinjaUndefined && fallback is not null ? fallback : Attribute(x, attribute)).ToList();
                }
                string filter = args.Count > 0 && args[0] is string f ? f : throw new JinjaError("map needs a filter name or attribute=...");
                if (!IsKnown(filter))
                {
                    throw new JinjaError($"unknown filter '{filter}'");
                }
                return JinjaValue.Iterate(value).Select(x => Apply(filter, x, args.Skip(1).ToList(), new Dictionary<string, object?>())).ToList();
            }
            case "indent":
                return JinjaMethods.Indent(Str(value), JinjaValue.ToLong(Opt(0, "width", 4L)), JinjaValue.Truthy(Opt(1, "first", false)), JinjaValue.Truthy(Opt(2, "blank", false)));
            case "abs":
                return value is double ad ? Math.Abs(ad) : (object)Math.Abs(JinjaValue.ToLong(value));
            case "round":
                return Math.Round(JinjaValue.ToDouble(value), (int)JinjaValue.ToLong(Opt(0, "precision", 0L)), MidpointRounding.ToEven);
            case "safe":
                return value;
            case "escape":
            case "e":
                return WebUtility.HtmlEncode(Str(value));
            case "unique":
            {
                var seen = new List<object?>();
                foreach (object? x in JinjaValue.Iterate(value))
                {
                    if (!seen.Any(y => JinjaValue.PyEquals(x, y)))
                    {
                        seen.Add(x);
                    }
                }
                return seen;
            }
            case "sort":
            {
                object? attribute = Opt(2, "attribute", null);
                var items = JinjaValue.Iterate(value).ToList();
                items.Sort((a, b) => JinjaValue.Compare(attribute is null ? a : Attribute(a, attribute), attribute is null ? b : Attribute(b, attribute), "<"));
                if (JinjaValue.Truthy(Opt(0, "reverse", false)))
                {
                    items.Reverse();
                }
                return items;
            }
            case "min":
            case "max":
            {
                var items = JinjaValue.Iterate(value);
                if (items.Count == 0)
                {
                    return new JinjaUndefined($"{name} of an empty sequence");
                }
                object? best = items[0];
                foreach (object? x in items.Skip(1))
                {
                    int c = JinjaValue.Compare(x, best, "<");
                    best = (name == "min" ? c < 0 : c > 0) ? x : best;
                }
                return best;
            }
            case "sum":
            {
                var items = JinjaValue.Iterate(value);
                return items.Any(x => x is double) ? items.Sum(JinjaValue.ToDouble) : (object)items.Sum(JinjaValue.ToLong);
            }
            case "wordcount":
                return (long)Str(value).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;
            case "dictsort":
                return value is Dictionary<string, object?> sortable
                    ? sortable.OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase).Select(kv => (object?)new JinjaTuple([kv.Key, kv.Value])).ToList()
                    : throw new JinjaError($"dictsort expects a mapping, not '{JinjaValue.TypeName(value)}'");
            default:
            {
                long size = JinjaValue.ToLong(Opt(0, "linecount", 1L));
                return JinjaValue.Iterate(value).Chunk((int)Math.Max(1, size)).Select(c => (object?)c.ToList()).ToList();
            }
        }
    }

    private static string Str(object? value) => JinjaValue.ToStr(value);

    private static object? Attribute(object? item, object? attribute)
    {
        if (attribute is long index)
        {
            return JinjaMethods.GetItem(item, index);
        }
        object? current = item;
        foreach (string part in (attribute as string ?? throw new JinjaError("the attribute name must be a string")).Split('.'))
        {
            current = current is JinjaUndefined ? current : JinjaMethods.GetItem(current, long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out long i) ? i : part);
        }
        return current;
    }

    /// <summary>select/reject's check: the named test with its arguments, or truthiness without one.</summary>
    private static bool Select(object? value, IReadOnlyList<object?> testAndArgs)
    {
        if (testAndArgs.Count == 0)
        {
            return JinjaValue.Truthy(value);
        }
        string test = testAndArgs[0] as string ?? throw new JinjaError("the test name must be a string");
        return JinjaTests.IsKnown(test) ? JinjaTests.Run(test, value, testAndArgs.Skip(1).ToList()) : throw new JinjaError($"unknown test '{test}'");
    }

    private static object? ToInt(object? value, object? fallback) => value switch
    {
        long or bool => JinjaValue.ToLong(value),
        double d => (long)Math.Truncate(d),
        string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l) => l,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => (long)Math.Truncate(d),
        _ => fallback,
    };

    /// <summary>Jinja's title filter: each word (split at whitespace, '-', and opening brackets) capitalised.</summary>
    private static string JinjaTitle(string s)
    {
        var b = new System.Text.StringBuilder(s.Length);
        bool wordStart = true;
        foreach (char c in s)
        {
            bool separator = char.IsWhiteSpace(c) || c is '-' or '(' or '{' or '[' or '<';
            b.Append(separator ? c : wordStart ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            wordStart = separator;
        }
        return b.ToString();
    }
}
