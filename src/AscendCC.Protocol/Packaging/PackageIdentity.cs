using System.Security.Cryptography;

namespace AscendCC.Protocol.Packaging;

/// <summary>
/// Who a package's weights come from, as the graph measurement names them: SHA-256 over the model
/// provider's signing key (SubjectPublicKeyInfo) and the manifest's model name. A task list that binds
/// weights measures each one as (identity, item name), so a measurement a provider signs covers its
/// own weights only: another party's package with the same item names measures differently. It is
/// not derived from the manifest digest, which would be circular (the manifest holds the measurement).
/// </summary>
public static class PackageIdentity
{
    /// <summary>Bytes of an identity.</summary>
    public const int Size = 32;

    private static ReadOnlySpan<byte> Domain => "AscendCC package identity v1\0"u8;

    /// <summary>The identity of the packages <paramref name="providerKey"/> signs under <paramref name="modelName"/>.</summary>
    /// <param name="providerKey">The provider's manifest-signing key, as SubjectPublicKeyInfo.</param>
    /// <param name="modelName">The manifest's model name.</param>
    public static byte[] Compute(ReadOnlySpan<byte> providerKey, string modelName)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelName);
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(Domain);
        Span<byte> length = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(length, providerKey.Length);
        h.AppendData(length);
        h.AppendData(providerKey);
        h.AppendData(System.Text.Encoding.UTF8.GetBytes(modelName));
        return h.GetHashAndReset();
    }
}
