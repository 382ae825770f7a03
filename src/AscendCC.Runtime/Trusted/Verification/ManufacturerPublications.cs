using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Packaging;

namespace AscendCC.Runtime.Trusted.Verification;

/// <summary>
/// The manufacturer's public publications as a remote party receives them — its root certificate, the
/// signed reference measurements, the signed TCB recovery statement and the signed revocation list —
/// from which a data owner builds its <see cref="AttestationVerifier"/> and a model provider the
/// <see cref="ReleasePolicy"/> of its package. Nothing here is secret; everything but the root is
/// verified against the root before use.
/// </summary>
public sealed class ManufacturerPublications : IDisposable
{
    /// <summary>File names in a publications folder (as a development server writes them).</summary>
    public const string RootFile = "root.pem", ReferenceMeasurementsFile = "reference-measurements.p7", TcbStatementFile = "tcb-recovery.p7", RevocationListFile = "revocations.crl";

    /// <summary>Publications from their bytes.</summary>
    /// <param name="root">The manufacturer root the party trusts (obtained out of band).</param>
    /// <param name="signedReferenceMeasurements">The signed list of published firmware measurements.</param>
    /// <param name="signedTcbStatement">The signed TCB recovery statement (current minimum SVN).</param>
    /// <param name="revocationList">The signed certificate revocation list (may be empty: no revocation checking).</param>
    public ManufacturerPublications(X509Certificate2 root, ReadOnlyMemory<byte> signedReferenceMeasurements, ReadOnlyMemory<byte> signedTcbStatement, ReadOnlyMemory<byte> revocationList)
    {
        ArgumentNullException.ThrowIfNull(root);
        Root = root;
        SignedReferenceMeasurements = signedReferenceMeasurements;
        SignedTcbStatement = signedTcbStatement;
        RevocationList = revocationList;
    }

    /// <summary>The manufacturer root.</summary>
    public X509Certificate2 Root { get; }

    /// <summary>The signed reference measurements.</summary>
    public ReadOnlyMemory<byte> SignedReferenceMeasurements { get; }

    /// <summary>The signed TCB recovery statement.</summary>
    public ReadOnlyMemory<byte> SignedTcbStatement { get; }

    /// <summary>The signed revocation list (empty when none was published).</summary>
    public ReadOnlyMemory<byte> RevocationList { get; }

    /// <summary>
    /// Reads <see cref="RootFile"/>, <see cref="ReferenceMeasurementsFile"/>, <see cref="TcbStatementFile"/>
    /// and, if present, <see cref="RevocationListFile"/> from <paramref name="folder"/>.
    /// </summary>
    /// <exception cref="FileNotFoundException">A required file is missing (the message names it and the folder).</exception>
    public static ManufacturerPublications Load(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string Required(string name)
        {
            string path = Path.Combine(folder, name);
            return File.Exists(path)
                ? path
                : throw new FileNotFoundException($"the manufacturer's publications folder '{folder}' has no {name}; it needs {RootFile}, {ReferenceMeasurementsFile} and {TcbStatementFile} (and {RevocationListFile} if the manufacturer publishes one)", path);
        }
        X509Certificate2 root;
        try
        {
            root = X509CertificateLoader.LoadCertificateFromFile(Required(RootFile));
        }
        catch (System.Security.Cryptography.CryptographicException e)
        {
            throw new InvalidDataException($"'{Path.Combine(folder, RootFile)}' is not a certificate (PEM or DER): {e.Message}", e);
        }
        string crl = Path.Combine(folder, RevocationListFile);
        return new ManufacturerPublications(root, File.ReadAllBytes(Required(ReferenceMeasurementsFile)), File.ReadAllBytes(Required(TcbStatementFile)),
            File.Exists(crl) ? File.ReadAllBytes(crl) : ReadOnlyMemory<byte>.Empty);
    }

    /// <summary>A verifier that trusts <see cref="Root"/> with these publications.</summary>
    public AttestationVerifier CreateVerifier(TimeProvider? time = null) =>
        new(Root, SignedReferenceMeasurements, SignedTcbStatement, RevocationList, time);

    /// <summary>
    /// The model provider's release policy for these publications: a key is released only to firmware
    /// whose measurement the manufacturer published and whose SVN is at least the TCB statement's
    /// current minimum, on a device under <see cref="Root"/> (CC on and debug locked are always required).
    /// </summary>
    /// <exception cref="System.Security.Cryptography.CryptographicException">A publication's signature does not verify against the root.</exception>
    public ReleasePolicy CreateReleasePolicy(TimeProvider? time = null)
    {
        DateTime now = (time ?? TimeProvider.System).GetUtcNow().UtcDateTime;
        ReferenceMeasurements references = ReferenceMeasurements.VerifySigned(SignedReferenceMeasurements.Span, Root, now);
        TcbRecoveryStatement tcb = TcbRecoveryStatement.VerifySigned(SignedTcbStatement.Span, Root, now);
        ReadOnlyMemory<byte>[] firmware = [.. references.Entries.Where(e => e.SecurityVersion >= tcb.MinimumSvn).Select(e => e.Firmware)];
        if (firmware.Length == 0)
        {
            throw new InvalidOperationException($"no published firmware meets the manufacturer's current minimum SVN {tcb.MinimumSvn}; a key released under these publications could reach no device");
        }
        return new ReleasePolicy(tcb.MinimumSvn, firmware, ReleasePolicy.RootDigest(Root));
    }

    /// <inheritdoc />
    public void Dispose() => Root.Dispose();
}
