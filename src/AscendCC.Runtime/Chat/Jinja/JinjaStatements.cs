namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>A node of the template body, with where it starts (for errors).</summary>
internal abstract record JinjaNode(int Line, int Column);

internal sealed record TextNode(string Text, int Line, int Column) : JinjaNode(Line, Column);

/// <summary><c>{{ expression }}</c></summary>
internal sealed record OutputNode(JinjaExpr Value, int Line, int Column) : JinjaNode(Line, Column);

/// <summary><c>{% if %}…{% elif %}…{% else %}…{% endif %}</c></summary>
internal sealed record IfNode(IReadOnlyList<(JinjaExpr Condition, IReadOnlyList<JinjaNode> Body)> Branches, IReadOnlyList<JinjaNode>? Else, int Line, int Column) : JinjaNode(Line, Column);

/// <summary><c>{% for a[, b] in items [if filter] %}…{% else %}…{% endfor %}</c></summary>
internal sealed record ForNode(IReadOnlyList<string> Targets, JinjaExpr Items, JinjaExpr? Filter, IReadOnlyList<JinjaNode> Body, IReadOnlyList<JinjaNode>? Else, int Line, int Column) : JinjaNode(Line, Column);

/// <summary><c>{% set name = value %}</c>, <c>{% set a, b = value %}</c> or <c>{% set ns.attr = value %}</c> (<see cref="Attribute"/> set).</summary>
internal sealed record SetNode(IReadOnlyList<string> Targets, string? Attribute, JinjaExpr Value, int Line, int Column) : JinjaNode(Line, Column);

/// <summary><c>{% set name %}…{% endset %}</c>: the rendered body is the value.</summary>
internal sealed record SetBlockNode(string Target, IReadOnlyList<JinjaNode> Body, int Line, int Column) : JinjaNode(Line, Column);

/// <summary><c>{% macro name(params) %}…{% endmacro %}</c></summary>
internal sealed record MacroNode(string Name, IReadOnlyList<(string Name, JinjaExpr? Default)> Parameters, IReadOnlyList<JinjaNode> Body, int Line, int Column) : JinjaNode(Line, Column);

/// <summary><c>{% break %}</c> or <c>{% continue %}</c> (Jinja's loopcontrols extension, which Hugging Face enables).</summary>
internal sealed record LoopControlNode(bool IsBreak, int Line, int Column) : JinjaNode(Line, Column);

/// <summary>A block rendered as is: <c>{% generation %}</c> (Hugging Face's assistant-mask marker) or <c>{% filter name %}</c> when <see cref="Filter"/> is set.</summary>
internal sealed record BlockNode(string? Filter, IReadOnlyList<JinjaNode> Body, int Line, int Column) : JinjaNode(Line, Column);
