using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Messages;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Runtime.Trusted.DataOwners;

/// <summary>
/// The data owner's session with one attested device: its own handshake (so its keys are independent
/// of the model provider's), then encrypted prompts out and fixed-size encrypted tokens back.
/// Flow: <see cref="Nonce"/> → <see cref="Attest"/> (device hello) → <see cref="Complete"/> (device answer)
/// → <see cref="EncryptPrompt"/> / <see cref="DecryptToken"/>.
/// </summary>
public sealed class DataOwnerSession : IDisposable
{
    private readonly AttestedHandshake _handshake;
    private SecureChannel? _channel;

    /// <summary>Starts a session verified by <paramref name="verifier"/> under <paramref name="policy"/>.</summary>
    public DataOwnerSession(AttestationVerifier verifier, VerificationPolicy? policy = null, SecureChannelOptions? channelOptions = null)
    {
        _handshake = new AttestedHandshake(ChannelRole.DataOwner, verifier, policy ?? VerificationPolicy.Default, channelOptions);
    }

    /// <summary>The fresh nonce to send to the device.</summary>
    public ReadOnlyMemory<byte> Nonce => _handshake.Nonce;

    /// <summary>The verification result, once <see cref="Attest"/> ran.</summary>
    public AttestationResult? Result => _handshake.Result;

    /// <summary>Verifies the device hello; returns the channel-open message for the device.</summary>
    /// <exception cref="AttestationFailedException">The device does not satisfy the policy.</exception>
    public byte[] Attest(ReadOnlySpan<byte> deviceHello) => _handshake.Attest(deviceHello);

    /// <summary>Checks the device's key confirmation; the session is then ready.</summary>
    public void Complete(ReadOnlySpan<byte> acceptRecord) => _channel = _handshake.Complete(acceptRecord);

    /// <summary>Encrypts a tokenized prompt (padded to its size bucket).</summary>
    public byte[] EncryptPrompt(ReadOnlySpan<int> tokens) => RequireChannel().Seal(RecordType.Prompt, PromptMessage.Encode(tokens));

    /// <summary>Decrypts the next output token record.</summary>
    /// <exception cref="SecureChannelException">Tampered, replayed, dropped or reordered record.</exception>
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
        return TokenMessage.Decode(plaintext);
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
