using System.Buffers.Binary;
using System.Security.Cryptography;

namespace AscendCC.Protocol.Packaging;

/// <summary>
/// Package key schedule, nonces and associated data. PRK = HKDF-Extract(salt = package salt,
/// IKM = model key); content key = Expand(PRK, "content key"); commitment = Expand(PRK, "key commitment").
/// Nonce = item index (u32) || chunk index (u64): unique per chunk, and unique across packages because
/// each package has its own content key.
/// </summary>
internal static class PackageCrypto
{
    public const int TagSize = 16;
    public const int NonceSize = 12;

    private static ReadOnlySpan<byte> AdMagic => "ACCCHK01"u8;

    public static void DeriveKeys(ModelKey modelKey, ReadOnlySpan<byte> salt, Span<byte> contentKey, Span<byte> commitment)
    {
        Span<byte> prk = stackalloc byte[SHA384.HashSizeInBytes];
        try
        {
            HKDF.Extract(HashAlgorithmName.SHA384, modelKey.Bytes, salt, prk);
            HKDF.Expand(HashAlgorithmName.SHA384, prk, contentKey, "AscendCC model package v1 content key"u8);
            HKDF.Expand(HashAlgorithmName.SHA384, prk, commitment, "AscendCC model package v1 key commitment"u8);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
        }
    }

    public static void Nonce(int itemIndex, int chunkIndex, Span<byte> nonce)
    {
        BinaryPrimitives.WriteUInt32BigEndian(nonce, (uint)itemIndex);
        BinaryPrimitives.WriteUInt64BigEndian(nonce.Slice(4), (ulong)chunkIndex);
    }

    /// <summary>
    /// Associated data for one item's chunks: magic, kind, name, chunk index (patched per chunk by
    /// <see cref="SetChunkIndex"/>), chunk count, manifest digest. Allocated once per item.
    /// </summary>
    public static byte[] CreateAssociatedData(PackageItem item, ReadOnlySpan<byte> manifestDigest, out int chunkIndexOffset)
    {
        byte[] name = System.Text.Encoding.UTF8.GetBytes(item.Name);
        byte[] ad = new byte[AdMagic.Length + 1 + 2 + name.Length + 4 + 4 + manifestDigest.Length];
        var span = ad.AsSpan();
        AdMagic.CopyTo(span);
        int o = AdMagic.Length;
        span[o++] = (byte)item.Kind;
        BinaryPrimitives.WriteUInt16BigEndian(span.Slice(o), (ushort)name.Length);
        o += 2;
        name.CopyTo(span.Slice(o));
        o += name.Length;
        chunkIndexOffset = o;
        o += 4;
        BinaryPrimitives.WriteUInt32BigEndian(span.Slice(o), (uint)item.ChunkCount);
        o += 4;
        manifestDigest.CopyTo(span.Slice(o));
        return ad;
    }

    public static void SetChunkIndex(byte[] ad, int offset, int chunkIndex) =>
        BinaryPrimitives.WriteUInt32BigEndian(ad.AsSpan(offset, 4), (uint)chunkIndex);

    /// <summary>What the provider signs: a domain-separated manifest encoding.</summary>
    public static byte[] SignedManifestInput(ReadOnlySpan<byte> encodedManifest)
    {
        ReadOnlySpan<byte> domain = "AscendCC model manifest v1\0"u8;
        byte[] input = new byte[domain.Length + encodedManifest.Length];
        domain.CopyTo(input);
        encodedManifest.CopyTo(input.AsSpan(domain.Length));
        return input;
    }
}
