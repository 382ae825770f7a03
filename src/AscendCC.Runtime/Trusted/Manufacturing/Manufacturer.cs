using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Keys;
using AscendCC.Protocol.Pki;

namespace AscendCC.Runtime.Trusted.Manufacturing;

/// <summary>
/// The NPU manufacturer: a root CA, a firmware-signing certificate (which also signs reference
/// measurements and TCB recovery statements), device provisioning and revocation (a CRL signed by the
/// root). Only public certificates and signed publications leave this object; the root and signing
/// keys are destroyed on disposal.
/// </summary>
public sealed class Manufacturer : IDisposable
{
    // Fixed validity keeps certificates reproducible and offline verification independent of wall-clock skew.
    private static readonly DateTimeOffset NotBefore = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset NotAfter = new(2049, 12, 31, 0, 0, 0, TimeSpan.Zero);

    private readonly ECDsa _rootKey;
    private readonly ECDsa _signingKey;
    private readonly X509Certificate2 _rootWithKey;
    private readonly X509Certificate2 _signingWithKey;
    private readonly byte[]? _seed;
    private readonly Lock _publications = new();
    private readonly CertificateRevocationListBuilder _revocations = new();
    private readonly Dictionary<string, List<byte[]>> _identitySerials = new(StringComparer.Ordinal);
    private readonly HashSet<string> _revokedSerials = new(StringComparer.Ordinal);
    private long _serial;
    private BigInteger _crlNumber;
    private ulong _tcbSequence;
    private uint _tcbMinimum;

    private Manufacturer(string name, ECDsa rootKey, ECDsa signingKey, byte[]? seed)
    {
        _rootKey = rootKey;
        _signingKey = signingKey;
        _seed = seed;

        var rootRequest = new CertificateRequest($"CN={name} Root CA, O={name}", rootKey, HashAlgorithmName.SHA384);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 2, true));
        rootRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        rootRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(rootRequest.PublicKey, false));
        _rootWithKey = rootRequest.CreateSelfSigned(NotBefore, NotAfter);
        RootCertificate = X509CertificateLoader.LoadCertificate(_rootWithKey.RawDataMemory.Span);

        var signingRequest = new CertificateRequest($"CN={name} Firmware Signing, O={name}", signingKey, HashAlgorithmName.SHA384);
        signingRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        signingRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        signingRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ProtocolOids.FirmwareSigningUsage)], false));
        signingRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(signingRequest.PublicKey, false));
        signingRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_rootWithKey, true, false));
        using X509Certificate2 signingPublic = signingRequest.Create(_rootWithKey, NotBefore, NotAfter, NextSerial());
        _signingWithKey = signingPublic.CopyWithPrivateKey(signingKey);
        FirmwareSigningCertificate = X509CertificateLoader.LoadCertificate(_signingWithKey.RawDataMemory.Span);
    }

    /// <summary>The manufacturer root certificate (public): pin it in verifiers and device fuses.</summary>
    public X509Certificate2 RootCertificate { get; }

    /// <summary>The firmware-signing certificate (public).</summary>
    public X509Certificate2 FirmwareSigningCertificate { get; }

    /// <summary>Creates a manufacturer with fresh random keys.</summary>
    public static Manufacturer Create(string name = "AscendCC Manufacturer") =>
        new(name, ECDsa.Create(ECCurve.NamedCurves.nistP384), ECDsa.Create(ECCurve.NamedCurves.nistP384), null);

    /// <summary>
    /// Creates a manufacturer whose keys and provisioned device secrets derive from <paramref name="seed"/>
    /// (for tests and reproducible simulations; never for real devices).
    /// </summary>
    public static Manufacturer CreateDeterministic(ReadOnlySpan<byte> seed, string name = "AscendCC Manufacturer")
    {
        if (seed.Length < 32)
        {
            throw new ArgumentException("A seed is at least 32 bytes.", nameof(seed));
        }
        return new Manufacturer(
            name,
            DeterministicEcKey.DeriveP384(seed, "manufacturer"u8, "AscendCC manufacturer root key"),
            DeterministicEcKey.DeriveP384(seed, "manufacturer"u8, "AscendCC manufacturer firmware signing key"),
            seed.ToArray());
    }

    /// <summary>Signs a firmware image as CMS SignedData.</summary>
    public byte[] SignFirmware(FirmwareImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return image.Sign(_signingWithKey);
    }

    /// <summary>Publishes the signed reference measurements for the given firmware releases.</summary>
    public byte[] PublishReferenceMeasurements(IEnumerable<FirmwareImage> releases)
    {
        ArgumentNullException.ThrowIfNull(releases);
        byte[] bootRom = ReferenceMeasurements.ExpectedBootRomRegister(KnownBootRom.Identity);
        var entries = releases.Select(r => new ReferenceMeasurement(r.Version, r.SecurityVersion, bootRom, ReferenceMeasurements.ExpectedFirmwareRegister(r.Encode())));
        return new ReferenceMeasurements(entries).Sign(_signingWithKey);
    }

    /// <summary>
    /// Publishes a signed TCB recovery statement: from now on, firmware below <paramref name="minimumSvn"/>
    /// is not considered secure (a fixed vulnerability), although it stays published and the devices'
    /// anti-rollback fuses may still boot it. Each statement gets the next sequence number, so a
    /// verifier can tell it supersedes every earlier one. The minimum never goes down.
    /// </summary>
    /// <param name="minimumSvn">The lowest firmware SVN still considered secure.</param>
    /// <param name="advisory">Short text naming the advisory or fixed release (at most 256 UTF-8 bytes).</param>
    /// <param name="issuedAt">Issue time (default: now).</param>
    /// <returns>The CMS-signed statement, for verifiers (<see cref="AscendCC.Runtime.Trusted.Verification.AttestationVerifier"/>).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minimumSvn"/> is below a minimum already published.</exception>
    public byte[] PublishTcbRecoveryStatement(uint minimumSvn, string advisory = "", DateTimeOffset? issuedAt = null)
    {
        ArgumentNullException.ThrowIfNull(advisory);
        lock (_publications)
        {
            if (minimumSvn < _tcbMinimum)
            {
                throw new ArgumentOutOfRangeException(nameof(minimumSvn), $"The published minimum SVN is already {_tcbMinimum}; a TCB recovery statement never lowers it.");
            }
            var statement = new TcbRecoveryStatement(_tcbSequence + 1, issuedAt ?? DateTimeOffset.UtcNow, minimumSvn, advisory);
            byte[] signed = statement.Sign(_signingWithKey);
            _tcbSequence = statement.Sequence;
            _tcbMinimum = minimumSvn;
            return signed;
        }
    }

    /// <summary>
    /// Revokes every identity certificate this manufacturer issued to the device <paramref name="serialNumber"/>
    /// (its secret leaked, it was decommissioned…). Takes effect in the next <see cref="PublishRevocationList"/>.
    /// </summary>
    /// <param name="serialNumber">The device serial number given to <see cref="ProvisionDevice"/>.</param>
    /// <param name="revokedAt">Revocation time (default: now).</param>
    /// <param name="reason">Reason code recorded in the CRL entry.</param>
    /// <exception cref="ArgumentException">This manufacturer never provisioned that device.</exception>
    public void RevokeDevice(string serialNumber, DateTimeOffset? revokedAt = null, X509RevocationReason reason = X509RevocationReason.KeyCompromise)
    {
        ArgumentException.ThrowIfNullOrEmpty(serialNumber);
        lock (_publications)
        {
            if (!_identitySerials.TryGetValue(serialNumber, out List<byte[]>? serials))
            {
                throw new ArgumentException($"This manufacturer never provisioned a device '{serialNumber}'.", nameof(serialNumber));
            }
            foreach (byte[] serial in serials)
            {
                Revoke(serial, revokedAt, reason);
            }
        }
    }

    /// <summary>Revokes one device identity certificate this manufacturer issued. Takes effect in the next <see cref="PublishRevocationList"/>.</summary>
    /// <param name="identityCertificate">The device's identity certificate (e.g. from its attestation report).</param>
    /// <param name="revokedAt">Revocation time (default: now).</param>
    /// <param name="reason">Reason code recorded in the CRL entry.</param>
    /// <exception cref="ArgumentException">The certificate was not issued by this manufacturer's root.</exception>
    public void RevokeDevice(X509Certificate2 identityCertificate, DateTimeOffset? revokedAt = null, X509RevocationReason reason = X509RevocationReason.KeyCompromise)
    {
        ArgumentNullException.ThrowIfNull(identityCertificate);
        if (!CertificateValidator.TryValidate(identityCertificate, [], RootCertificate, null, DateTime.UtcNow, out string detail))
        {
            throw new ArgumentException($"Not a certificate this manufacturer issued: {detail}.", nameof(identityCertificate));
        }
        lock (_publications)
        {
            Revoke(identityCertificate.SerialNumberBytes.Span, revokedAt, reason);
        }
    }

    /// <summary>
    /// Publishes the root-signed CRL of every certificate revoked so far (X.509 v2, ECDSA SHA-384, the
    /// next CRL number). Verifiers refuse it after its nextUpdate, so publish one at least that often.
    /// </summary>
    /// <param name="thisUpdate">Issue time (default: now).</param>
    /// <param name="validity">Time until nextUpdate (default: 7 days).</param>
    /// <returns>The DER-encoded CRL.</returns>
    public byte[] PublishRevocationList(DateTimeOffset? thisUpdate = null, TimeSpan? validity = null)
    {
        DateTimeOffset issued = thisUpdate ?? DateTimeOffset.UtcNow;
        TimeSpan lifetime = validity ?? TimeSpan.FromDays(7);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lifetime, TimeSpan.Zero, nameof(validity));
        lock (_publications)
        {
            _crlNumber++;
            return _revocations.Build(_rootWithKey, _crlNumber, issued + lifetime, HashAlgorithmName.SHA384, thisUpdate: issued);
        }
    }

    /// <summary>
    /// Provisions one device: creates its unique secret (random, or derived from the seed and
    /// <paramref name="serialNumber"/> for a deterministic manufacturer), derives its identity key the way
    /// the device will, and issues the identity certificate.
    /// </summary>
    public DeviceProvisioning ProvisionDevice(string serialNumber)
    {
        ArgumentException.ThrowIfNullOrEmpty(serialNumber);
        if (serialNumber.Any(c => !char.IsAsciiLetterOrDigit(c) && c != '-'))
        {
            throw new ArgumentException("Serial numbers use ASCII letters, digits and '-'.", nameof(serialNumber));
        }
        byte[] secret = GC.AllocateArray<byte>(DeviceKeyDerivation.DeviceSecretSize, pinned: true);
        if (_seed is null)
        {
            RandomNumberGenerator.Fill(secret);
        }
        else
        {
            HKDF.DeriveKey(HashAlgorithmName.SHA384, _seed, secret, Encoding.ASCII.GetBytes(serialNumber), "AscendCC device secret"u8);
        }

        using ECDsa identityKey = DeviceKeyDerivation.DeriveIdentityKey(secret);
        using ECDsa identityPublic = ECDsa.Create();
        identityPublic.ImportSubjectPublicKeyInfo(identityKey.ExportSubjectPublicKeyInfo(), out _);
        var request = new CertificateRequest($"CN=AscendCC NPU {serialNumber}, SERIALNUMBER={serialNumber}, O=AscendCC", identityPublic, HashAlgorithmName.SHA384);

        // CA with path length 0: the identity key certifies exactly one layer, the firmware's attestation key.
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_rootWithKey, true, false));
        byte[] certificateSerial = NextSerial();
        X509Certificate2 identity = request.Create(_rootWithKey, NotBefore, NotAfter, certificateSerial);
        lock (_publications)
        {
            if (!_identitySerials.TryGetValue(serialNumber, out List<byte[]>? serials))
            {
                _identitySerials[serialNumber] = serials = [];
            }
            serials.Add(certificateSerial);
        }
        return new DeviceProvisioning(serialNumber, secret, identity, RootCertificate);
    }

    /// <summary>Destroys the manufacturer's keys.</summary>
    public void Dispose()
    {
        _rootWithKey.Dispose();
        _signingWithKey.Dispose();
        _rootKey.Dispose();
        _signingKey.Dispose();
        if (_seed is not null)
        {
            CryptographicOperations.ZeroMemory(_seed);
        }
    }

    private void Revoke(ReadOnlySpan<byte> certificateSerial, DateTimeOffset? revokedAt, X509RevocationReason reason)
    {
        if (_revokedSerials.Add(Convert.ToHexString(certificateSerial)))
        {
            _revocations.AddEntry(certificateSerial, revokedAt ?? DateTimeOffset.UtcNow, reason);
        }
    }

    private byte[] NextSerial()
    {
        long serial = Interlocked.Increment(ref _serial);
        byte[] bytes = new byte[9];
        bytes[0] = 0x01;
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(1), serial);
        return bytes;
    }
}

/// <summary>
/// What the manufacturer burns into one NPU: its unique secret, identity certificate and the root.
/// The secret must go to the device's fuses and nowhere else; dispose this object right after.
/// </summary>
public sealed class DeviceProvisioning : IDisposable
{
    private readonly byte[] _secret;

    internal DeviceProvisioning(string serialNumber, byte[] secret, X509Certificate2 identityCertificate, X509Certificate2 root)
    {
        SerialNumber = serialNumber;
        _secret = secret;
        IdentityCertificate = identityCertificate;
        ManufacturerRoot = root;
    }

    /// <summary>Device serial number.</summary>
    public string SerialNumber { get; }

    /// <summary>The device identity certificate.</summary>
    public X509Certificate2 IdentityCertificate { get; }

    /// <summary>The manufacturer root to fuse.</summary>
    public X509Certificate2 ManufacturerRoot { get; }

    /// <summary>Copies the device secret into the fuse programmer's buffer (32 bytes); the caller zeroes it after use.</summary>
    public void CopyDeviceSecretTo(Span<byte> fuseBuffer)
    {
        if (fuseBuffer.Length != DeviceKeyDerivation.DeviceSecretSize)
        {
            throw new ArgumentException("The fuse buffer is 32 bytes.", nameof(fuseBuffer));
        }
        _secret.CopyTo(fuseBuffer);
    }

    /// <summary>The fuse image to burn into the simulated NPU (<see cref="AscendCC.Device.NpuDeviceOptions.Fuses"/>).</summary>
    public AscendCC.Device.DeviceFuseImage CreateFuseImage(uint antiRollbackCounter = 0) =>
        new(_secret, IdentityCertificate.RawData, ManufacturerRoot.RawData, antiRollbackCounter);

    /// <summary>Zeroes the secret.</summary>
    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_secret);
        IdentityCertificate.Dispose();
    }
}
