using AscendCC.Runtime.Chat;
using Microsoft.Extensions.AI;

namespace AscendCC.Client;

/// <summary>How a <see cref="TokenChatClient"/> turns a chat into prompt tokens and where a reply ends.</summary>
public record TokenChatClientOptions
{
    /// <summary>
    /// Turns the chat into the model's prompt text. Default: the messages' texts joined with newlines,
    /// for a base model that continues text. For an instruction-tuned model set
    /// <see cref="ChatTemplate"/> instead (or use <see cref="FromChatTemplate"/>), which takes precedence.
    /// </summary>
    public Func<IReadOnlyList<ChatMessage>, string> Template { get; init; } = DefaultTemplate;

    /// <summary>
    /// The model's Hugging Face chat template. When set, the chat is rendered with it (system, user,
    /// assistant and tool messages as <see cref="ChatTurn"/>s, ending with the generation prompt), its
    /// special tokens are encoded as their ids, a BOS is added only when the template does not write
    /// one, and the template's end-of-turn tokens (<see cref="ChatTemplate.EndOfTurnTokens"/>) end a reply.
    /// </summary>
    public ChatTemplate? ChatTemplate { get; init; }

    /// <summary>Token ids that end a reply besides the tokenizer's end-of-sequence id (e.g. config.json's eos_token_id).</summary>
    public IReadOnlyCollection<int> StopTokenIds { get; init; } = [];

    /// <summary>Most new tokens when <see cref="ChatOptions.MaxOutputTokens"/> is not set.</summary>
    public int DefaultMaxOutputTokens { get; init; } = 256;

    /// <summary>The model's name reported in responses (<see cref="ChatResponse.ModelId"/>), e.g. the package name.</summary>
    public string? ModelId { get; init; }

    /// <summary>The default template: the messages' texts, one after another.</summary>
    public static string DefaultTemplate(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return string.Join("\n", messages.Select(m => m.Text));
    }

    /// <summary>
    /// Options that render chats with <paramref name="template"/> (see <see cref="ChatTemplate"/>);
    /// <see cref="Template"/> then shows the same rendering as text.
    /// </summary>
    public static TokenChatClientOptions FromChatTemplate(ChatTemplate template, IReadOnlyCollection<int>? stopTokenIds = null, string? modelId = null)
    {
        ArgumentNullException.ThrowIfNull(template);
        return new TokenChatClientOptions
        {
            ChatTemplate = template,
            Template = messages => template.Render(ToChatTurns(messages), addGenerationPrompt: true),
            StopTokenIds = stopTokenIds ?? [],
            ModelId = modelId,
        };
    }

    /// <summary>
    /// Microsoft.Extensions.AI messages as chat-template turns: the role's name ("system", "user",
    /// "assistant", "tool"; any other as is) and the message's text.
    /// </summary>
    public static IReadOnlyList<ChatTurn> ToChatTurns(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return [.. messages.Select(m => new ChatTurn(m.Role.Value, m.Text))];
    }
}
