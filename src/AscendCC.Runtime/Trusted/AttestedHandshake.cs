using AscendCC.Protocol.Channels;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Runtime.Trusted;

/// <summary>
/// The common party-side flow: fresh nonce → verify the device hello under a policy → open a channel
/// bound to the verified report → check the device's key confirmation. Nothing is sent to the device
/// before every attestation check passed.
/// </summary>
internal sealed class AttestedHandshake : IDisposable
{
    private readonly ChannelRole _role;
    private readonly AttestationVerifier _verifier;
    private readonly VerificationPolicy _policy;
    private readonly SecureChannelOptions _options;
    private ChannelInitiator? _initiator;

    public AttestedHandshake(ChannelRole role, AttestationVerifier verifier, VerificationPolicy policy, SecureChannelOptions? options)
    {
        _role = role;
        _verifier = verifier ?? throw new ArgumentNullException(nameof(verifier));
        _policy = policy ?? throw new ArgumentNullException(nameof(policy));
        _options = options ?? SecureChannelOptions.Default;
        Nonce = AttestationVerifier.CreateNonce();
    }

    public byte[] Nonce { get; }

    public AttestationResult? Result { get; private set; }

    public byte[] Attest(ReadOnlySpan<byte> deviceHello, Func<AttestationResult, AttestationResult>? refine = null)
    {
        if (Result is not null)
        {
            throw new InvalidOperationException("This session already verified a hello; start a new session with a new nonce.");
        }
        AttestationResult result = _verifier.VerifyHello(deviceHello, Nonce, _policy);
        if (refine is not null)
        {
            result = refine(result);
        }
        Result = result;
        if (!result.PolicySatisfied)
        {
            throw new AttestationFailedException(result);
        }
        _initiator = ChannelInitiator.Start(_role, result.Report!, _options);
        return _initiator.OpenMessage.ToArray();
    }

    public SecureChannel Complete(ReadOnlySpan<byte> acceptRecord)
    {
        ChannelInitiator initiator = _initiator ?? throw new InvalidOperationException("Verify the device hello (Attest) before completing the handshake.");
        _initiator = null;
        using (initiator)
        {
            return initiator.Complete(acceptRecord);
        }
    }

    public void Dispose()
    {
        _initiator?.Dispose();
        _initiator = null;
    }
}
