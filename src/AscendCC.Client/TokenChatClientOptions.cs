using Microsoft.Extensions.AI;

namespace AscendCC.Client;

/// <summary>How a <see cref="TokenChatClient"/> turns a chat into prompt tokens and where a reply ends.</summary>
public record TokenChatClientOptions
{
    /// <summary>
    /// Turns the chat into the model's prompt text. Default: the messages' texts joined with newlines,
    /// for a base model that continues text; give the model's chat template for an instruction-tuned one.
    /// </summary>
    public Func<IReadOnlyList<ChatMessage>, string> Template { get; init; } = DefaultTemplate;

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
}
