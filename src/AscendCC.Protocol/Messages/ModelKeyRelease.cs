using System.Security.Cryptography;
using AscendCC.Protocol.Encoding;
using AscendCC.Protocol.Packaging;

namespace AscendCC.Protocol.Messages;

/// <summary>
/// The model provider's key release, sent only inside a <see cref="Channels.RecordType.ModelKeyRelease"/>
/// record on its attested channel: the manifest digest the key is for, the provider's manifest-signing
/// public key (SubjectPublicKeyInfo) and the 32-byte model key. The device checks the package it loads
/// against both, and the key never exists outside device memory and the provider.
/// Plaintext: magic "ACCKEY01", manifest digest (48), SPKI (u32-prefixed, ≤ 512), key (32).
/// </summary>
public static class ModelKeyRelease
{
    private const int MaxSpki = 512;

    private static ReadOnlySpan<byte> Magic => "ACCKEY01"u8;

    /// <summary>Encodes into a pinned array the caller must zero after sealing.</summary>
    /// <param name="manifestDigest">SHA-384 manifest digest the key is released for.</param>
    /// <param name="providerSpki">The provider's manifest-signing public key.</param>
    /// <param name="key">The model key.</param>
    public static byte[] Encode(ReadOnlySpan<byte> manifestDigest, ReadOnlySpan<byte> providerSpki, ModelKey key)
    {
        if (manifestDigest.Length != SHA384.HashSizeInBytes || providerSpki.Length > MaxSpki)
        {
            throw new ArgumentException("Invalid manifest digest or provider key.");
        }
        byte[] result = GC.AllocateArray<byte>(8 + 48 + 4 + providerSpki.Length + ModelKey.Size, pinned: true);
        var writer = new CanonicalWriter(result.Length);
        writer.WriteFixed(Magic);
        writer.WriteFixed(manifestDigest);
        writer.WriteVariable(providerSpki);
        writer.WriteFixed(key.Bytes);
        writer.WrittenSpan.CopyTo(result);
        writer.Clear();
        return result;
    }

    /// <summary>Decodes; the returned key is owned by the caller.</summary>
    /// <param name="plaintext">Decrypted record payload.</param>
    /// <exception cref="ProtocolFormatException">Malformed release.</exception>
    public static (byte[] ManifestDigest, byte[] ProviderSpki, ModelKey Key) Decode(ReadOnlySpan<byte> plaintext)
    {
        var reader = new CanonicalReader(plaintext, "model key release");
        reader.ExpectMagic(Magic, "magic");
        byte[] digest = reader.ReadFixed(SHA384.HashSizeInBytes, "manifestDigest").ToArray();
        byte[] spki = reader.ReadVariable(MaxSpki, "providerKey").ToArray();
        ReadOnlySpan<byte> key = reader.ReadFixed(ModelKey.Size, "key");
        reader.ExpectEnd();
        return (digest, spki, ModelKey.Import(key));
    }
}
