using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol.Keys;
using AscendCC.Protocol.Pki;

namespace AscendCC.Device.Security;

/// <summary>
/// The hardware security module: owns the fused secret, derives the identity key and, DICE-style,
/// the attestation key of the running firmware. No method returns the secret or a private key
/// outside this assembly's security engine.
/// </summary>
internal sealed class RootOfTrust : IDisposable
{
    private readonly DeviceFuses _fuses;
    private readonly ECDsa _identityKey;

    public RootOfTrust(DeviceFuses fuses)
    {
        _fuses = fuses ?? throw new ArgumentNullException(nameof(fuses));
        _identityKey = DeviceKeyDerivation.DeriveIdentityKey(fuses.DeviceSecret);
        using ECDsa? certified = fuses.IdentityCertificate.GetECDsaPublicKey();
        if (certified is null || !certified.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(_identityKey.ExportSubjectPublicKeyInfo()))
        {
            _identityKey.Dispose();
            throw new CryptographicException("The fused identity certificate does not certify the key derived from the fused secret: provisioning is inconsistent.");
        }
    }

    public DeviceFuses Fuses => _fuses;

    /// <summary>
    /// Derives the attestation key for <paramref name="firmwareMeasurement"/>: CDI = HKDF-Extract(salt =
    /// firmware measurement, IKM = device secret), key = deterministic P-384 from the CDI. Other firmware
    /// yields an unrelated key, so it cannot sign as this firmware. The certificate is issued by the
    /// identity key and names the measurement and SVN (DICE TCB info).
    /// </summary>
    public AttestationIdentity DeriveAttestationIdentity(ReadOnlySpan<byte> firmwareMeasurement, uint securityVersion)
    {
        Span<byte> cdi = stackalloc byte[SHA384.HashSizeInBytes];
        ECDsa key;
        try
        {
            HKDF.Extract(HashAlgorithmName.SHA384, _fuses.DeviceSecret, firmwareMeasurement, cdi);
            key = DeterministicEcKey.DeriveP384(cdi, ReadOnlySpan<byte>.Empty, "AscendCC attestation key v1");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(cdi);
        }

        try
        {
            X509Certificate2 identity = _fuses.IdentityCertificate;
            var request = new CertificateRequest(new X500DistinguishedName("CN=AscendCC NPU attestation key, O=AscendCC"), key, HashAlgorithmName.SHA384);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ProtocolOids.AttestationKeyUsage)], false));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(identity, includeKeyIdentifier: true, includeIssuerAndSerial: false));
            request.CertificateExtensions.Add(new DiceTcbInfo(firmwareMeasurement, securityVersion).ToExtension());

            // Serial and validity derive from public data so the same firmware gets the same certificate fields on every boot.
            byte[] serial = SHA256.HashData(key.ExportSubjectPublicKeyInfo())[..16];
            serial[0] &= 0x7F;
            X509Certificate2 certificate = request.Create(
                identity.SubjectName,
                X509SignatureGenerator.CreateForECDsa(_identityKey),
                identity.NotBefore.ToUniversalTime(),
                identity.NotAfter.ToUniversalTime(),
                serial);
            return new AttestationIdentity(key, certificate);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    public void Dispose() => _identityKey.Dispose();
}

/// <summary>The attestation key of the booted firmware and its certificate.</summary>
internal sealed class AttestationIdentity : IDisposable
{
    public AttestationIdentity(ECDsa key, X509Certificate2 certificate)
    {
        Key = key;
        Certificate = certificate;
    }

    public ECDsa Key { get; }

    public X509Certificate2 Certificate { get; }

    public void Dispose()
    {
        Key.Dispose();
        Certificate.Dispose();
    }
}
