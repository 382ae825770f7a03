using System.Security.Cryptography;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Runtime.Trusted.ModelProviders;

/// <summary>
/// One release of a model key to one device. Flow: send <see cref="Nonce"/> to the device → pass its
/// hello to <see cref="Attest"/> (throws <see cref="AttestationFailedException"/> unless the report
/// satisfies the package's release policy) → relay the returned open message → pass the device's
/// answer to <see cref="CompleteAndRelease"/>, which returns the encrypted key-release record.
/// </summary>
public sealed class KeyReleaseSession : IDisposable
{
    private readonly ProtectedModel _model;
    private readonly byte[] _providerSpki;
    private readonly AttestedHandshake _handshake;

    internal KeyReleaseSession(ProtectedModel model, AttestationVerifier verifier, byte[] providerSpki)
    {
        _model = model;
        _providerSpki = providerSpki;
        ReleasePolicy policy = model.Manifest.Policy;
        var verification = new VerificationPolicy
        {
            // The package's signed minimum is an explicit floor; the verifier's TCB recovery statement can
            // only raise it. A package minimum of 0 sets no floor of its own, so the statement must supply
            // one (the default policy then fails closed on a verifier without a statement).
            MinimumSvn = policy.MinimumSvn == 0 ? null : policy.MinimumSvn,
            AllowedFirmwareMeasurements = policy.RequiredFirmwareMeasurements,
            AllowDevTools = false,
            AllowDebugUnlocked = false,
        };
        _handshake = new AttestedHandshake(ChannelRole.ModelProvider, verifier, verification, null);
    }

    /// <summary>The fresh nonce to send to the device.</summary>
    public ReadOnlyMemory<byte> Nonce => _handshake.Nonce;

    /// <summary>The verification result, once <see cref="Attest"/> ran.</summary>
    public AttestationResult? Result => _handshake.Result;

    /// <summary>Verifies the device hello against the package's release policy; returns the channel-open message.</summary>
    /// <exception cref="AttestationFailedException">The device does not satisfy the policy.</exception>
    public byte[] Attest(ReadOnlySpan<byte> deviceHello) => _handshake.Attest(deviceHello);

    /// <summary>Checks the device's key confirmation and returns the key-release record for the device.</summary>
    /// <exception cref="ChannelHandshakeException">The answer is not from the attested device.</exception>
    public byte[] CompleteAndRelease(ReadOnlySpan<byte> acceptRecord)
    {
        using SecureChannel channel = _handshake.Complete(acceptRecord);
        byte[] plaintext = ModelKeyRelease.Encode(_model.Manifest.Digest.Span, _providerSpki, _model.Key);
        try
        {
            return channel.Seal(RecordType.ModelKeyRelease, plaintext);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    /// <summary>Abandons the session.</summary>
    public void Dispose() => _handshake.Dispose();
}
