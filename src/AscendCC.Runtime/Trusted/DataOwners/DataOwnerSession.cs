using System.Security.Cryptography;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Messages;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Runtime.Trusted.DataOwners;

/// <summary>
/// The data owner's session with one attested device: its own handshake (so its keys are independent
/// of the model provider's), then encrypted prompts out and fixed-size encrypted tokens back. Each
/// prompt carries, sealed, the data owner's sampling settings and the model it requires; the device
/// binds the session to one model for its lifetime, and every token names the model that produced it.
/// Flow: <see cref="Nonce"/> → <see cref="Attest"/> (device hello) → <see cref="Complete"/> (device answer)
/// → <see cref="EncryptPrompt"/> / <see cref="DecryptToken"/>.
/// </summary>
public sealed class DataOwnerSession : IDisposable
{
    private readonly AttestedHandshake _handshake;
    private SecureChannel? _channel;
    private byte[]? _boundModel;

    /// <summary>Starts a session verified by <paramref name="verifier"/> under <paramref name="policy"/>.</summary>
    /// <param name="verifier">The attestation verifier.</param>
    /// <param name="policy">The verification policy; its <see cref="VerificationPolicy.ExpectedModelMeasurement"/>, if set, is also the model this session requires.</param>
    /// <param name="channelOptions">Channel options (key rotation).</param>
    public DataOwnerSession(AttestationVerifier verifier, VerificationPolicy? policy = null, SecureChannelOptions? channelOptions = null)
    {
        policy ??= VerificationPolicy.Default;
        _handshake = new AttestedHandshake(ChannelRole.DataOwner, verifier, policy, channelOptions);
        RequiredModel = policy.ExpectedModelMeasurement;
    }

    /// <summary>
    /// The graph measurement (the model provider publishes it: its manifest's expected graph
    /// measurement) of the only model allowed to answer this session. The device refuses to open the
    /// session's prompts in any other program, and <see cref="DecryptToken"/> refuses tokens from any
    /// other model. Empty: any model, and the session is bound to the first one that opens its prompt
    /// (see <see cref="BoundModel"/>).
    /// </summary>
    public ReadOnlyMemory<byte> RequiredModel { get; init; }

    /// <summary>The model the device bound this session to, as its first token reported it; null before any token.</summary>
    public ReadOnlyMemory<byte>? BoundModel => _boundModel;

    /// <summary>The fresh nonce to send to the device.</summary>
    public ReadOnlyMemory<byte> Nonce => _handshake.Nonce;

    /// <summary>The verification result, once <see cref="Attest"/> ran.</summary>
    public AttestationResult? Result => _handshake.Result;

    /// <summary>Verifies the device hello; returns the channel-open message for the device.</summary>
    /// <exception cref="AttestationFailedException">The device does not satisfy the policy.</exception>
    public byte[] Attest(ReadOnlySpan<byte> deviceHello) => _handshake.Attest(deviceHello);

    /// <summary>Checks the device's key confirmation; the session is then ready.</summary>
    public void Complete(ReadOnlySpan<byte> acceptRecord) => _channel = _handshake.Complete(acceptRecord);

    /// <summary>
    /// Encrypts a tokenized prompt (padded to its size bucket) with the sampling settings the device
    /// must use (greedy when null) and <see cref="RequiredModel"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A sampling setting is out of range.</exception>
    public byte[] EncryptPrompt(ReadOnlySpan<int> tokens, SamplingOptions? sampling = null)
    {
        sampling ??= SamplingOptions.Greedy;
        var settings = sampling.ToPromptSampling();
        return RequireChannel().Seal(RecordType.Prompt, PromptMessage.Encode(tokens, settings, RequiredModel.Span));
    }

    /// <summary>Decrypts the next output token record and checks the model that produced it.</summary>
    /// <exception cref="SecureChannelException">Tampered, replayed, dropped or reordered record.</exception>
    /// <exception cref="UnexpectedModelException">The token comes from a model other than the required (or first) one.</exception>
    public TokenMessage DecryptToken(ReadOnlySpan<byte> record)
    {
        Span<byte> plaintext = stackalloc byte[TokenMessage.EncodedSize];
        if (SecureChannel.PeekPlaintextLength(record) != TokenMessage.EncodedSize)
        {
            throw new MalformedRecordException("A token record has a fixed size; this one does not.");
        }
        RequireChannel().Open(record, plaintext, out RecordType type);
        if (type != RecordType.Token)
        {
            throw new MalformedRecordException($"Expected a token record, received {type}.");
        }
        TokenMessage token = TokenMessage.Decode(plaintext);
        ReadOnlySpan<byte> expected = !RequiredModel.IsEmpty ? RequiredModel.Span : _boundModel;
        if (token.Model.IsEmpty || (!expected.IsEmpty && !CryptographicOperations.FixedTimeEquals(expected, token.Model.Span)))
        {
            throw new UnexpectedModelException(
                $"The token at position {token.Position} was produced by model {(token.Model.IsEmpty ? "(none named)" : Convert.ToHexStringLower(token.Model.Span))}, not {Convert.ToHexStringLower(expected)} that this session {(RequiredModel.IsEmpty ? "was bound to by its first token" : "requires")}.");
        }
        _boundModel ??= token.Model.ToArray();
        return token;
    }

    /// <summary>Destroys the session keys.</summary>
    public void Dispose()
    {
        _handshake.Dispose();
        _channel?.Dispose();
    }

    private SecureChannel RequireChannel() =>
        _channel ?? throw new InvalidOperationException("Complete the attested handshake before exchanging data.");
}

/// <summary>A token came from another model than the one the data owner's session requires or was bound to.</summary>
public sealed class UnexpectedModelException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public UnexpectedModelException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public UnexpectedModelException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public UnexpectedModelException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
