using System.Runtime.CompilerServices;
using AscendCC.Runtime.Chat;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Tokenizers;
using Microsoft.Extensions.AI;

namespace AscendCC.Client;

/// <summary>
/// An <see cref="IChatClient"/> over a model that generates token ids: renders the chat with the
/// options' chat template (or text template), tokenizes it, and decodes the generated ids into text as they arrive, ending at
/// an end-of-sequence id or one of <see cref="ChatOptions.StopSequences"/> (matched across token
/// boundaries, never shown). Where the ids come from is the subclass's one job:
/// <see cref="ConfidentialChatClient"/> seals the prompt for a remote NPU and decrypts the sealed
/// tokens; a CC-off host runs its own device.
/// </summary>
public abstract class TokenChatClient : IChatClient
{
    private readonly TokenChatClientOptions _options;
    private readonly HashSet<int> _stopIds;

    /// <summary>A client that tokenizes with <paramref name="tokenizer"/> as <paramref name="options"/> say.</summary>
    protected TokenChatClient(TextTokenizer tokenizer, TokenChatClientOptions options, string providerName)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(options);
        Tokenizer = tokenizer;
        _options = options;
        _stopIds = [.. options.StopTokenIds];
        if (options.ChatTemplate is { } template)
        {
            // <|eot_id|>, <|im_end|>, <end_of_turn>…: an instruction-tuned model ends its turn with these, not always with EOS.
            _stopIds.UnionWith(template.EndOfTurnTokenIds(tokenizer));
        }
        if (SafeEos(tokenizer) is { } eos)
        {
            _stopIds.Add(eos);
        }
        Metadata = new ChatClientMetadata(providerName, null, options.ModelId);
    }

    /// <summary>The model's tokenizer.</summary>
    protected TextTokenizer Tokenizer { get; }

    /// <summary>The ids that end a reply (the tokenizer's end of sequence and the options' stop ids).</summary>
    protected IReadOnlyCollection<int> StopIds => _stopIds;

    /// <summary>The client's metadata (its provider name and the options' model id).</summary>
    public ChatClientMetadata Metadata { get; }

    /// <summary>
    /// Generates at most <paramref name="maxTokens"/> ids after <paramref name="prompt"/>. The caller
    /// stops reading at a stop id or stop sequence; an implementation releases what it holds when the
    /// enumeration is disposed.
    /// </summary>
    protected abstract IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions sampling, CancellationToken cancellationToken);

    /// <summary>
    /// The token-level API under the chat: at most <paramref name="maxTokens"/> ids after
    /// <paramref name="prompt"/>, each as it is decoded, for a caller that keeps its own token context
    /// (its own template, history and context management). Stop ids are not applied here: the caller
    /// stops reading where it wants, and disposing the enumeration releases the session.
    /// </summary>
    /// <exception cref="ArgumentException">An empty prompt, fewer than one token asked for, or a sampling setting out of range.</exception>
    public IAsyncEnumerable<int> GenerateTokensAsync(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions? sampling = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the prompt needs at least one token", nameof(prompt));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        sampling ??= SamplingOptions.Greedy;
        sampling.Validate();
        return GenerateAsync(prompt, maxTokens, sampling, cancellationToken);
    }

    /// <summary>Adds what a subclass reports with every response (e.g. the attestation).</summary>
    protected virtual void Describe(ChatResponse response)
    {
    }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        ChatResponseUpdate? last = null;
        await foreach (ChatResponseUpdate update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            text.Append(update.Text);
            last = update;
        }
        var response = new ChatResponse(new ChatMessage(ChatRole.Assistant, text.ToString()))
        {
            ModelId = _options.ModelId,
            FinishReason = last?.FinishReason,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        if (last?.Contents.OfType<UsageContent>().FirstOrDefault() is { } usage)
        {
            response.Usage = usage.Details;
        }
        Describe(response);
        return response;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        IReadOnlyList<ChatMessage> chat = [.. messages];
        // Checked with or without a template, so a malformed value is refused the same everywhere.
        IReadOnlyDictionary<string, object?>? variables = TemplateVariablesOf(options);
        IReadOnlyList<int> prompt = _options.ChatTemplate is { } template
            ? template.Encode(Tokenizer, TokenChatClientOptions.ToChatTurns(chat), addGenerationPrompt: true, variables)
            : Tokenizer.Encode(_options.Template(chat), addBos: Tokenizer.HasBos);
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the chat renders to no tokens; give a message with text", nameof(messages));
        }
        int maxTokens = options?.MaxOutputTokens ?? _options.DefaultMaxOutputTokens;
        if (maxTokens < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), maxTokens, "ask for at least one output token (MaxOutputTokens)");
        }
        var sampling = SamplingOf(options);
        string responseId = Guid.NewGuid().ToString("N");
        var text = new TextStreamDecoder(Tokenizer, prompt);
        var stops = new StopSequences(options?.StopSequences ?? []);
        int produced = 0;
        ChatFinishReason finish = ChatFinishReason.Length;
        await foreach (int token in GenerateAsync(prompt, maxTokens, sampling, cancellationToken).ConfigureAwait(false))
        {
            produced++;
            if (_stopIds.Contains(token))
            {
                finish = ChatFinishReason.Stop;
                break;
            }
            string piece = stops.Push(text.Push(token));
            if (piece.Length > 0)
            {
                yield return Update(responseId, piece);
            }
            if (stops.Stopped)
            {
                finish = ChatFinishReason.Stop;
                break;
            }
        }
        string rest = stops.Push(text.Flush()) + stops.Flush();
        ChatResponseUpdate end = Update(responseId, rest);
        end.FinishReason = finish;
        end.Contents.Add(new UsageContent(new UsageDetails { InputTokenCount = prompt.Count, OutputTokenCount = produced, TotalTokenCount = prompt.Count + produced }));
        yield return end;
    }

    private ChatResponseUpdate Update(string responseId, string text) => new(ChatRole.Assistant, text)
    {
        ResponseId = responseId,
        ModelId = _options.ModelId,
    };

    private static int? SafeEos(TextTokenizer tokenizer)
    {
        try
        {
            return tokenizer.EosId;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public virtual object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(ChatClientMetadata) ? Metadata
            : serviceType.IsInstanceOfType(this) ? this
            : null;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the subclass holds.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }

    /// <summary>
    /// The device's sampling settings from the chat options: temperature, top-k, top-p, seed and the
    /// frequency and presence penalties by their own names; llama.cpp's <c>min_p</c>, <c>repeat_penalty</c>
    /// and <c>repeat_last_n</c> from <see cref="ChatOptions.AdditionalProperties"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A setting is out of range or an additional property is not a number.</exception>
    public static SamplingOptions SamplingOf(ChatOptions? options)
    {
        var sampling = new SamplingOptions(options?.Temperature ?? 0f, options?.TopK ?? 0, options?.TopP ?? 1f, options?.Seed is { } seed ? unchecked((ulong)seed) : 42UL,
            MinP: Extra(options, "min_p", 0f),
            RepeatPenalty: Extra(options, "repeat_penalty", 1f),
            RepeatLastN: (int)Extra(options, "repeat_last_n", 64f),
            FrequencyPenalty: options?.FrequencyPenalty ?? 0f,
            PresencePenalty: options?.PresencePenalty ?? 0f);
        sampling.Validate();
        return sampling;
    }

    /// <summary>The <see cref="ChatOptions.AdditionalProperties"/> key whose value holds extra chat-template variables.</summary>
    public const string ChatTemplateKwargs = "chat_template_kwargs";

    /// <summary>
    /// Extra chat-template variables from <see cref="ChatOptions.AdditionalProperties"/>'s
    /// <c>chat_template_kwargs</c> (the name vLLM's and llama.cpp's servers give them, e.g.
    /// <c>{ "enable_thinking": false }</c> for Qwen3): a dictionary of strings, booleans, numbers and
    /// nulls, or a JSON object of them; null when there is none. A client without a
    /// <see cref="TokenChatClientOptions.ChatTemplate"/> renders with its plain template function and ignores them.
    /// </summary>
    /// <exception cref="ArgumentException">The value is not such a dictionary, or one of its values is a list or an object.</exception>
    public static IReadOnlyDictionary<string, object?>? TemplateVariablesOf(ChatOptions? options)
    {
        if (options?.AdditionalProperties is not { } extra || !extra.TryGetValue(ChatTemplateKwargs, out object? value) || value is null)
        {
            return null;
        }
        if (value is System.Text.Json.JsonElement json)
        {
            return ChatTemplate.VariablesFromJson(json);
        }
        if (value is not IEnumerable<KeyValuePair<string, object?>> pairs)
        {
            throw new ArgumentException($"chat option '{ChatTemplateKwargs}' must be an object of template variables (e.g. {{\"enable_thinking\": false}}), not '{value}'", nameof(options));
        }
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach ((string name, object? v) in pairs)
        {
            variables[name] = v switch
            {
                null or string or bool or int or long or float or double => v,
                System.Text.Json.JsonElement j => ChatTemplate.VariableFromJson(name, j),
                _ => throw new ArgumentException($"chat template variable '{name}' is a {v.GetType().Name}; only strings, booleans, numbers and null are passed to the template", nameof(options)),
            };
        }
        return variables;
    }

    private static float Extra(ChatOptions? options, string name, float otherwise)
    {
        if (options?.AdditionalProperties is not { } extra || !extra.TryGetValue(name, out object? value) || value is null)
        {
            return otherwise;
        }
        return value switch
        {
            float f => f,
            double d => (float)d,
            int i => i,
            long l => l,
            string s when float.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out float parsed) => parsed,
            System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.Number } j => j.GetSingle(),
            _ => throw new ArgumentException($"chat option '{name}' must be a number, not '{value}'", nameof(options)),
        };
    }
}
