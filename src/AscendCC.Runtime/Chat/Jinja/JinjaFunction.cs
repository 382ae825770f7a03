namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>A function the template can call: a global (range, namespace, raise_exception…), a macro or a bound method.</summary>
internal sealed class JinjaFunction(string name, Func<IReadOnlyList<object?>, IReadOnlyDictionary<string, object?>, object?> body)
{
    public string Name { get; } = name;

    public object? Invoke(IReadOnlyList<object?> positional, IReadOnlyDictionary<string, object?> keywords) => body(positional, keywords);
}
