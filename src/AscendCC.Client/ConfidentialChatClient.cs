using System.Runtime.CompilerServices;
using AscendCC.Protocol.Messages;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.Verification;
using Microsoft.Extensions.AI;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Client;

/// <summary>
/// Confidential inference behind the .NET chat-client abstraction: an application that talks to an
/// <see cref="IChatClient"/> gets answers from a model on a remote NPU that the host running it cannot
/// read, by swapping one object. Each request, on this machine: attest the NPU offline against the
/// manufacturer root and the policy (every check is in <see cref="LastAttestation"/>), open a channel
/// bound to that attestation, render and tokenize the chat, seal the tokens and the sampling
/// settings with the model the data owner requires, then decrypt the sealed tokens as the server
/// streams them and decode them to text. The server only relays ciphertext.
/// </summary>
public sealed class ConfidentialChatClient : IChatClient
{
    private readonly RemoteNpu _npu;
    private readonly AttestationVerifier _verifier;
    private readonly TextTokenizer _tokenizer;
    private readonly ConfidentialChatClientOptions _options;
    private readonly HashSet<int> _stopIds;

    /// <summary>A client of the model on <paramref name="npu"/>.</summary>
    /// <param name="npu">The remote NPU (an untrusted relay).</param>
    /// <param name="verifier">The data owner's verifier (the manufacturer root it trusts, and its publications).</param>
    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="options">The required model and how chats become prompts.</param>
    public ConfidentialChatClient(RemoteNpu npu, AttestationVerifier verifier, TextTokenizer tokenizer, ConfidentialChatClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(npu);
        ArgumentNullException.ThrowIfNull(verifier);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(options);
        if (options.RequiredModel.IsEmpty)
        {
            throw new ArgumentException("a confidential chat needs the model it requires: set RequiredModel to the graph measurement the model provider publishes", nameof(options));
        }
        _npu = npu;
        _verifier = verifier;
        _tokenizer = tokenizer;
        _options = options;
        _stopIds = [.. options.StopTokenIds];
        if (SafeEos(tokenizer) is { } eos)
        {
            _stopIds.Add(eos);
        }
        Metadata = new ChatClientMetadata("AscendCC", null, options.ModelId);
    }

    /// <summary>The client's metadata (provider "AscendCC", the model id of the options).</summary>
    public ChatClientMetadata Metadata { get; }

    /// <summary>The attestation of the latest request: every named check, the device's report, the verdict.</summary>
    public AttestationResult? LastAttestation { get; private set; }

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
        response.AdditionalProperties = new AdditionalPropertiesDictionary { ["attestation"] = LastAttestation };
        return response;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        IReadOnlyList<ChatMessage> chat = [.. messages];
        IReadOnlyList<int> prompt = _tokenizer.Encode(_options.Template(chat), addBos: _tokenizer.HasBos);
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the chat renders to no tokens; give a message with text", nameof(messages));
        }
        int maxTokens = options?.MaxOutputTokens ?? _options.DefaultMaxOutputTokens;
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1, nameof(options));
        var sampling = new SamplingOptions(options?.Temperature ?? 0f, options?.TopK ?? 0, options?.TopP ?? 1f, options?.Seed is { } seed ? unchecked((ulong)seed) : 42UL);
        string responseId = Guid.NewGuid().ToString("N");

        using var owner = new DataOwnerSession(_verifier, _options.Policy) { RequiredModel = _options.RequiredModel };
        byte[] open;
        try
        {
            open = owner.Attest(await _npu.GetHelloAsync(owner.Nonce, cancellationToken).ConfigureAwait(false));
        }
        finally
        {
            LastAttestation = owner.Result;
        }
        RemoteSession session = await _npu.AcceptChannelAsync(open, cancellationToken).ConfigureAwait(false);
        try
        {
            owner.Complete(session.Accept);
            var text = new TextStreamDecoder(_tokenizer, prompt);
            var stops = new StopSequences(options?.StopSequences ?? []);
            int produced = 0;
            ChatFinishReason finish = ChatFinishReason.Length;
            await foreach (byte[] record in _npu.GenerateAsync(session.Session, owner.EncryptPrompt([.. prompt], sampling), prompt.Count, maxTokens, cancellationToken).ConfigureAwait(false))
            {
                TokenMessage token = owner.DecryptToken(record);
                produced++;
                if (_stopIds.Contains(token.TokenId))
                {
                    finish = ChatFinishReason.Stop;
                    break;
                }
                string piece = stops.Push(text.Push(token.TokenId));
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
        finally
        {
            // The device scrubs the session's context; a failed close must not hide the reply's outcome.
            try
            {
                await _npu.CloseSessionAsync(session.Session, CancellationToken.None).ConfigureAwait(false);
            }
            catch (RemoteNpuException)
            {
            }
            catch (HttpRequestException)
            {
            }
        }
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
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(ChatClientMetadata) ? Metadata
            : serviceType == typeof(AttestationResult) ? LastAttestation
            : serviceType.IsInstanceOfType(this) ? this
            : null;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // Nothing held between requests: each request's session keys are destroyed when it ends.
    }
}
