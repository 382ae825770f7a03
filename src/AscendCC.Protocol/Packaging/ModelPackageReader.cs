using System.Buffers.Binary;
using System.Security.Cryptography;

namespace AscendCC.Protocol.Packaging;

/// <summary>
/// Reads a confidential model package: verifies the manifest signature on open, the key commitment on
/// <see cref="Unlock"/>, and every chunk's tag while decrypting straight into the caller's memory
/// (ciphertext is read into the destination and decrypted in place, so no per-chunk buffers exist).
/// Items can be read in order from any stream, or in any order from a seekable one.
/// </summary>
public sealed class ModelPackageReader : IDisposable
{
    internal static ReadOnlySpan<byte> Magic => "ACCMPK01"u8;

    private const int SignatureSize = 96;

    private readonly Stream _stream;
    private readonly long _dataStart;
    private readonly long[] _itemOffsets;
    private AesGcm? _aead;
    private int _nextSequential;

    private ModelPackageReader(Stream stream, ModelManifest manifest, long dataStart)
    {
        _stream = stream;
        Manifest = manifest;
        _dataStart = dataStart;
        _itemOffsets = new long[manifest.Items.Count + 1];
        for (int i = 0; i < manifest.Items.Count; i++)
        {
            PackageItem item = manifest.Items[i];
            _itemOffsets[i + 1] = _itemOffsets[i] + item.ByteLength + ((long)item.ChunkCount * PackageCrypto.TagSize);
        }
    }

    /// <summary>The verified manifest.</summary>
    public ModelManifest Manifest { get; }

    /// <summary>Whether <see cref="Unlock"/> succeeded.</summary>
    public bool IsUnlocked => _aead is not null;

    /// <summary>Total size of the encrypted items (after header, manifest and signature).</summary>
    public long EncryptedDataLength => _itemOffsets[^1];

    /// <summary>Reads the header and manifest and verifies the provider's signature.</summary>
    /// <param name="package">The package stream, positioned at its start. The reader does not own it.</param>
    /// <param name="providerPublicKey">The model provider's ECDSA P-384 public key.</param>
    /// <exception cref="ManifestSignatureException">The manifest signature is invalid.</exception>
    /// <exception cref="PackageTruncatedException">The stream ends inside the header or manifest.</exception>
    /// <exception cref="ProtocolFormatException">The header or manifest is malformed.</exception>
    public static ModelPackageReader Open(Stream package, ECDsa providerPublicKey)
    {
        ArgumentNullException.ThrowIfNull(package);
        ArgumentNullException.ThrowIfNull(providerPublicKey);
        long start = package.CanSeek ? package.Position : 0;
        Span<byte> prefix = stackalloc byte[12];
        ReadHeaderBytes(package, prefix, "header");
        if (!prefix[..8].SequenceEqual(Magic))
        {
            throw new ProtocolFormatException("model package", "magic", "is not a version 1 AscendCC model package");
        }
        uint manifestLength = BinaryPrimitives.ReadUInt32BigEndian(prefix.Slice(8));
        if (manifestLength > ModelManifest.MaxEncodedSize)
        {
            throw new ProtocolFormatException("model package", "manifestLength", $"declares {manifestLength} bytes, more than the limit");
        }
        byte[] manifestBytes = new byte[manifestLength];
        ReadHeaderBytes(package, manifestBytes, "manifest");
        byte[] signature = new byte[SignatureSize];
        ReadHeaderBytes(package, signature, "manifest signature");

        // Verify before parsing so no attacker-chosen manifest structure is ever interpreted.
        if (!providerPublicKey.VerifyData(PackageCrypto.SignedManifestInput(manifestBytes), signature, HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
        {
            throw new ManifestSignatureException();
        }
        ModelManifest manifest = ModelManifest.Decode(manifestBytes);
        return new ModelPackageReader(package, manifest, start + 12 + manifestLength + SignatureSize);
    }

    /// <summary>Checks <paramref name="modelKey"/> against the key commitment and prepares decryption.</summary>
    /// <exception cref="ModelKeyMismatchException">The key is not this package's key.</exception>
    public void Unlock(ModelKey modelKey)
    {
        ArgumentNullException.ThrowIfNull(modelKey);
        byte[] contentKey = GC.AllocateArray<byte>(32, pinned: true);
        Span<byte> commitment = stackalloc byte[ModelManifest.KeyCommitmentSize];
        try
        {
            PackageCrypto.DeriveKeys(modelKey, Manifest.Salt.Span, contentKey, commitment);
            if (!CryptographicOperations.FixedTimeEquals(commitment, Manifest.KeyCommitment.Span))
            {
                throw new ModelKeyMismatchException();
            }
            _aead?.Dispose();
            _aead = new AesGcm(contentKey, PackageCrypto.TagSize);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(contentKey);
        }
    }

    /// <summary>Decrypts the item named <paramref name="name"/> into <paramref name="destination"/>.</summary>
    public void ReadItem(string name, Span<byte> destination, bool verifyPlaintextDigest = false)
    {
        int index = Manifest.IndexOf(name);
        if (index < 0)
        {
            throw new KeyNotFoundException($"The manifest lists no item named '{name}'.");
        }
        ReadItem(index, destination, verifyPlaintextDigest);
    }

    /// <summary>
    /// Decrypts item <paramref name="index"/> into <paramref name="destination"/> (exactly
    /// <see cref="PackageItem.ByteLength"/> bytes are written). On any failure the destination is zeroed.
    /// </summary>
    /// <param name="index">Item index in manifest order.</param>
    /// <param name="destination">At least the item's length.</param>
    /// <param name="verifyPlaintextDigest">Also check the plaintext SHA-256 from the manifest. The chunk tags already
    /// bind every byte to the signed manifest, so this only guards against a misbehaving key holder; it halves throughput.</param>
    /// <exception cref="ChunkAuthenticationException">A chunk was modified, swapped or moved.</exception>
    /// <exception cref="PackageTruncatedException">The stream ended inside the item.</exception>
    /// <exception cref="ItemDigestMismatchException">The plaintext digest differs from the manifest.</exception>
    public void ReadItem(int index, Span<byte> destination, bool verifyPlaintextDigest = false)
    {
        AesGcm aead = _aead ?? throw new InvalidOperationException("Call Unlock with the model key before reading items.");
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Manifest.Items.Count);
        PackageItem item = Manifest.Items[index];
        if (destination.Length < item.ByteLength)
        {
            throw new ArgumentException($"Destination holds {destination.Length} bytes; item '{item.Name}' needs {item.ByteLength}.", nameof(destination));
        }
        if (_stream.CanSeek)
        {
            _stream.Position = _dataStart + _itemOffsets[index];
        }
        else if (index != _nextSequential)
        {
            throw new InvalidOperationException($"The package stream cannot seek; read items in order (next is {_nextSequential}).");
        }

        Span<byte> output = destination[..checked((int)item.ByteLength)];
        byte[] ad = PackageCrypto.CreateAssociatedData(item, Manifest.Digest.Span, out int indexOffset);
        Span<byte> nonce = stackalloc byte[PackageCrypto.NonceSize];
        Span<byte> tag = stackalloc byte[PackageCrypto.TagSize];
        int chunkSize = Manifest.ChunkSize;
        try
        {
            for (int chunk = 0; chunk < item.ChunkCount; chunk++)
            {
                int start = chunk * chunkSize;
                int length = Math.Min(chunkSize, output.Length - start);
                Span<byte> chunkSpan = output.Slice(start, length);
                ReadChunkBytes(chunkSpan, item, chunk);
                ReadChunkBytes(tag, item, chunk);
                PackageCrypto.Nonce(index, chunk, nonce);
                PackageCrypto.SetChunkIndex(ad, indexOffset, chunk);
                try
                {
                    aead.Decrypt(nonce, chunkSpan, tag, chunkSpan, ad);
                }
                catch (AuthenticationTagMismatchException ex)
                {
                    throw new ChunkAuthenticationException(
                        $"Chunk {chunk} of {item.ChunkCount} of {Describe(item)} failed authentication: it was modified, swapped with another item's chunk or moved. Discard this copy and fetch the package from the model provider again.",
                        ex)
                    { ItemName = item.Name, ChunkIndex = chunk };
                }
            }
            if (verifyPlaintextDigest)
            {
                Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
                SHA256.HashData(output, digest);
                if (!CryptographicOperations.FixedTimeEquals(digest, item.Sha256.Span))
                {
                    throw new ItemDigestMismatchException($"{Describe(item)} decrypted but does not match the manifest's SHA-256; the package was produced inconsistently. Ask the model provider to rebuild it.")
                    { ItemName = item.Name };
                }
            }
            _nextSequential = index + 1;
        }
        catch
        {
            CryptographicOperations.ZeroMemory(output);
            throw;
        }
    }

    /// <summary>Fails if the stream holds bytes after the last item (only for seekable streams or after reading every item in order).</summary>
    /// <exception cref="ProtocolFormatException">Trailing data follows the package.</exception>
    public void ExpectEnd()
    {
        if (_stream.CanSeek)
        {
            _stream.Position = _dataStart + _itemOffsets[^1];
        }
        if (_stream.ReadByte() != -1)
        {
            throw new ProtocolFormatException("model package", "(end)", "is followed by unexpected trailing data");
        }
    }

    /// <summary>Destroys the content key. Does not close the stream.</summary>
    public void Dispose()
    {
        _aead?.Dispose();
        _aead = null;
    }

    private static string Describe(PackageItem item) =>
        item.Kind == PackageItemKind.Tensor ? $"tensor '{item.Name}'" : $"operator binary '{item.Name}'";

    private void ReadChunkBytes(Span<byte> buffer, PackageItem item, int chunk)
    {
        try
        {
            _stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException ex)
        {
            throw new PackageTruncatedException($"The package ends inside chunk {chunk} of {item.ChunkCount} of {Describe(item)}: the download or copy was cut short. Fetch the complete package again.", ex)
            { ItemName = item.Name, ChunkIndex = chunk };
        }
    }

    private static void ReadHeaderBytes(Stream stream, Span<byte> buffer, string part)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException ex)
        {
            throw new PackageTruncatedException($"The package ends inside its {part}: the download or copy was cut short. Fetch the complete package again.", ex);
        }
    }
}
