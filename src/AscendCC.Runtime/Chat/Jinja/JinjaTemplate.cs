namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>A parsed Jinja template (the subset chat templates use), ready to render any number of times.</summary>
internal sealed class JinjaTemplate
{
    private readonly IReadOnlyList<JinjaNode> _body;

    private JinjaTemplate(IReadOnlyList<JinjaNode> body, string source)
    {
        _body = body;
        Source = source;
    }

    /// <summary>What the template came from, for errors.</summary>
    public string Source { get; }

    /// <summary>Parses <paramref name="text"/>; syntax errors, unknown filters and unknown tests are thrown here with their line and column.</summary>
    public static JinjaTemplate Parse(string text, string source = "template")
    {
        ArgumentNullException.ThrowIfNull(text);
        return new JinjaTemplate(JinjaParser.Parse(text, source), source);
    }

    /// <summary>Renders with <paramref name="variables"/> (.NET values, converted) over the globals.</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(variables);
        Dictionary<string, object?> scope = JinjaGlobals.Create(clock ?? TimeProvider.System);
        foreach (var (name, value) in variables)
        {
            scope[name] = JinjaValue.From(value);
        }
        return JinjaRenderer.Render(_body, scope, Source);
    }
}
