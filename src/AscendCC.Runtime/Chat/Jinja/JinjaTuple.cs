using System.Collections;

namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>A Python tuple: renders and compares as one, indexes like a list.</summary>
internal sealed class JinjaTuple(IReadOnlyList<object?> items) : IReadOnlyList<object?>
{
    public object? this[int index] => items[index];

    public int Count => items.Count;

    public IEnumerator<object?> GetEnumerator() => items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
