namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>What <c>namespace(...)</c> returns: the one object whose attributes <c>{% set ns.x = ... %}</c> may assign, from any scope.</summary>
internal sealed class JinjaNamespace
{
    public Dictionary<string, object?> Values { get; } = new(StringComparer.Ordinal);
}
