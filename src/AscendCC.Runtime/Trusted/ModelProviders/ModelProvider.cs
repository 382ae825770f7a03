using System.Security.Cryptography;
using AscendCC.Protocol.Keys;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Runtime.Trusted.ModelProviders;

/// <summary>
/// The model provider: signs package manifests with its ECDSA P-384 key, encrypts weights and operator
/// binaries, and releases a package's key only to a device whose attestation satisfies the package's
/// signed release policy, over its own attested channel.
/// </summary>
public sealed class ModelProvider : IDisposable
{
    private readonly ECDsa _signingKey;

    private ModelProvider(ECDsa signingKey)
    {
        _signingKey = signingKey;
    }

    /// <summary>Creates a provider with a fresh signing key.</summary>
    public static ModelProvider Create() => new(ECDsa.Create(ECCurve.NamedCurves.nistP384));

    /// <summary>Creates a provider whose signing key derives from <paramref name="seed"/> (tests only).</summary>
    public static ModelProvider CreateDeterministic(ReadOnlySpan<byte> seed) =>
        new(DeterministicEcKey.DeriveP384(seed, "model provider"u8, "AscendCC model provider signing key"));

    /// <summary>The manifest-verification public key (SubjectPublicKeyInfo) to give package readers.</summary>
    public byte[] VerificationKey => _signingKey.ExportSubjectPublicKeyInfo();

    /// <summary>A new ECDsa object holding only the verification key.</summary>
    public ECDsa CreateVerificationKey()
    {
        var key = ECDsa.Create();
        key.ImportSubjectPublicKeyInfo(VerificationKey, out _);
        return key;
    }

    /// <summary>Encrypts the builder's items under a fresh model key and writes the package.</summary>
    /// <returns>The protected model: manifest and model key (dispose it when no longer needed).</returns>
    public ProtectedModel BuildPackage(ModelPackageBuilder builder, ReleasePolicy policy, Stream output)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ModelKey key = ModelKey.Generate();
        try
        {
            ModelManifest manifest = builder.WriteTo(output, key, _signingKey, policy);
            return new ProtectedModel(manifest, key);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>Starts a key release for <paramref name="model"/> to one device.</summary>
    /// <param name="model">The protected model whose key may be released.</param>
    /// <param name="verifier">Verifier pinned to the manufacturer root named by the package policy.</param>
    /// <exception cref="ArgumentException">The verifier's root is not the one the package policy allows.</exception>
    public KeyReleaseSession BeginKeyRelease(ProtectedModel model, AttestationVerifier verifier)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(verifier);
        if (!ReleasePolicy.RootDigest(verifier.ManufacturerRoot).AsSpan().SequenceEqual(model.Manifest.Policy.AllowedManufacturerRootSha256.Span))
        {
            throw new ArgumentException("The verifier trusts a manufacturer root that the package's release policy does not allow.", nameof(verifier));
        }
        return new KeyReleaseSession(model, verifier, VerificationKey);
    }

    /// <summary>Destroys the signing key.</summary>
    public void Dispose() => _signingKey.Dispose();
}

/// <summary>A package's manifest and model key, as held by the model provider.</summary>
public sealed class ProtectedModel : IDisposable
{
    internal ProtectedModel(ModelManifest manifest, ModelKey key)
    {
        Manifest = manifest;
        Key = key;
    }

    /// <summary>The signed manifest.</summary>
    public ModelManifest Manifest { get; }

    /// <summary>The model key (never leaves the provider except to an attested device).</summary>
    internal ModelKey Key { get; }

    /// <summary>Destroys the model key.</summary>
    public void Dispose() => Key.Dispose();
}
