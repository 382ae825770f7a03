namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>An expression of the template, with where it starts (for errors).</summary>
internal abstract record JinjaExpr(int Line, int Column);

internal sealed record LiteralExpr(object? Value, int Line, int Column) : JinjaExpr(Line, Column);

internal sealed record NameExpr(string Name, int Line, int Column) : JinjaExpr(Line, Column);

internal sealed record ListExpr(IReadOnlyList<JinjaExpr> Items, bool IsTuple, int Line, int Column) : JinjaExpr(Line, Column);

internal sealed record DictExpr(IReadOnlyList<(JinjaExpr Key, JinjaExpr Value)> Items, int Line, int Column) : JinjaExpr(Line, Column);

/// <summary><c>obj.name</c></summary>
internal sealed record AttributeExpr(JinjaExpr Target, string Name, int Line, int Column) : JinjaExpr(Line, Column);

/// <summary><c>obj[index]</c></summary>
internal sealed record ItemExpr(JinjaExpr Target, JinjaExpr Index, int Line, int Column) : JinjaExpr(Line, Column);

/// <summary><c>obj[start:stop:step]</c></summary>
internal sealed record SliceExpr(JinjaExpr Target, JinjaExpr? Start, JinjaExpr? Stop, JinjaExpr? Step, int Line, int Column) : JinjaExpr(Line, Column);

/// <summary>Positional and keyword arguments of a call, filter or test.</summary>
internal sealed record JinjaArguments(IReadOnlyList<JinjaExpr> Positional, IReadOnlyList<(string Name, JinjaExpr Value)> Keywords)
{
    public static JinjaArguments None { get; } = new([], []);
}

internal sealed record CallExpr(JinjaExpr Function, JinjaArguments Arguments, int Line, int Column) : JinjaExpr(Line, Column);

/// <summary><c>value | name(args)</c></summary>
internal sealed record FilterExpr(JinjaExpr Value, string Name, JinjaArguments Arguments, int Line, int Column) : JinjaExpr(Line, Column);

/// <summary><c>value is [not] name(args)</c></summary>
internal sealed record TestExpr(JinjaExpr Value, string Name, JinjaArguments Arguments, bool Negated, int Line, int Column) : JinjaExpr(Line, Column);

/// <summary><c>not x</c>, <c>-x</c>, <c>+x</c></summary>
internal sealed record UnaryExpr(string Operator, JinjaExpr Operand, int Line, int Column) : JinjaExpr(Line, Column);

/// <summary>Arithmetic, concatenation (~), and/or, comparisons, in / not in.</summary>
internal sealed record BinaryExpr(string Operator, JinjaExpr Left, JinjaExpr Right, int Line, int Column) : JinjaExpr(Line, Column);

/// <summary><c>then if condition else otherwise</c> (otherwise may be absent: undefined).</summary>
internal sealed record ConditionalExpr(JinjaExpr Condition, JinjaExpr Then, JinjaExpr? Otherwise, int Line, int Column) : JinjaExpr(Line, Column);
