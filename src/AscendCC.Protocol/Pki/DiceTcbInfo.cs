using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AscendCC.Protocol.Pki;

/// <summary>
/// The DICE layer information an attestation-key certificate carries: the firmware measurement and
/// SVN the key was derived for. A verifier compares it with the report, so a report signed by a key
/// derived for other firmware is caught even before the signature is checked.
/// DER: <c>SEQUENCE { firmwareMeasurement OCTET STRING (48), svn INTEGER }</c>.
/// </summary>
public sealed class DiceTcbInfo
{
    /// <summary>Creates the information.</summary>
    public DiceTcbInfo(ReadOnlySpan<byte> firmwareMeasurement, uint securityVersion)
    {
        if (firmwareMeasurement.Length != SHA384.HashSizeInBytes)
        {
            throw new ArgumentException("A firmware measurement is 48 bytes.", nameof(firmwareMeasurement));
        }
        FirmwareMeasurement = firmwareMeasurement.ToArray();
        SecurityVersion = securityVersion;
    }

    /// <summary>The firmware measurement register value the key belongs to.</summary>
    public ReadOnlyMemory<byte> FirmwareMeasurement { get; }

    /// <summary>The firmware's security version number.</summary>
    public uint SecurityVersion { get; }

    /// <summary>The certificate extension (non-critical so generic validators accept the certificate).</summary>
    public X509Extension ToExtension()
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteOctetString(FirmwareMeasurement.Span);
            writer.WriteInteger(SecurityVersion);
        }
        return new X509Extension(ProtocolOids.DiceTcbInfoExtension, writer.Encode(), critical: false);
    }

    /// <summary>Reads the extension from a certificate.</summary>
    /// <exception cref="ProtocolFormatException">The extension is absent or malformed.</exception>
    public static DiceTcbInfo FromCertificate(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        X509Extension? extension = certificate.Extensions[ProtocolOids.DiceTcbInfoExtension];
        if (extension is null)
        {
            throw new ProtocolFormatException("attestation-key certificate", "DiceTcbInfo", "is missing");
        }
        try
        {
            var reader = new AsnReader(extension.RawData, AsnEncodingRules.DER);
            AsnReader sequence = reader.ReadSequence();
            reader.ThrowIfNotEmpty();
            byte[] measurement = sequence.ReadOctetString();
            if (!sequence.TryReadUInt32(out uint svn))
            {
                throw new ProtocolFormatException("attestation-key certificate", "DiceTcbInfo.svn", "is out of range");
            }
            sequence.ThrowIfNotEmpty();
            if (measurement.Length != SHA384.HashSizeInBytes)
            {
                throw new ProtocolFormatException("attestation-key certificate", "DiceTcbInfo.firmwareMeasurement", "is not 48 bytes");
            }
            return new DiceTcbInfo(measurement, svn);
        }
        catch (AsnContentException ex)
        {
            throw new ProtocolFormatException("Malformed attestation-key certificate: DiceTcbInfo is not valid DER.", ex);
        }
    }
}
