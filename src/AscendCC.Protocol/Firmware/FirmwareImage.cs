using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol.Encoding;
using AscendCC.Protocol.Pki;

namespace AscendCC.Protocol.Firmware;

/// <summary>
/// An NPU firmware image: a header (version, security version number, vendor) and the payload. The
/// manufacturer signs the canonical encoding as CMS SignedData; the firmware measurement is the
/// SHA-384 of that encoding, so it covers header and payload.
/// Encoding: magic "ACCFW001", version u32, svn u32, vendor (u16-prefixed UTF-8), payload (u32-prefixed).
/// </summary>
public sealed class FirmwareImage
{
    /// <summary>Largest accepted payload.</summary>
    public const int MaxPayloadSize = 64 * 1024 * 1024;

    private static ReadOnlySpan<byte> Magic => "ACCFW001"u8;

    /// <summary>Creates an image.</summary>
    public FirmwareImage(uint version, uint securityVersion, string vendor, ReadOnlySpan<byte> payload)
    {
        ArgumentException.ThrowIfNullOrEmpty(vendor);
        if (payload.Length > MaxPayloadSize)
        {
            throw new ArgumentOutOfRangeException(nameof(payload), "Firmware payload too large.");
        }
        Version = version;
        SecurityVersion = securityVersion;
        Vendor = vendor;
        Payload = payload.ToArray();
    }

    /// <summary>Firmware version.</summary>
    public uint Version { get; }

    /// <summary>Security version number: raised when a release fixes a vulnerability; the boot ROM refuses lower ones (anti-rollback).</summary>
    public uint SecurityVersion { get; }

    /// <summary>Vendor name.</summary>
    public string Vendor { get; }

    /// <summary>The firmware code and data.</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>The canonical encoding (what is signed and measured).</summary>
    public byte[] Encode()
    {
        var writer = new CanonicalWriter(Payload.Length + 64);
        writer.WriteFixed(Magic);
        writer.WriteUInt32(Version);
        writer.WriteUInt32(SecurityVersion);
        writer.WriteString(Vendor);
        writer.WriteVariable(Payload.Span);
        return writer.ToArray();
    }

    /// <summary>Parses the canonical encoding.</summary>
    /// <exception cref="ProtocolFormatException">The encoding is malformed.</exception>
    public static FirmwareImage Decode(ReadOnlySpan<byte> encoded)
    {
        var reader = new CanonicalReader(encoded, "firmware image");
        reader.ExpectMagic(Magic, "magic");
        uint version = reader.ReadUInt32("version");
        uint svn = reader.ReadUInt32("svn");
        string vendor = reader.ReadString(256, "vendor");
        if (vendor.Length == 0)
        {
            throw reader.Fail("vendor", "is empty");
        }
        ReadOnlySpan<byte> payload = reader.ReadVariable(MaxPayloadSize, "payload");
        reader.ExpectEnd();
        return new FirmwareImage(version, svn, vendor, payload);
    }

    /// <summary>The SHA-384 event digest of an encoded image: what the boot ROM extends into the Firmware register.</summary>
    public static byte[] ComputeEventDigest(ReadOnlySpan<byte> encodedImage) => SHA384.HashData(encodedImage);

    /// <summary>Signs the image as CMS SignedData with the manufacturer's firmware-signing certificate.</summary>
    public byte[] Sign(X509Certificate2 firmwareSigningCertificate) =>
        CmsSignedContent.Sign(Encode(), ProtocolOids.FirmwareImageContent, firmwareSigningCertificate);
}

/// <summary>A firmware image whose signature has been verified, with the exact bytes that were signed.</summary>
public sealed class VerifiedFirmware
{
    private VerifiedFirmware(FirmwareImage image, byte[] encoded)
    {
        Image = image;
        EventDigest = FirmwareImage.ComputeEventDigest(encoded);
    }

    /// <summary>The parsed image.</summary>
    public FirmwareImage Image { get; }

    /// <summary>SHA-384 of the signed encoding.</summary>
    public ReadOnlyMemory<byte> EventDigest { get; }

    /// <summary>Verifies a signed image against the manufacturer root.</summary>
    /// <exception cref="CmsSignatureException">The image is not signed by a firmware-signing certificate under <paramref name="manufacturerRoot"/>, or was modified.</exception>
    /// <exception cref="ProtocolFormatException">The signed content is not a firmware image.</exception>
    public static VerifiedFirmware Verify(ReadOnlySpan<byte> signedImage, X509Certificate2 manufacturerRoot, DateTime verificationTime)
    {
        byte[] content = CmsSignedContent.Verify(signedImage, ProtocolOids.FirmwareImageContent, manufacturerRoot, ProtocolOids.FirmwareSigningUsage, verificationTime);
        return new VerifiedFirmware(FirmwareImage.Decode(content), content);
    }
}
