using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Encoding;
using AscendCC.Protocol.Measurements;

namespace AscendCC.Protocol.Attestation;

/// <summary>
/// A signed attestation report. Parsing checks the format only; trust decisions belong to a
/// verifier, which checks the signature, certificates, nonce and policy.
/// </summary>
/// <remarks>
/// Encoding (big-endian, every length checked): magic "ACCRPT01"; measurement set (241 bytes);
/// CC mode u8; debug state u8; firmware version u32; SVN u32; nonce (32); ECDH P-384 key share (97);
/// device identity certificate (u32-prefixed DER, ≤ 8 KiB); attestation-key certificate (u32-prefixed
/// DER, ≤ 8 KiB); then the ECDSA P-384 / SHA-384 signature (IEEE P1363, 96 bytes) over every
/// preceding byte.
/// </remarks>
public sealed class AttestationReport
{
    /// <summary>Size of the verifier nonce.</summary>
    public const int NonceSize = 32;

    /// <summary>Size of the signature (r || s).</summary>
    public const int SignatureSize = 96;

    /// <summary>Largest accepted certificate.</summary>
    public const int MaxCertificateSize = 8192;

    private static ReadOnlySpan<byte> Magic => "ACCRPT01"u8;

    private readonly byte[] _encoded;
    private readonly int _signedLength;

    private AttestationReport(byte[] encoded, int signedLength, MeasurementSet measurements, CcMode ccMode, DebugState debug, uint version, uint svn, byte[] nonce, byte[] keyShare, X509Certificate2 identity, X509Certificate2 attestationKey)
    {
        _encoded = encoded;
        _signedLength = signedLength;
        Measurements = measurements;
        CcMode = ccMode;
        DebugState = debug;
        FirmwareVersion = version;
        FirmwareSvn = svn;
        Nonce = nonce;
        KeyShare = keyShare;
        IdentityCertificate = identity;
        AttestationKeyCertificate = attestationKey;
        Digest = SHA384.HashData(encoded);
    }

    /// <summary>All measurement registers at report time.</summary>
    public MeasurementSet Measurements { get; }

    /// <summary>CC mode the device booted in.</summary>
    public CcMode CcMode { get; }

    /// <summary>Debug state the device booted with.</summary>
    public DebugState DebugState { get; }

    /// <summary>Running firmware version.</summary>
    public uint FirmwareVersion { get; }

    /// <summary>Running firmware SVN.</summary>
    public uint FirmwareSvn { get; }

    /// <summary>The verifier's nonce echoed by the device.</summary>
    public ReadOnlyMemory<byte> Nonce { get; }

    /// <summary>The device's ephemeral ECDH P-384 public key for this report's channel.</summary>
    public ReadOnlyMemory<byte> KeyShare { get; }

    /// <summary>Device identity certificate (issued by the manufacturer root).</summary>
    public X509Certificate2 IdentityCertificate { get; }

    /// <summary>Attestation-key certificate (issued by the device identity key).</summary>
    public X509Certificate2 AttestationKeyCertificate { get; }

    /// <summary>SHA-384 of the whole encoded report; channels bind their keys to it.</summary>
    public ReadOnlyMemory<byte> Digest { get; }

    /// <summary>The encoded report.</summary>
    public ReadOnlyMemory<byte> Encoded => _encoded;

    /// <summary>Checks the signature with the given attestation public key.</summary>
    public bool VerifySignature(ECDsa attestationPublicKey)
    {
        ArgumentNullException.ThrowIfNull(attestationPublicKey);
        return attestationPublicKey.VerifyData(
            _encoded.AsSpan(0, _signedLength),
            _encoded.AsSpan(_signedLength, SignatureSize),
            HashAlgorithmName.SHA384,
            DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    /// <summary>Parses an encoded report (format checks only).</summary>
    /// <exception cref="ProtocolFormatException">The report is malformed.</exception>
    public static AttestationReport Parse(ReadOnlySpan<byte> encoded)
    {
        var reader = new CanonicalReader(encoded, "attestation report");
        reader.ExpectMagic(Magic, "magic");
        MeasurementSet measurements = MeasurementSet.ReadFrom(ref reader);
        CcMode mode = reader.ReadEnum<CcMode>("ccMode");
        DebugState debug = reader.ReadEnum<DebugState>("debugState");
        uint version = reader.ReadUInt32("firmwareVersion");
        uint svn = reader.ReadUInt32("firmwareSvn");
        byte[] nonce = reader.ReadFixed(NonceSize, "nonce").ToArray();
        byte[] share = reader.ReadFixed(Channels.KeyShare.Size, "keyShare").ToArray();
        X509Certificate2 identity = ReadCertificate(ref reader, "identityCertificate");
        X509Certificate2 attestation = ReadCertificate(ref reader, "attestationKeyCertificate");
        int signedLength = reader.Position;
        reader.ReadFixed(SignatureSize, "signature");
        reader.ExpectEnd();
        return new AttestationReport(encoded.ToArray(), signedLength, measurements, mode, debug, version, svn, nonce, share, identity, attestation);
    }

    /// <summary>Encodes and signs a report (device firmware side).</summary>
    internal static byte[] CreateSigned(
        MeasurementSet measurements,
        CcMode ccMode,
        DebugState debugState,
        uint firmwareVersion,
        uint firmwareSvn,
        ReadOnlySpan<byte> nonce,
        ReadOnlySpan<byte> keyShare,
        X509Certificate2 identityCertificate,
        X509Certificate2 attestationKeyCertificate,
        ECDsa attestationKey)
    {
        if (nonce.Length != NonceSize)
        {
            throw new ArgumentException("The nonce is 32 bytes.", nameof(nonce));
        }
        if (keyShare.Length != Channels.KeyShare.Size)
        {
            throw new ArgumentException("The key share is an encoded P-384 point.", nameof(keyShare));
        }
        var writer = new CanonicalWriter(4096);
        writer.WriteFixed(Magic);
        measurements.WriteTo(writer);
        writer.WriteByte((byte)ccMode);
        writer.WriteByte((byte)debugState);
        writer.WriteUInt32(firmwareVersion);
        writer.WriteUInt32(firmwareSvn);
        writer.WriteFixed(nonce);
        writer.WriteFixed(keyShare);
        writer.WriteVariable(identityCertificate.RawDataMemory.Span);
        writer.WriteVariable(attestationKeyCertificate.RawDataMemory.Span);
        byte[] signature = attestationKey.SignData(writer.WrittenSpan, HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        writer.WriteFixed(signature);
        return writer.ToArray();
    }

    private static X509Certificate2 ReadCertificate(ref CanonicalReader reader, string field)
    {
        ReadOnlySpan<byte> der = reader.ReadVariable(MaxCertificateSize, field);
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadCertificate(der);
        }
        catch (CryptographicException)
        {
            throw reader.Fail(field, "is not a DER X.509 certificate");
        }

        // The loader also accepts PEM; only the exact DER bytes are canonical.
        if (!certificate.RawDataMemory.Span.SequenceEqual(der))
        {
            certificate.Dispose();
            throw reader.Fail(field, "is not in canonical DER form");
        }
        return certificate;
    }
}
