namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>What a token is.</summary>
internal enum JinjaTokenKind
{
    /// <summary>Template text outside any tag (already whitespace-controlled).</summary>
    Text,

    /// <summary><c>{{</c></summary>
    VariableBegin,

    /// <summary><c>}}</c></summary>
    VariableEnd,

    /// <summary><c>{%</c></summary>
    BlockBegin,

    /// <summary><c>%}</c></summary>
    BlockEnd,

    /// <summary>An identifier or keyword.</summary>
    Name,

    /// <summary>A string literal (the value has its escapes resolved).</summary>
    String,

    /// <summary>An integer literal.</summary>
    Integer,

    /// <summary>A float literal.</summary>
    Float,

    /// <summary>An operator or punctuation.</summary>
    Operator,

    /// <summary>End of the template.</summary>
    End,
}

/// <summary>A token and where it starts in the template text (1-based line and column).</summary>
internal readonly record struct JinjaToken(JinjaTokenKind Kind, string Value, int Line, int Column)
{
    public bool Is(JinjaTokenKind kind, string value) => Kind == kind && Value == value;

    public bool IsOperator(string value) => Kind == JinjaTokenKind.Operator && Value == value;

    public bool IsName(string value) => Kind == JinjaTokenKind.Name && Value == value;

    public string Describe() => Kind switch
    {
        JinjaTokenKind.End => "the end of the template",
        JinjaTokenKind.Text => "template text",
        JinjaTokenKind.VariableEnd => "'}}'",
        JinjaTokenKind.BlockEnd => "'%}'",
        JinjaTokenKind.VariableBegin => "'{{'",
        JinjaTokenKind.BlockBegin => "'{%'",
        JinjaTokenKind.String => $"string '{Value}'",
        _ => $"'{Value}'",
    };
}
