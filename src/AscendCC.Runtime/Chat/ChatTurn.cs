namespace AscendCC.Runtime.Chat;

/// <summary>One message of a conversation as a chat template sees it: <c>{"role": ..., "content": ...}</c>.</summary>
/// <param name="Role">"system", "user", "assistant" or "tool" (templates may accept others).</param>
/// <param name="Content">The message's text.</param>
public sealed record ChatTurn(string Role, string Content)
{
    /// <summary>A system message.</summary>
    public static ChatTurn System(string content) => new("system", content);

    /// <summary>A user message.</summary>
    public static ChatTurn User(string content) => new("user", content);

    /// <summary>An assistant message.</summary>
    public static ChatTurn Assistant(string content) => new("assistant", content);
}
