using System.Globalization;
using System.Text;

namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>
/// The functions a chat template may call without being given them: Jinja's <c>range</c>,
/// <c>namespace</c> and <c>dict</c>, and the two Hugging Face adds, <c>raise_exception(message)</c> and
/// <c>strftime_now(format)</c> (today's date, from an injectable clock).
/// </summary>
internal static class JinjaGlobals
{
    public static Dictionary<string, object?> Create(TimeProvider clock) => new(StringComparer.Ordinal)
    {
        ["range"] = new JinjaFunction("range", (args, _) => Range(args)),
        ["namespace"] = new JinjaFunction("namespace", (args, kwargs) =>
        {
            var ns = new JinjaNamespace();
            foreach (object? arg in args)
            {
                if (arg is Dictionary<string, object?> initial)
                {
                    foreach (var (key, value) in initial)
                    {
                        ns.Values[key] = value;
                    }
                }
            }
            foreach (var (key, value) in kwargs)
            {
                ns.Values[key] = value;
            }
            return ns;
        }),
        ["dict"] = new JinjaFunction("dict", (_, kwargs) => new Dictionary<string, object?>(kwargs, StringComparer.Ordinal)),
        ["raise_exception"] = new JinjaFunction("raise_exception", (args, _) => throw new JinjaRaise(args.Count > 0 ? JinjaValue.ToStr(args[0]) : "")),
        ["strftime_now"] = new JinjaFunction("strftime_now", (args, _) =>
            Strftime(clock.GetLocalNow(), args.Count > 0 && args[0] is string format ? format : throw new JinjaError("strftime_now needs a format string"))),
    };

    private static List<object?> Range(IReadOnlyList<object?> args)
    {
        long start = 0, stop, step = 1;
        switch (args.Count)
        {
            case 1: stop = JinjaValue.ToLong(args[0]); break;
            case 2: start = JinjaValue.ToLong(args[0]); stop = JinjaValue.ToLong(args[1]); break;
            case 3: start = JinjaValue.ToLong(args[0]); stop = JinjaValue.ToLong(args[1]); step = JinjaValue.ToLong(args[2]); break;
            default: throw new JinjaError($"range expects 1 to 3 arguments, got {args.Count}");
        }
        if (step == 0)
        {
            throw new JinjaError("range() arg 3 must not be zero");
        }
        var result = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            if (result.Count >= 100_000)
            {
                // Jinja's sandbox caps range() at MAX_RANGE = 100000.
                throw new JinjaError("range too big: at most 100000 items");
            }
            result.Add(i);
        }
        return result;
    }

    /// <summary>Python's strftime for the directives templates use (C locale names).</summary>
    public static string Strftime(DateTimeOffset now, string format)
    {
        var b = new StringBuilder();
        CultureInfo c = CultureInfo.InvariantCulture;
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                b.Append(format[i]);
                continue;
            }
            char d = format[++i];
            bool noPad = d == '-' && i + 1 < format.Length;
            if (noPad)
            {
                d = format[++i];
            }
            string Num(int value, int width) => noPad ? value.ToString(c) : value.ToString(new string('0', width), c);
            b.Append(d switch
            {
                'a' => now.ToString("ddd", c),
                'A' => now.ToString("dddd", c),
                'b' or 'h' => now.ToString("MMM", c),
                'B' => now.ToString("MMMM", c),
                'd' => Num(now.Day, 2),
                'e' => now.Day.ToString(c).PadLeft(2),
                'm' => Num(now.Month, 2),
                'y' => Num(now.Year % 100, 2),
                'Y' => now.Year.ToString(c),
                'H' => Num(now.Hour, 2),
                'I' => Num(now.Hour % 12 == 0 ? 12 : now.Hour % 12, 2),
                'M' => Num(now.Minute, 2),
                'S' => Num(now.Second, 2),
                'p' => now.Hour < 12 ? "AM" : "PM",
                'j' => Num(now.DayOfYear, 3),
                'w' => ((int)now.DayOfWeek).ToString(c),
                'z' => (now.Offset < TimeSpan.Zero ? "-" : "+") + now.Offset.Duration().ToString("hhmm", c),
                'F' => now.ToString("yyyy-MM-dd", c),
                'T' => now.ToString("HH:mm:ss", c),
                '%' => "%",
                _ => "%" + d,
            });
        }
        return b.ToString();
    }
}
