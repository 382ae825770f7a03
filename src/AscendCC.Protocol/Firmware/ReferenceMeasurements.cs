using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol.Encoding;
using AscendCC.Protocol.Measurements;
using AscendCC.Protocol.Pki;

namespace AscendCC.Protocol.Firmware;

/// <summary>The manufacturer's expected register values for one firmware release.</summary>
public sealed class ReferenceMeasurement
{
    /// <summary>Creates an entry.</summary>
    public ReferenceMeasurement(uint firmwareVersion, uint securityVersion, ReadOnlySpan<byte> bootRom, ReadOnlySpan<byte> firmware)
    {
        if (bootRom.Length != MeasurementSet.RegisterSize || firmware.Length != MeasurementSet.RegisterSize)
        {
            throw new ArgumentException("Reference measurements are 48-byte SHA-384 register values.");
        }
        FirmwareVersion = firmwareVersion;
        SecurityVersion = securityVersion;
        BootRom = bootRom.ToArray();
        Firmware = firmware.ToArray();
    }

    /// <summary>Firmware version this entry describes.</summary>
    public uint FirmwareVersion { get; }

    /// <summary>That release's SVN.</summary>
    public uint SecurityVersion { get; }

    /// <summary>Expected BootRom register.</summary>
    public ReadOnlyMemory<byte> BootRom { get; }

    /// <summary>Expected Firmware register.</summary>
    public ReadOnlyMemory<byte> Firmware { get; }
}

/// <summary>
/// The manufacturer's published list of reference measurements, CMS-signed with its firmware-signing
/// certificate so a verifier can check it offline against the pinned root.
/// Encoding: magic "ACCREF01", count u32, then per entry version u32, svn u32, bootRom 48, firmware 48.
/// </summary>
public sealed class ReferenceMeasurements
{
    private const int MaxEntries = 4096;

    private static ReadOnlySpan<byte> Magic => "ACCREF01"u8;

    /// <summary>Creates the list.</summary>
    public ReferenceMeasurements(IEnumerable<ReferenceMeasurement> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        Entries = entries.ToArray();
    }

    /// <summary>All entries.</summary>
    public IReadOnlyList<ReferenceMeasurement> Entries { get; }

    /// <summary>The entry for <paramref name="firmwareVersion"/>, or null.</summary>
    public ReferenceMeasurement? Find(uint firmwareVersion) => Entries.FirstOrDefault(e => e.FirmwareVersion == firmwareVersion);

    /// <summary>Canonical encoding.</summary>
    public byte[] Encode()
    {
        var writer = new CanonicalWriter();
        writer.WriteFixed(Magic);
        writer.WriteUInt32((uint)Entries.Count);
        foreach (ReferenceMeasurement e in Entries)
        {
            writer.WriteUInt32(e.FirmwareVersion);
            writer.WriteUInt32(e.SecurityVersion);
            writer.WriteFixed(e.BootRom.Span);
            writer.WriteFixed(e.Firmware.Span);
        }
        return writer.ToArray();
    }

    /// <summary>Parses the canonical encoding.</summary>
    /// <exception cref="ProtocolFormatException">Malformed input.</exception>
    public static ReferenceMeasurements Decode(ReadOnlySpan<byte> encoded)
    {
        var reader = new CanonicalReader(encoded, "reference measurements");
        reader.ExpectMagic(Magic, "magic");
        uint count = reader.ReadUInt32("count");
        if (count > MaxEntries)
        {
            throw reader.Fail("count", $"exceeds {MaxEntries}");
        }
        var entries = new List<ReferenceMeasurement>((int)count);
        for (int i = 0; i < count; i++)
        {
            uint version = reader.ReadUInt32("firmwareVersion");
            uint svn = reader.ReadUInt32("svn");
            ReadOnlySpan<byte> boot = reader.ReadFixed(MeasurementSet.RegisterSize, "bootRom");
            ReadOnlySpan<byte> fw = reader.ReadFixed(MeasurementSet.RegisterSize, "firmware");
            entries.Add(new ReferenceMeasurement(version, svn, boot, fw));
        }
        reader.ExpectEnd();
        return new ReferenceMeasurements(entries);
    }

    /// <summary>Signs the list with the manufacturer's firmware-signing certificate.</summary>
    public byte[] Sign(X509Certificate2 signingCertificate) =>
        CmsSignedContent.Sign(Encode(), ProtocolOids.ReferenceMeasurementsContent, signingCertificate);

    /// <summary>Verifies a signed list against the manufacturer root and parses it.</summary>
    /// <exception cref="CmsSignatureException">Not signed under <paramref name="manufacturerRoot"/> or modified.</exception>
    /// <exception cref="ProtocolFormatException">Malformed content.</exception>
    public static ReferenceMeasurements VerifySigned(ReadOnlySpan<byte> signedList, X509Certificate2 manufacturerRoot, DateTime verificationTime) =>
        Decode(CmsSignedContent.Verify(signedList, ProtocolOids.ReferenceMeasurementsContent, manufacturerRoot, ProtocolOids.FirmwareSigningUsage, verificationTime));

    /// <summary>The BootRom register every genuine boot ROM produces (it measures its own identity constant).</summary>
    public static byte[] ExpectedBootRomRegister(ReadOnlySpan<byte> bootRomIdentity) =>
        MeasurementRegisters.ExpectedAfterSingleExtend(SHA384.HashData(bootRomIdentity));

    /// <summary>The Firmware register a boot of <paramref name="encodedImage"/> produces.</summary>
    public static byte[] ExpectedFirmwareRegister(ReadOnlySpan<byte> encodedImage) =>
        MeasurementRegisters.ExpectedAfterSingleExtend(FirmwareImage.ComputeEventDigest(encodedImage));
}
