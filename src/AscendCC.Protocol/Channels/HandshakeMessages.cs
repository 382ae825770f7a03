using System.Security.Cryptography;
using AscendCC.Protocol.Encoding;

namespace AscendCC.Protocol.Channels;

/// <summary>
/// The device's answer to a party's nonce: the signed attestation report and, separately, the key
/// share the device will use. A verifier checks that both carry the same key (key binding), so a
/// relay that substitutes its own key share is caught.
/// Encoding: magic "ACCHLO01", report (u32-prefixed, ≤ 32 KiB), key share (97).
/// </summary>
public sealed class DeviceHello
{
    private const int MaxReportSize = 32 * 1024;

    private static ReadOnlySpan<byte> Magic => "ACCHLO01"u8;

    /// <summary>Creates the message.</summary>
    public DeviceHello(ReadOnlySpan<byte> report, ReadOnlySpan<byte> keyShare)
    {
        if (keyShare.Length != Channels.KeyShare.Size)
        {
            throw new ArgumentException("A key share is 97 bytes.", nameof(keyShare));
        }
        Report = report.ToArray();
        KeyShare = keyShare.ToArray();
    }

    /// <summary>The encoded attestation report.</summary>
    public ReadOnlyMemory<byte> Report { get; }

    /// <summary>The device's ephemeral ECDH key share for the channel.</summary>
    public ReadOnlyMemory<byte> KeyShare { get; }

    /// <summary>Canonical encoding.</summary>
    public byte[] Encode()
    {
        var writer = new CanonicalWriter(Report.Length + 128);
        writer.WriteFixed(Magic);
        writer.WriteVariable(Report.Span);
        writer.WriteFixed(KeyShare.Span);
        return writer.ToArray();
    }

    /// <summary>Parses the encoding.</summary>
    /// <exception cref="ProtocolFormatException">Malformed input.</exception>
    public static DeviceHello Parse(ReadOnlySpan<byte> encoded)
    {
        var reader = new CanonicalReader(encoded, "device hello");
        reader.ExpectMagic(Magic, "magic");
        ReadOnlySpan<byte> report = reader.ReadVariable(MaxReportSize, "report");
        ReadOnlySpan<byte> share = reader.ReadFixed(Channels.KeyShare.Size, "keyShare");
        reader.ExpectEnd();
        return new DeviceHello(report, share);
    }
}

/// <summary>
/// A party's request to open a channel on a report it has verified: its role, the report digest
/// (which names the device's ephemeral key and binds the keys to the report) and its own key share.
/// Encoding: magic "ACCOPN01", role u8, report digest (48), party key share (97).
/// </summary>
public sealed class ChannelOpen
{
    /// <summary>Encoded size.</summary>
    public const int EncodedSize = 8 + 1 + 48 + KeyShare.Size;

    private static ReadOnlySpan<byte> Magic => "ACCOPN01"u8;

    /// <summary>Creates the message.</summary>
    public ChannelOpen(ChannelRole role, ReadOnlySpan<byte> reportDigest, ReadOnlySpan<byte> partyKeyShare)
    {
        if (!Enum.IsDefined(role))
        {
            throw new ArgumentOutOfRangeException(nameof(role));
        }
        if (reportDigest.Length != SHA384.HashSizeInBytes || partyKeyShare.Length != KeyShare.Size)
        {
            throw new ArgumentException("Report digest is 48 bytes and key share 97 bytes.");
        }
        Role = role;
        ReportDigest = reportDigest.ToArray();
        PartyKeyShare = partyKeyShare.ToArray();
    }

    /// <summary>The opening party's role.</summary>
    public ChannelRole Role { get; }

    /// <summary>SHA-384 of the report the party verified.</summary>
    public ReadOnlyMemory<byte> ReportDigest { get; }

    /// <summary>The party's ephemeral ECDH key share.</summary>
    public ReadOnlyMemory<byte> PartyKeyShare { get; }

    /// <summary>Canonical encoding.</summary>
    public byte[] Encode()
    {
        var writer = new CanonicalWriter(EncodedSize);
        writer.WriteFixed(Magic);
        writer.WriteByte((byte)Role);
        writer.WriteFixed(ReportDigest.Span);
        writer.WriteFixed(PartyKeyShare.Span);
        return writer.ToArray();
    }

    /// <summary>Parses the encoding.</summary>
    /// <exception cref="ProtocolFormatException">Malformed input.</exception>
    public static ChannelOpen Parse(ReadOnlySpan<byte> encoded)
    {
        var reader = new CanonicalReader(encoded, "channel open");
        reader.ExpectMagic(Magic, "magic");
        ChannelRole role = reader.ReadEnum<ChannelRole>("role");
        ReadOnlySpan<byte> digest = reader.ReadFixed(SHA384.HashSizeInBytes, "reportDigest");
        ReadOnlySpan<byte> share = reader.ReadFixed(KeyShare.Size, "partyKeyShare");
        reader.ExpectEnd();
        return new ChannelOpen(role, digest, share);
    }
}
