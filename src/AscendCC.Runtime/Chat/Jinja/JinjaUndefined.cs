namespace AscendCC.Runtime.Chat.Jinja;

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
