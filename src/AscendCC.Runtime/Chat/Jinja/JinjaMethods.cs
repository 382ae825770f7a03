using System.Globalization;
using System.Text;

namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>
/// Attribute and item access as Jinja does it (a dict's keys are its attributes; a missing one is
/// undefined, not an error; anything of undefined is an error), slices, and the read-only Python
/// methods of str and dict that chat templates call (<c>content.strip()</c>, <c>tool.items()</c>…).
/// Mutating methods (list.append, dict.update) are absent, as in Hugging Face's immutable sandbox.
/// </summary>
internal static class JinjaMethods
{
    private static readonly HashSet<string> StringMethods = new(StringComparer.Ordinal)
    {
        "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "splitlines", "title", "lower", "upper",
        "capitalize", "replace", "find", "rfind", "count", "join", "isdigit", "isalpha", "isspace", "islower", "isupper",
    };

    private static readonly HashSet<string> DictMethods = new(StringComparer.Ordinal) { "items", "keys", "values", "get" };

    public static object? GetAttribute(object? target, string name) => target switch
    {
        JinjaUndefined u => throw new JinjaError(u.Description),
        Dictionary<string, object?> dict => DictMethods.Contains(name) ? DictMethod(dict, name)
            : dict.TryGetValue(name, out object? value) ? value
            : new JinjaUndefined($"'dict object' has no attribute '{name}'"),
        string s => StringMethods.Contains(name) ? StringMethod(s, name) : new JinjaUndefined($"'str object' has no attribute '{name}'"),
        JinjaNamespace ns => ns.Values.TryGetValue(name, out object? value) ? value : new JinjaUndefined($"'Namespace' has no attribute '{name}'"),
        JinjaLoop loop => loop.Get(name),
        _ => new JinjaUndefined($"'{JinjaValue.TypeName(target)} object' has no attribute '{name}'"),
    };

    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case JinjaUndefined u:
                throw new JinjaError(u.Description);
            case Dictionary<string, object?> dict:
                if (key is string k)
                {
                    return dict.TryGetValue(k, out object? value) ? value
                        : DictMethods.Contains(k) ? DictMethod(dict, k)
                        : new JinjaUndefined($"'dict object' has no attribute '{k}'");
                }
                return new JinjaUndefined($"'dict object' has no element {JinjaValue.Repr(key)}");
            case List<object?> or JinjaTuple:
            {
                var list = (IReadOnlyList<object?>)target;
                if (key is long or bool)
                {
                    long i = JinjaValue.ToLong(key);
                    i = i < 0 ? i + list.Count : i;
                    return i >= 0 && i < list.Count ? list[(int)i] : new JinjaUndefined($"'{JinjaValue.TypeName(target)} object' has no element {JinjaValue.Repr(key)}");
                }
                return key is string attribute ? GetAttribute(target, attribute) : new JinjaUndefined($"'{JinjaValue.TypeName(target)} object' has no element {JinjaValue.Repr(key)}");
            }
            case string s:
                if (key is long or bool)
                {
                    var chars = JinjaValue.Iterate(s);
                    long i = JinjaValue.ToLong(key);
                    i = i < 0 ? i + chars.Count : i;
                    return i >= 0 && i < chars.Count ? chars[(int)i] : new JinjaUndefined($"'str object' has no element {JinjaValue.Repr(key)}");
                }
                return key is string name ? GetAttribute(s, name) : new JinjaUndefined($"'str object' has no element {JinjaValue.Repr(key)}");
            default:
                return key is string attr ? GetAttribute(target, attr) : new JinjaUndefined($"'{JinjaValue.TypeName(target)} object' has no element {JinjaValue.Repr(key)}");
        }
    }

    /// <summary>Python's target[start:stop:step] on a list, tuple or string.</summary>
    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        if (target is JinjaUndefined u)
        {
            throw new JinjaError(u.Description);
        }
        IReadOnlyList<object?> items = target switch
        {
            List<object?> or JinjaTuple or string => JinjaValue.Iterate(target),
            _ => throw new JinjaError($"'{JinjaValue.TypeName(target)}' object is not subscriptable"),
        };
        long n = items.Count;
        long by = step is null or JinjaUndefined ? 1 : JinjaValue.ToLong(step);
        if (by == 0)
        {
            throw new JinjaError("slice step cannot be zero");
        }
        long Bound(object? v, long fallback)
        {
            if (v is null or JinjaUndefined)
            {
                return fallback;
            }
            long i = JinjaValue.ToLong(v);
            if (i < 0)
            {
                i += n;
            }
            return by > 0 ? Math.Clamp(i, 0, n) : Math.Clamp(i, -1, n - 1);
        }
        long from = Bound(start, by > 0 ? 0 : n - 1);
        long to = Bound(stop, by > 0 ? n : -1);
        var result = new List<object?>();
        for (long i = from; by > 0 ? i < to : i > to; i += by)
        {
            result.Add(items[(int)i]);
        }
        return target switch
        {
            string => string.Concat(result.Cast<string>()),
            JinjaTuple => new JinjaTuple(result),
            _ => result,
        };
    }

    private static JinjaFunction DictMethod(Dictionary<string, object?> dict, string name) => name switch
    {
        "items" => new JinjaFunction("dict.items", (_, _) => dict.Select(kv => (object?)new JinjaTuple([kv.Key, kv.Value])).ToList()),
        "keys" => new JinjaFunction("dict.keys", (_, _) => dict.Keys.Cast<object?>().ToList()),
        "values" => new JinjaFunction("dict.values", (_, _) => dict.Values.ToList()),
        _ => new JinjaFunction("dict.get", (args, _) => args.Count == 0 ? throw new JinjaError("dict.get() needs a key")
            : args[0] is string key && dict.TryGetValue(key, out object? value) ? value
            : args.Count > 1 ? args[1] : null),
    };

    private static string Arg(IReadOnlyList<object?> args, int i, string method) =>
        args.Count > i && args[i] is string s ? s : throw new JinjaError($"str.{method}() expects a string argument {i + 1}");

    private static JinjaFunction StringMethod(string s, string name) => new($"str.{name}", (args, kwargs) =>
    {
        object? Opt(int i, string key) => args.Count > i ? args[i] : kwargs.TryGetValue(key, out object? v) ? v : null;
        switch (name)
        {
            case "strip": return Opt(0, "chars") is string cs ? s.Trim(cs.ToCharArray()) : s.Trim();
            case "lstrip": return Opt(0, "chars") is string cl ? s.TrimStart(cl.ToCharArray()) : s.TrimStart();
            case "rstrip": return Opt(0, "chars") is string cr ? s.TrimEnd(cr.ToCharArray()) : s.TrimEnd();
            case "startswith": return Affix(Opt(0, "prefix")).Any(p => s.StartsWith(p, StringComparison.Ordinal));
            case "endswith": return Affix(Opt(0, "suffix")).Any(p => s.EndsWith(p, StringComparison.Ordinal));
            case "split": return Split(s, Opt(0, "sep") as string, Opt(1, "maxsplit") is { } m and not JinjaUndefined ? JinjaValue.ToLong(m) : -1);
            case "rsplit": return Split(s, Opt(0, "sep") as string, -1);
            case "splitlines": return s.Split('\n').Select(l => (object?)l.TrimEnd('\r')).Take(s.EndsWith('\n') ? s.Split('\n').Length - 1 : int.MaxValue).ToList();
            case "title": return PythonTitle(s);
            case "lower": return s.ToLowerInvariant();
            case "upper": return s.ToUpperInvariant();
            case "capitalize": return Capitalize(s);
            case "replace":
            {
                string from = Arg(args, 0, name), to = Arg(args, 1, name);
                long count = Opt(2, "count") is { } c and not JinjaUndefined ? JinjaValue.ToLong(c) : -1;
                return Replace(s, from, to, count);
            }
            case "find": return (long)s.IndexOf(Arg(args, 0, name), StringComparison.Ordinal);
            case "rfind": return (long)s.LastIndexOf(Arg(args, 0, name), StringComparison.Ordinal);
            case "count": return (long)(Arg(args, 0, name).Length == 0 ? s.Length + 1 : (s.Length - s.Replace(Arg(args, 0, name), "", StringComparison.Ordinal).Length) / Arg(args, 0, name).Length);
            case "join": return string.Join(s, JinjaValue.Iterate(args.Count > 0 ? args[0] : null).Select(x => x is string t ? t : throw new JinjaError($"str.join() expects strings, found '{JinjaValue.TypeName(x)}'")));
            case "isdigit": return s.Length > 0 && s.All(char.IsDigit);
            case "isalpha": return s.Length > 0 && s.All(char.IsLetter);
            case "isspace": return s.Length > 0 && s.All(char.IsWhiteSpace);
            case "islower": return s.Any(char.IsLetter) && !s.Any(char.IsUpper);
            default: return s.Any(char.IsLetter) && !s.Any(char.IsLower);
        }
    });

    private static IEnumerable<string> Affix(object? value) => value switch
    {
        string s => [s],
        JinjaTuple or List<object?> => ((IReadOnlyList<object?>)value).Select(x => x as string ?? throw new JinjaError("startswith/endswith expects strings")),
        _ => throw new JinjaError($"startswith/endswith expects a string or a tuple of strings, not '{JinjaValue.TypeName(value)}'"),
    };

    public static string Replace(string s, string from, string to, long count)
    {
        if (count < 0)
        {
            return from.Length == 0 ? string.Concat(s.Select(c => to + c)) + to : s.Replace(from, to, StringComparison.Ordinal);
        }
        var b = new StringBuilder();
        int at = 0;
        for (long done = 0; done < count; done++)
        {
            int next = s.IndexOf(from, at, StringComparison.Ordinal);
            if (next < 0 || from.Length == 0)
            {
                break;
            }
            b.Append(s, at, next - at).Append(to);
            at = next + from.Length;
        }
        return b.Append(s, at, s.Length - at).ToString();
    }

    private static List<object?> Split(string s, string? separator, long maxSplit)
    {
        if (separator is null)
        {
            // Python's split() without a separator: runs of whitespace, no empty pieces.
            var words = new List<object?>();
            int i = 0;
            while (i < s.Length)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i]))
                {
                    i++;
                }
                if (i >= s.Length)
                {
                    break;
                }
                if (maxSplit >= 0 && words.Count == maxSplit)
                {
                    words.Add(s[i..].TrimEnd());
                    break;
                }
                int start = i;
                while (i < s.Length && !char.IsWhiteSpace(s[i]))
                {
                    i++;
                }
                words.Add(s[start..i]);
            }
            return words;
        }
        if (separator.Length == 0)
        {
            throw new JinjaError("empty separator");
        }
        string[] parts = maxSplit < 0 ? s.Split(separator) : s.Split(separator, (int)Math.Min(maxSplit + 1, int.MaxValue));
        return parts.Cast<object?>().ToList();
    }

    /// <summary>Python's str.title(): a letter after a non-letter is upper case, other letters lower case.</summary>
    public static string PythonTitle(string s)
    {
        var b = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            b.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }
        return b.ToString();
    }

    public static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    public static string Indent(string s, long width, bool first, bool blank)
    {
        string pad = new(' ', (int)width);
        string[] lines = s.Split('\n');
        var b = new StringBuilder();
        for (int i = 0; i < lines.Length; i++)
        {
            if (i > 0)
            {
                b.Append('\n');
            }
            bool indent = (i > 0 || first) && (blank || lines[i].Trim().Length > 0);
            b.Append(indent ? pad : "").Append(lines[i]);
        }
        return b.ToString();
    }

    public static string FormatInvariant(long value) => value.ToString(CultureInfo.InvariantCulture);
}
