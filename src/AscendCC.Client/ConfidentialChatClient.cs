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
public sealed class ConfidentialChatClient : TokenChatClient
{
    private readonly RemoteNpu _npu;
    private readonly AttestationVerifier _verifier;
    private readonly ConfidentialChatClientOptions _options;

    /// <summary>A client of the model on <paramref name="npu"/>.</summary>
    /// <param name="npu">The remote NPU (an untrusted relay).</param>
    /// <param name="verifier">The data owner's verifier (the manufacturer root it trusts, and its publications).</param>
    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="options">The required model and how chats become prompts.</param>
    public ConfidentialChatClient(RemoteNpu npu, AttestationVerifier verifier, TextTokenizer tokenizer, ConfidentialChatClientOptions options)
        : base(tokenizer, options, "AscendCC")
    {
        ArgumentNullException.ThrowIfNull(npu);
        ArgumentNullException.ThrowIfNull(verifier);
        if (options.RequiredModel.IsEmpty)
        {
            throw new ArgumentException("a confidential chat needs the model it requires: set RequiredModel to the graph measurement the model provider publishes", nameof(options));
        }
        _npu = npu;
        _verifier = verifier;
        _options = options;
    }

    /// <summary>The attestation of the latest request: every named check, the device's report, the verdict.</summary>
    public AttestationResult? LastAttestation { get; private set; }

    /// <summary>
    /// Attests the NPU, opens a channel bound to that attestation, seals the prompt with the sampling
    /// settings and the required model, and decrypts each sealed token as the server streams it. The
    /// session is closed at the end, so the device scrubs its context.
    /// </summary>
    protected override async IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions sampling,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        RemoteNpu npu = _options.Package is { } package ? await _npu.PlaceAsync(package, cancellationToken).ConfigureAwait(false) : _npu;
        using var owner = new DataOwnerSession(_verifier, _options.Policy) { RequiredModel = _options.RequiredModel };
        byte[] open;
        try
        {
            open = owner.Attest(await npu.GetHelloAsync(owner.Nonce, cancellationToken).ConfigureAwait(false));
        }
        finally
        {
            LastAttestation = owner.Result;
        }
        RemoteSession session = await npu.AcceptChannelAsync(open, cancellationToken).ConfigureAwait(false);
        try
        {
            owner.Complete(session.Accept);
            await foreach (byte[] record in npu.GenerateAsync(session.Session, owner.EncryptPrompt([.. prompt], sampling), prompt.Count, maxTokens, cancellationToken).ConfigureAwait(false))
            {
                TokenMessage token = owner.DecryptToken(record);
                yield return token.TokenId;
            }
        }
        finally
        {
            // The device scrubs the session's context; a failed close must not hide the reply's outcome.
            try
            {
                await npu.CloseSessionAsync(session.Session, CancellationToken.None).ConfigureAwait(false);
            }
            catch (RemoteNpuException)
            {
            }
            catch (HttpRequestException)
            {
            }
        }
    }

    /// <summary>Every response carries the attestation it was answered under (<c>AdditionalProperties["attestation"]</c>).</summary>
    protected override void Describe(ChatResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.AdditionalProperties = new AdditionalPropertiesDictionary { ["attestation"] = LastAttestation };
    }

    /// <inheritdoc />
    public override object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is null && serviceType == typeof(AttestationResult) ? LastAttestation : base.GetService(serviceType, serviceKey);
    }
}
