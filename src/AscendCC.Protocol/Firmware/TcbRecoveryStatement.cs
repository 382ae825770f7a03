using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol.Encoding;
using AscendCC.Protocol.Pki;

namespace AscendCC.Protocol.Firmware;

/// <summary>
/// The manufacturer's TCB recovery statement: the lowest firmware SVN it still considers secure. A
/// published firmware stays in the reference measurements (it is genuine), but once a vulnerability is
/// fixed in a later release the manufacturer raises the minimum here, and verifiers that hold the
/// statement refuse the older firmware even though the device's anti-rollback fuses still boot it.
/// A newer statement has a higher <see cref="Sequence"/> and supersedes every older one; a verifier
/// never goes back to a lower sequence. CMS-signed with the firmware-signing certificate (content type
/// <see cref="ProtocolOids.TcbRecoveryStatementContent"/>), verified offline against the pinned root.
/// Encoding: magic "ACCTCB01", sequence u64, issuedAt i64 (Unix seconds, UTC), minimumSvn u32,
/// advisory (u16-prefixed UTF-8, at most <see cref="MaxAdvisoryBytes"/> bytes).
/// </summary>
public sealed class TcbRecoveryStatement
{
    /// <summary>Longest advisory text, in UTF-8 bytes.</summary>
    public const int MaxAdvisoryBytes = 256;

    private static ReadOnlySpan<byte> Magic => "ACCTCB01"u8;

    /// <summary>Creates a statement.</summary>
    /// <param name="sequence">Issue number, strictly increasing per manufacturer (the first is 1).</param>
    /// <param name="issuedAt">When it was issued (stored to the second, UTC).</param>
    /// <param name="minimumSvn">Lowest firmware SVN the manufacturer still considers secure.</param>
    /// <param name="advisory">Short text naming the advisory or fix that raised the minimum (may be empty).</param>
    public TcbRecoveryStatement(ulong sequence, DateTimeOffset issuedAt, uint minimumSvn, string advisory = "")
    {
        ArgumentNullException.ThrowIfNull(advisory);
        if (sequence == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(sequence), "Statement sequence numbers start at 1.");
        }
        if (CanonicalReader.StrictUtf8.GetByteCount(advisory) > MaxAdvisoryBytes)
        {
            throw new ArgumentException($"The advisory is at most {MaxAdvisoryBytes} UTF-8 bytes.", nameof(advisory));
        }
        Sequence = sequence;
        IssuedAt = DateTimeOffset.FromUnixTimeSeconds(issuedAt.ToUnixTimeSeconds());
        MinimumSvn = minimumSvn;
        Advisory = advisory;
    }

    /// <summary>Issue number: a higher sequence supersedes a lower one.</summary>
    public ulong Sequence { get; }

    /// <summary>When the manufacturer issued the statement (UTC, whole seconds).</summary>
    public DateTimeOffset IssuedAt { get; }

    /// <summary>Lowest firmware SVN the manufacturer still considers secure.</summary>
    public uint MinimumSvn { get; }

    /// <summary>The advisory or fix that set the minimum (may be empty).</summary>
    public string Advisory { get; }

    /// <summary>Canonical encoding.</summary>
    public byte[] Encode()
    {
        var writer = new CanonicalWriter(64);
        writer.WriteFixed(Magic);
        writer.WriteUInt64(Sequence);
        writer.WriteInt64(IssuedAt.ToUnixTimeSeconds());
        writer.WriteUInt32(MinimumSvn);
        writer.WriteString(Advisory);
        return writer.ToArray();
    }

    /// <summary>Parses the canonical encoding.</summary>
    /// <exception cref="ProtocolFormatException">Malformed input.</exception>
    public static TcbRecoveryStatement Decode(ReadOnlySpan<byte> encoded)
    {
        var reader = new CanonicalReader(encoded, "TCB recovery statement");
        reader.ExpectMagic(Magic, "magic");
        ulong sequence = reader.ReadUInt64("sequence");
        if (sequence == 0)
        {
            throw reader.Fail("sequence", "is 0; sequence numbers start at 1");
        }
        long issuedAt = reader.ReadInt64("issuedAt");
        if (issuedAt < DateTimeOffset.MinValue.ToUnixTimeSeconds() || issuedAt > DateTimeOffset.MaxValue.ToUnixTimeSeconds())
        {
            throw reader.Fail("issuedAt", "is outside the representable dates");
        }
        uint minimumSvn = reader.ReadUInt32("minimumSvn");
        string advisory = reader.ReadString(MaxAdvisoryBytes, "advisory");
        reader.ExpectEnd();
        return new TcbRecoveryStatement(sequence, DateTimeOffset.FromUnixTimeSeconds(issuedAt), minimumSvn, advisory);
    }

    /// <summary>Signs the statement with the manufacturer's firmware-signing certificate.</summary>
    public byte[] Sign(X509Certificate2 signingCertificate) =>
        CmsSignedContent.Sign(Encode(), ProtocolOids.TcbRecoveryStatementContent, signingCertificate);

    /// <summary>Verifies a signed statement against the manufacturer root and parses it.</summary>
    /// <exception cref="CmsSignatureException">Not signed under <paramref name="manufacturerRoot"/> by a firmware-signing certificate, of another content type, or modified.</exception>
    /// <exception cref="ProtocolFormatException">Malformed content.</exception>
    public static TcbRecoveryStatement VerifySigned(ReadOnlySpan<byte> signedStatement, X509Certificate2 manufacturerRoot, DateTime verificationTime) =>
        Decode(CmsSignedContent.Verify(signedStatement, ProtocolOids.TcbRecoveryStatementContent, manufacturerRoot, ProtocolOids.FirmwareSigningUsage, verificationTime));

    /// <inheritdoc />
    public override string ToString() =>
        $"TCB recovery statement #{Sequence} issued {IssuedAt.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)}: minimum firmware SVN {MinimumSvn}" + (Advisory.Length > 0 ? $" ({Advisory})" : "");
}
