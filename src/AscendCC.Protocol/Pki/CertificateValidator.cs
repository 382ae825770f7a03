using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AscendCC.Protocol.Pki;

/// <summary>
/// Validates a certificate chain offline against one pinned root: no system trust store, no
/// revocation fetches, no AIA downloads. Trusting only the pinned manufacturer root is the point;
/// a certificate that chains to any other root is rejected.
/// </summary>
public static class CertificateValidator
{
    /// <summary>
    /// Checks that <paramref name="leaf"/> chains through <paramref name="intermediates"/> to exactly
    /// <paramref name="root"/>, that every key is ECDSA P-384 and, when given, that the leaf carries
    /// <paramref name="requiredUsageOid"/> as an extended key usage.
    /// </summary>
    /// <param name="leaf">Certificate to validate.</param>
    /// <param name="intermediates">Certificates that may appear between leaf and root.</param>
    /// <param name="root">The only trusted root.</param>
    /// <param name="requiredUsageOid">Extended key usage the leaf must carry, or null.</param>
    /// <param name="verificationTime">Time at which validity periods are checked.</param>
    /// <param name="detail">Why validation failed, or a summary of the validated chain.</param>
    /// <returns>Whether the chain is valid.</returns>
    public static bool TryValidate(
        X509Certificate2 leaf,
        IEnumerable<X509Certificate2> intermediates,
        X509Certificate2 root,
        string? requiredUsageOid,
        DateTime verificationTime,
        out string detail)
    {
        ArgumentNullException.ThrowIfNull(leaf);
        ArgumentNullException.ThrowIfNull(intermediates);
        ArgumentNullException.ThrowIfNull(root);

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.VerificationTime = verificationTime;
        foreach (X509Certificate2 cert in intermediates)
        {
            chain.ChainPolicy.ExtraStore.Add(cert);
        }

        if (!chain.Build(leaf))
        {
            string statuses = string.Join(", ", chain.ChainStatus.Select(s => s.Status.ToString()).Distinct());
            detail = $"chain from '{leaf.Subject}' does not validate to the pinned root '{root.Subject}': {statuses}";
            return false;
        }

        X509Certificate2 anchor = chain.ChainElements[^1].Certificate;
        if (!anchor.RawDataMemory.Span.SequenceEqual(root.RawDataMemory.Span))
        {
            detail = $"chain ends at '{anchor.Subject}', not at the pinned root";
            return false;
        }

        foreach (X509ChainElement element in chain.ChainElements)
        {
            using ECDsa? key = element.Certificate.GetECDsaPublicKey();
            if (key is null || key.KeySize != 384)
            {
                detail = $"certificate '{element.Certificate.Subject}' does not hold an ECDSA P-384 key";
                return false;
            }
        }

        if (requiredUsageOid is not null && !HasExtendedKeyUsage(leaf, requiredUsageOid))
        {
            detail = $"certificate '{leaf.Subject}' lacks the required extended key usage {requiredUsageOid}";
            return false;
        }

        detail = string.Join(" <- ", chain.ChainElements.Select(e => $"'{e.Certificate.Subject}'").Reverse());
        return true;
    }

    /// <summary>Whether the certificate's EKU extension lists <paramref name="oid"/>.</summary>
    public static bool HasExtendedKeyUsage(X509Certificate2 certificate, string oid)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        foreach (X509Extension extension in certificate.Extensions)
        {
            if (extension is X509EnhancedKeyUsageExtension eku)
            {
                foreach (Oid usage in eku.EnhancedKeyUsages)
                {
                    if (usage.Value == oid)
                    {
                        return true;
                    }
                }
            }
        }
        return false;
    }
}
