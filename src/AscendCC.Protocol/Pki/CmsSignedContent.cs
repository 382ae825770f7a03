using System.Security.Cryptography;
using System.Security.Cryptography.Pkcs;
using System.Security.Cryptography.X509Certificates;

namespace AscendCC.Protocol.Pki;

/// <summary>
/// Signs and verifies the manufacturer's CMS SignedData objects (firmware images, reference
/// measurements): attached content of a protocol content type, exactly one SHA-384 signer whose
/// certificate chains to the pinned root and carries the required extended key usage.
/// </summary>
public static class CmsSignedContent
{
    private static readonly Oid Sha384 = new("2.16.840.1.101.3.4.2.2");

    /// <summary>Signs <paramref name="content"/> as CMS SignedData with content type <paramref name="contentTypeOid"/>.</summary>
    /// <param name="content">Bytes to embed and sign.</param>
    /// <param name="contentTypeOid">Protocol content type (see <see cref="ProtocolOids"/>).</param>
    /// <param name="signer">Signing certificate with its private key.</param>
    /// <returns>DER-encoded ContentInfo.</returns>
    public static byte[] Sign(ReadOnlySpan<byte> content, string contentTypeOid, X509Certificate2 signer)
    {
        ArgumentNullException.ThrowIfNull(signer);
        if (!signer.HasPrivateKey)
        {
            throw new ArgumentException("The signing certificate must hold its private key.", nameof(signer));
        }
        var cms = new SignedCms(new ContentInfo(new Oid(contentTypeOid), content.ToArray()), detached: false);
        var cmsSigner = new CmsSigner(SubjectIdentifierType.IssuerAndSerialNumber, signer)
        {
            DigestAlgorithm = Sha384,
            IncludeOption = X509IncludeOption.EndCertOnly,
        };
        cms.ComputeSignature(cmsSigner, silent: true);
        return cms.Encode();
    }

    /// <summary>Verifies a SignedData object and returns its content.</summary>
    /// <param name="signedData">DER-encoded ContentInfo.</param>
    /// <param name="contentTypeOid">Required content type.</param>
    /// <param name="trustedRoot">The pinned manufacturer root.</param>
    /// <param name="requiredUsageOid">Extended key usage the signer must carry.</param>
    /// <param name="verificationTime">Time at which certificate validity is checked.</param>
    /// <returns>The verified content.</returns>
    /// <exception cref="CmsSignatureException">The object is malformed, of the wrong type, or its signature or signer is not trusted.</exception>
    public static byte[] Verify(ReadOnlySpan<byte> signedData, string contentTypeOid, X509Certificate2 trustedRoot, string requiredUsageOid, DateTime verificationTime)
    {
        ArgumentNullException.ThrowIfNull(trustedRoot);
        var cms = new SignedCms();
        try
        {
            cms.Decode(signedData);
        }
        catch (CryptographicException ex)
        {
            throw new CmsSignatureException("The signed object is not valid CMS SignedData.", ex);
        }

        if (cms.ContentInfo.ContentType.Value != contentTypeOid)
        {
            throw new CmsSignatureException($"The signed object has content type {cms.ContentInfo.ContentType.Value}, expected {contentTypeOid}.");
        }
        if (cms.SignerInfos.Count != 1)
        {
            throw new CmsSignatureException($"The signed object has {cms.SignerInfos.Count} signers; exactly one manufacturer signature is required.");
        }

        SignerInfo signerInfo = cms.SignerInfos[0];
        X509Certificate2? signerCert = signerInfo.Certificate;
        if (signerCert is null)
        {
            throw new CmsSignatureException("The signed object does not include its signer's certificate.");
        }
        if (signerInfo.DigestAlgorithm.Value != Sha384.Value)
        {
            throw new CmsSignatureException("The signed object does not use SHA-384.");
        }
        try
        {
            signerInfo.CheckSignature(verifySignatureOnly: true);
        }
        catch (CryptographicException ex)
        {
            throw new CmsSignatureException("The signature over the content is invalid: the content or the signature was modified.", ex);
        }

        if (!CertificateValidator.TryValidate(signerCert, cms.Certificates.Cast<X509Certificate2>(), trustedRoot, requiredUsageOid, verificationTime, out string detail))
        {
            throw new CmsSignatureException($"The signer is not trusted: {detail}.");
        }
        return cms.ContentInfo.Content;
    }
}

/// <summary>A CMS SignedData object failed verification; its content must not be used.</summary>
public sealed class CmsSignatureException : CryptographicException
{
    /// <summary>Creates the exception.</summary>
    public CmsSignatureException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public CmsSignatureException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public CmsSignatureException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
