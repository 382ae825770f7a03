namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>The tests of <c>value is name(args)</c>: Jinja's built-in tests that chat templates use.</summary>
internal static class JinjaTests
{
    private static readonly HashSet<string> Names = new(StringComparer.Ordinal)
    {
        "defined", "undefined", "none", "string", "mapping", "iterable", "sequence", "number", "integer", "float", "boolean",
        "true", "false", "callable", "odd", "even", "divisibleby", "lower", "upper", "sameas", "in",
        "equalto", "eq", "==", "ne", "!=", "gt", ">", "greaterthan", "ge", ">=", "lt", "<", "lessthan", "le", "<=",
    };

    public static bool IsKnown(string name) => Names.Contains(name);

    public static bool Run(string name, object? value, IReadOnlyList<object?> args)
    {
        object? Arg()
        {
            return args.Count > 0 ? args[0] : throw new JinjaError($"test '{name}' needs an argument");
        }
        return name switch
        {
            "defined" => value is not JinjaUndefined,
            "undefined" => value is JinjaUndefined,
            "none" => value is null,
            "string" => value is string,
            "mapping" => value is Dictionary<string, object?>,
            "iterable" => value is string or List<object?> or JinjaTuple or Dictionary<string, object?> or JinjaUndefined,
            "sequence" => value is string or List<object?> or JinjaTuple or Dictionary<string, object?>,
            "number" => value is long or double or bool,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "callable" => value is JinjaFunction,
            "odd" => JinjaValue.ToLong(value) % 2 != 0,
            "even" => JinjaValue.ToLong(value) % 2 == 0,
            "divisibleby" => JinjaValue.ToLong(value) % JinjaValue.ToLong(Arg()) == 0,
            "lower" => value is string s && string.Equals(s, s.ToLowerInvariant(), StringComparison.Ordinal),
            "upper" => value is string u && string.Equals(u, u.ToUpperInvariant(), StringComparison.Ordinal),
            "sameas" => ReferenceEquals(value, Arg()) || (value is null && Arg() is null) || (value is bool b && Arg() is bool c && b == c),
            "in" => JinjaValue.Contains(Arg(), value),
            "equalto" or "eq" or "==" => JinjaValue.PyEquals(value, Arg()),
            "ne" or "!=" => !JinjaValue.PyEquals(value, Arg()),
            "gt" or ">" or "greaterthan" => JinjaValue.Compare(value, Arg(), ">") > 0,
            "ge" or ">=" => JinjaValue.Compare(value, Arg(), ">=") >= 0,
            "lt" or "<" or "lessthan" => JinjaValue.Compare(value, Arg(), "<") < 0,
            _ => JinjaValue.Compare(value, Arg(), "<=") <= 0,
        };
    }
}
