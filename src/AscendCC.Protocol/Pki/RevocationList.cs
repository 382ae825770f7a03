using System.Formats.Asn1;
using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AscendCC.Protocol.Pki;

/// <summary>One entry of a <see cref="RevocationList"/>: a revoked certificate's serial number and when it was revoked.</summary>
public sealed class RevokedCertificate
{
    internal RevokedCertificate(ReadOnlySpan<byte> serialNumber, DateTimeOffset revocationDate, X509RevocationReason? reason)
    {
        SerialNumber = serialNumber.ToArray();
        RevocationDate = revocationDate;
        Reason = reason;
    }

    /// <summary>The serial number as encoded in the certificate (big-endian).</summary>
    public ReadOnlyMemory<byte> SerialNumber { get; }

    /// <summary>The serial number in lower-case hex.</summary>
    public string SerialHex => Convert.ToHexStringLower(SerialNumber.Span);

    /// <summary>When the issuer revoked the certificate.</summary>
    public DateTimeOffset RevocationDate { get; }

    /// <summary>The CRL entry's reason code, if it has one.</summary>
    public X509RevocationReason? Reason { get; }

    /// <inheritdoc />
    public override string ToString() =>
        $"serial {SerialHex} revoked {RevocationList.FormatTime(RevocationDate)}" + (Reason is { } r ? $" ({r})" : "");
}

/// <summary>
/// A parsed X.509 certificate revocation list (RFC 5280 §5), as the manufacturer issues it with
/// <see cref="CertificateRevocationListBuilder"/>. .NET can build and re-load CRLs but neither verifies
/// a CRL's signature nor lists its entries, and <see cref="X509Chain"/> reads CRLs only from a
/// machine-wide cache; so verifiers parse it here (DER, <see cref="AsnReader"/>) and check it offline
/// against the pinned root with <see cref="VerifySigned"/>. Accepted profile: v2, ECDSA with SHA-384,
/// nextUpdate and a CRL number present, no critical extension other than those understood here.
/// </summary>
public sealed class RevocationList
{
    /// <summary>OID of ecdsa-with-SHA384, the only accepted CRL signature algorithm.</summary>
    public const string EcdsaWithSha384 = "1.2.840.10045.4.3.3";

    private const string MessageType = "revocation list";
    private const string CrlNumberOid = "2.5.29.20";
    private const string AuthorityKeyIdentifierOid = "2.5.29.35";
    private const string ReasonCodeOid = "2.5.29.21";
    private const int MaxEntries = 1 << 20;

    private readonly byte[] _tbs;
    private readonly byte[] _signature;

    private RevocationList(byte[] tbs, byte[] signature, X500DistinguishedName issuer, DateTimeOffset thisUpdate, DateTimeOffset nextUpdate, BigInteger crlNumber, IReadOnlyList<RevokedCertificate> entries)
    {
        _tbs = tbs;
        _signature = signature;
        Issuer = issuer;
        ThisUpdate = thisUpdate;
        NextUpdate = nextUpdate;
        CrlNumber = crlNumber;
        Entries = entries;
    }

    /// <summary>The issuer's distinguished name: the CRL covers certificates whose issuer is exactly this name.</summary>
    public X500DistinguishedName Issuer { get; }

    /// <summary>When the CRL was issued.</summary>
    public DateTimeOffset ThisUpdate { get; }

    /// <summary>When the next CRL is due; after it this one is stale and must not be relied on.</summary>
    public DateTimeOffset NextUpdate { get; }

    /// <summary>The CRL number: strictly increasing per issuer, so a verifier can refuse an older list.</summary>
    public BigInteger CrlNumber { get; }

    /// <summary>Every revoked certificate.</summary>
    public IReadOnlyList<RevokedCertificate> Entries { get; }

    /// <summary>Parses a DER-encoded CRL (structure only; see <see cref="VerifySigned"/>).</summary>
    /// <exception cref="ProtocolFormatException">Not a CRL of the accepted profile.</exception>
    public static RevocationList Parse(ReadOnlySpan<byte> der)
    {
        try
        {
            return ParseCore(der.ToArray());
        }
        catch (Exception ex) when (ex is AsnContentException or CryptographicException or ArgumentException)
        {
            throw new ProtocolFormatException($"Malformed {MessageType}: {ex.Message} The list was rejected; request a fresh one from the manufacturer.", ex);
        }
    }

    /// <summary>
    /// Parses a CRL and checks that <paramref name="issuer"/> (the pinned root) issued and signed it.
    /// Time validity is not checked here: compare <see cref="ThisUpdate"/> and <see cref="NextUpdate"/> with your clock.
    /// </summary>
    /// <exception cref="ProtocolFormatException">Malformed.</exception>
    /// <exception cref="RevocationListException">Issued under another name, or its signature does not verify under <paramref name="issuer"/>'s key.</exception>
    public static RevocationList VerifySigned(ReadOnlySpan<byte> der, X509Certificate2 issuer)
    {
        ArgumentNullException.ThrowIfNull(issuer);
        RevocationList crl = Parse(der);
        if (!crl.Issuer.RawData.AsSpan().SequenceEqual(issuer.SubjectName.RawData))
        {
            throw new RevocationListException($"the revocation list is issued by '{crl.Issuer.Name}', not by the pinned root '{issuer.Subject}'");
        }
        if (!crl.VerifySignature(issuer))
        {
            throw new RevocationListException($"the revocation list's signature does not verify under the pinned root '{issuer.Subject}': it was modified or signed by another key");
        }
        return crl;
    }

    /// <summary>Whether the CRL's signature verifies under <paramref name="issuer"/>'s ECDSA key.</summary>
    public bool VerifySignature(X509Certificate2 issuer)
    {
        ArgumentNullException.ThrowIfNull(issuer);
        using ECDsa? key = issuer.GetECDsaPublicKey();
        return key is not null && key.VerifyData(_tbs, _signature, HashAlgorithmName.SHA384, DSASignatureFormat.Rfc3279DerSequence);
    }

    /// <summary>The entry revoking <paramref name="certificate"/>, or null if the certificate is not listed.</summary>
    /// <remarks>Only meaningful for certificates issued by <see cref="Issuer"/> (<see cref="Covers"/>): serial numbers are unique per issuer only.</remarks>
    public RevokedCertificate? Find(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ReadOnlyMemory<byte> serial = certificate.SerialNumberBytes;
        return Entries.FirstOrDefault(e => e.SerialNumber.Span.SequenceEqual(serial.Span));
    }

    /// <summary>Whether <paramref name="certificate"/> was issued under this CRL's issuer name (so this CRL speaks for it).</summary>
    public bool Covers(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return certificate.IssuerName.RawData.AsSpan().SequenceEqual(Issuer.RawData);
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"CRL #{CrlNumber} of '{Issuer.Name}', thisUpdate {FormatTime(ThisUpdate)}, nextUpdate {FormatTime(NextUpdate)}, {Entries.Count} revoked";

    internal static string FormatTime(DateTimeOffset time) => time.UtcDateTime.ToString("u", CultureInfo.InvariantCulture);

    private static RevocationList ParseCore(byte[] der)
    {
        var outer = new AsnReader(der, AsnEncodingRules.DER);
        AsnReader certList = outer.ReadSequence();
        outer.ThrowIfNotEmpty();
        byte[] tbs = certList.ReadEncodedValue().ToArray();
        string outerAlgorithm = ReadAlgorithm(certList, "signatureAlgorithm");
        byte[] signature = certList.ReadBitString(out int unusedBits);
        if (unusedBits != 0)
        {
            throw Fail("signatureValue", "has unused bits");
        }
        certList.ThrowIfNotEmpty();

        var tbsReader = new AsnReader(tbs, AsnEncodingRules.DER);
        AsnReader t = tbsReader.ReadSequence();
        tbsReader.ThrowIfNotEmpty();
        if (!t.PeekTag().HasSameClassAndValue(Asn1Tag.Integer) || !t.TryReadInt32(out int version) || version != 1)
        {
            throw Fail("version", "is not v2 (a CRL number extension is required)");
        }
        string innerAlgorithm = ReadAlgorithm(t, "signature");
        if (innerAlgorithm != outerAlgorithm)
        {
            throw Fail("signature", $"algorithm {innerAlgorithm} differs from the outer signatureAlgorithm {outerAlgorithm}");
        }
        var issuer = new X500DistinguishedName(t.ReadEncodedValue().Span);
        DateTimeOffset thisUpdate = ReadTime(t, "thisUpdate");
        if (!t.HasData || !IsTime(t.PeekTag()))
        {
            throw Fail("nextUpdate", "is absent: a verifier could not tell whether the list is current");
        }
        DateTimeOffset nextUpdate = ReadTime(t, "nextUpdate");
        if (nextUpdate <= thisUpdate)
        {
            throw Fail("nextUpdate", "is not after thisUpdate");
        }

        var entries = new List<RevokedCertificate>();
        if (t.HasData && t.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
        {
            AsnReader revoked = t.ReadSequence();
            while (revoked.HasData)
            {
                if (entries.Count == MaxEntries)
                {
                    throw Fail("revokedCertificates", $"has more than {MaxEntries} entries");
                }
                entries.Add(ReadEntry(revoked.ReadSequence()));
            }
        }

        BigInteger? crlNumber = null;
        if (t.HasData)
        {
            AsnReader explicitExtensions = t.ReadSequence(new Asn1Tag(TagClass.ContextSpecific, 0, isConstructed: true));
            AsnReader extensions = explicitExtensions.ReadSequence();
            explicitExtensions.ThrowIfNotEmpty();
            while (extensions.HasData)
            {
                (string oid, bool critical, byte[] value) = ReadExtension(extensions.ReadSequence());
                switch (oid)
                {
                    case CrlNumberOid:
                        var number = new AsnReader(value, AsnEncodingRules.DER);
                        crlNumber = number.ReadInteger();
                        number.ThrowIfNotEmpty();
                        break;
                    case AuthorityKeyIdentifierOid:
                        break;
                    default:
                        if (critical)
                        {
                            throw Fail("crlExtensions", $"holds critical extension {oid}, which this verifier does not understand");
                        }
                        break;
                }
            }
        }
        t.ThrowIfNotEmpty();
        if (crlNumber is not { Sign: >= 0 } crlNumberValue)
        {
            throw Fail("crlExtensions", "hold no (non-negative) CRL number");
        }
        return new RevocationList(tbs, signature, issuer, thisUpdate, nextUpdate, crlNumberValue, entries);
    }

    private static RevokedCertificate ReadEntry(AsnReader entry)
    {
        byte[] serial = entry.ReadIntegerBytes().ToArray();
        DateTimeOffset revocationDate = ReadTime(entry, "revocationDate");
        X509RevocationReason? reason = null;
        if (entry.HasData)
        {
            AsnReader extensions = entry.ReadSequence();
            while (extensions.HasData)
            {
                (string oid, bool critical, byte[] value) = ReadExtension(extensions.ReadSequence());
                if (oid == ReasonCodeOid)
                {
                    var code = new AsnReader(value, AsnEncodingRules.DER);
                    reason = code.ReadEnumeratedValue<X509RevocationReason>();
                    code.ThrowIfNotEmpty();
                }
                else if (critical)
                {
                    throw Fail("crlEntryExtensions", $"hold critical extension {oid}, which this verifier does not understand");
                }
            }
        }
        entry.ThrowIfNotEmpty();
        return new RevokedCertificate(serial, revocationDate, reason);
    }

    private static (string Oid, bool Critical, byte[] Value) ReadExtension(AsnReader extension)
    {
        string oid = extension.ReadObjectIdentifier();
        bool critical = false;
        if (extension.PeekTag().HasSameClassAndValue(Asn1Tag.Boolean))
        {
            critical = extension.ReadBoolean();
        }
        byte[] value = extension.ReadOctetString();
        extension.ThrowIfNotEmpty();
        return (oid, critical, value);
    }

    private static string ReadAlgorithm(AsnReader reader, string field)
    {
        AsnReader algorithm = reader.ReadSequence();
        string oid = algorithm.ReadObjectIdentifier();
        if (oid != EcdsaWithSha384)
        {
            throw Fail(field, $"is {oid}; only ecdsa-with-SHA384 ({EcdsaWithSha384}) is accepted");
        }
        // RFC 5758: the parameters of ecdsa-with-SHA384 are absent.
        algorithm.ThrowIfNotEmpty();
        return oid;
    }

    private static bool IsTime(Asn1Tag tag) => tag.HasSameClassAndValue(Asn1Tag.UtcTime) || tag.HasSameClassAndValue(Asn1Tag.GeneralizedTime);

    private static DateTimeOffset ReadTime(AsnReader reader, string field)
    {
        Asn1Tag tag = reader.PeekTag();
        if (tag.HasSameClassAndValue(Asn1Tag.UtcTime))
        {
            return reader.ReadUtcTime();
        }
        if (tag.HasSameClassAndValue(Asn1Tag.GeneralizedTime))
        {
            return reader.ReadGeneralizedTime();
        }
        throw Fail(field, "is not a UTCTime or GeneralizedTime");
    }

    private static ProtocolFormatException Fail(string field, string problem) => new(MessageType, field, problem);
}

/// <summary>A revocation list is not trustworthy (wrong issuer or bad signature); none of its content may be used.</summary>
public sealed class RevocationListException : CryptographicException
{
    /// <summary>Creates the exception.</summary>
    public RevocationListException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public RevocationListException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public RevocationListException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
