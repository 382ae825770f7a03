using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Keys;
using AscendCC.Protocol.Measurements;
using AscendCC.Protocol.Pki;
using AscendCC.Runtime.Trusted.Manufacturing;

namespace AscendCC.Runtime.Tests.Trusted;

/// <summary>
/// The device's attestation and channel end rebuilt from the Protocol building blocks, because this
/// project sees the device only through its (future) public hardware interface. Unlike the genuine
/// firmware it can be told to lie (claim another mode than it measured, run unpublished firmware),
/// which is exactly what the verifier tests need. The genuine engine is covered by Device.Tests.
/// </summary>
internal sealed class EmulatedDevice : IDisposable
{
    private readonly ECDsa _attestationKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly X509Certificate2 _identityCertificate;
    private readonly X509Certificate2 _attestationCertificate;
    private readonly MeasurementSet _measurements;
    private readonly FirmwareImage _firmware;
    private readonly Dictionary<string, ECDiffieHellman> _pending = [];
    private readonly EmulatedLies _lies;

    public EmulatedDevice(DeviceProvisioning provisioning, FirmwareImage firmware, CcMode mode = CcMode.On, DebugState debug = DebugState.Locked, CcMode? measuredMode = null,
        EmulatedLies? lies = null)
    {
        _firmware = firmware;
        Mode = mode;
        Debug = debug;
        var registers = new MeasurementRegisters();
        registers.Extend(MeasurementRegisterId.BootRom, KnownBootRom.Identity);
        registers.ExtendDigest(MeasurementRegisterId.Firmware, FirmwareImage.ComputeEventDigest(firmware.Encode()));
        registers.Extend(MeasurementRegisterId.Configuration, [(byte)mode]);
        lies ??= new EmulatedLies();
        _lies = lies;
        registers.Extend(MeasurementRegisterId.DebugState, [(byte)(lies.MeasuredDebug ?? debug)]);
        registers.Extend(MeasurementRegisterId.CcMode, [(byte)(measuredMode ?? mode)]);
        if (lies.LoadedModel is { } model)
        {
            registers.ExtendDigest(MeasurementRegisterId.Model, model);
        }
        _measurements = registers.Snapshot();

        byte[] secret = new byte[32];
        provisioning.CopyDeviceSecretTo(secret);
        using ECDsa identityKey = DeviceKeyDerivation.DeriveIdentityKey(secret);
        CryptographicOperations.ZeroMemory(secret);
        _identityCertificate = X509CertificateLoader.LoadCertificate(provisioning.IdentityCertificate.RawData);
        using RSA rsa = RSA.Create(2048);
        var request = lies.CertifyAnRsaKey
            ? new CertificateRequest("CN=Emulated attestation key", rsa, HashAlgorithmName.SHA384, RSASignaturePadding.Pkcs1)
            : new CertificateRequest("CN=Emulated attestation key", _attestationKey, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ProtocolOids.AttestationKeyUsage)], false));
        if (!lies.OmitDiceTcbInfo)
        {
            request.CertificateExtensions.Add(new DiceTcbInfo(_measurements[MeasurementRegisterId.Firmware], lies.DiceSvn ?? firmware.SecurityVersion).ToExtension());
        }
        _attestationCertificate = request.Create(_identityCertificate.SubjectName, X509SignatureGenerator.CreateForECDsa(identityKey), _identityCertificate.NotBefore, _identityCertificate.NotAfter, [7, 7]);
    }

    public CcMode Mode { get; }

    public DebugState Debug { get; }

    public MeasurementSet Measurements => _measurements;

    public byte[] CreateHello(ReadOnlySpan<byte> nonce)
    {
        var ephemeral = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP384);
        byte[] share = _lies.KeyShare?.ToArray() ?? KeyShare.Export(ephemeral);
        byte[] report = AttestationReport.CreateSigned(_measurements, Mode, Debug, _firmware.Version, _firmware.SecurityVersion, nonce, share, _identityCertificate, _attestationCertificate, _attestationKey);
        _pending[Convert.ToHexString(SHA384.HashData(report))] = ephemeral;
        return new DeviceHello(report, share).Encode();
    }

    public SecureChannel Accept(ReadOnlySpan<byte> openMessage, out byte[] acceptRecord, SecureChannelOptions? options = null)
    {
        ChannelOpen open = ChannelOpen.Parse(openMessage);
        string id = Convert.ToHexString(open.ReportDigest.Span);
        if (!_pending.Remove(id, out ECDiffieHellman? ephemeral))
        {
            throw new ChannelHandshakeException("unknown report");
        }
        using (ephemeral)
        {
            return ChannelResponder.Accept(ephemeral, open.ReportDigest.Span, open, options ?? SecureChannelOptions.Default, out acceptRecord);
        }
    }

    public void Dispose()
    {
        _attestationKey.Dispose();
        _identityCertificate.Dispose();
        _attestationCertificate.Dispose();
        foreach (ECDiffieHellman key in _pending.Values)
        {
            key.Dispose();
        }
    }
}

/// <summary>What an <see cref="EmulatedDevice"/> misstates, each to exercise one verifier check.</summary>
internal sealed record EmulatedLies
{
    /// <summary>Record another debug state in the DebugState register than the report claims.</summary>
    public DebugState? MeasuredDebug { get; init; }

    /// <summary>Extend the Model register with this graph measurement (a device that loaded that model).</summary>
    public byte[]? LoadedModel { get; init; }

    /// <summary>Certify the attestation key without the DICE TCB info extension.</summary>
    public bool OmitDiceTcbInfo { get; init; }

    /// <summary>Certify the attestation key for another firmware SVN than the report claims.</summary>
    public uint? DiceSvn { get; init; }

    /// <summary>Certify an RSA key as the attestation key (the report is still signed with the ECDSA one).</summary>
    public bool CertifyAnRsaKey { get; init; }

    /// <summary>Attest (and send) these bytes as the channel key share.</summary>
    public byte[]? KeyShare { get; init; }
}
