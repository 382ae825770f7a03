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

    private readonly Stream _stream;
    private readonly long _packageStart;
    private readonly PackageLayout _layout;
    private readonly byte[] _contentKey = GC.AllocateArray<byte>(32, pinned: true);
    private AesGcm? _aead;
    private int _nextSequential;

    private ModelPackageReader(Stream stream, ModelManifest manifest, long packageStart)
    {
        _packageStart = packageStart;
        _stream = stream;
        Manifest = manifest;
        _layout = PackageLayout.Of(manifest);
    }

    /// <summary>The verified manifest.</summary>
    public ModelManifest Manifest { get; }

    /// <summary>Whether <see cref="Unlock"/> succeeded.</summary>
    public bool IsUnlocked => _aead is not null;

    /// <summary>Total size of the encrypted items (after header, manifest and signature).</summary>
    public long EncryptedDataLength => _layout.TotalLength - _layout.HeaderLength;

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
        byte[] signature = new byte[PackageLayout.SignatureSize];
        ReadHeaderBytes(package, signature, "manifest signature");

        // Verify before parsing so no attacker-chosen manifest structure is ever interpreted.
        if (!providerPublicKey.VerifyData(PackageCrypto.SignedManifestInput(manifestBytes), signature, HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
        {
            throw new ManifestSignatureException();
        }
        ModelManifest manifest = ModelManifest.Decode(manifestBytes);
        return new ModelPackageReader(package, manifest, start);
    }

    /// <summary>Checks <paramref name="modelKey"/> against the key commitment and prepares decryption.</summary>
    /// <exception cref="ModelKeyMismatchException">The key is not this package's key.</exception>
    public void Unlock(ModelKey modelKey)
    {
        ArgumentNullException.ThrowIfNull(modelKey);
        Span<byte> commitment = stackalloc byte[ModelManifest.KeyCommitmentSize];
        PackageCrypto.DeriveKeys(modelKey, Manifest.Salt.Span, _contentKey, commitment);
        if (!CryptographicOperations.FixedTimeEquals(commitment, Manifest.KeyCommitment.Span))
        {
            CryptographicOperations.ZeroMemory(_contentKey);
            throw new ModelKeyMismatchException();
        }
        _aead?.Dispose();
        _aead = new AesGcm(_contentKey, PackageCrypto.TagSize);
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
            _stream.Position = _packageStart + _layout.EncryptedItem(index).Offset;
        }
        else if (index != _nextSequential)
        {
            throw new InvalidOperationException($"The package stream cannot seek; read items in order (next is {_nextSequential}).");
        }

        Span<byte> output = destination[..checked((int)item.ByteLength)];
        try
        {
            DecryptChunks(aead, index, item, output, ReadOnlySpan<byte>.Empty, fromStream: true);
            VerifyDigest(item, output, verifyPlaintextDigest);
            _nextSequential = index + 1;
        }
        catch
        {
            CryptographicOperations.ZeroMemory(output);
            throw;
        }
    }

    /// <summary>
    /// The position of item <paramref name="index"/>'s encrypted bytes relative to the package start,
    /// for callers that hold the package in (device) memory rather than in a stream.
    /// </summary>
    public (long Offset, long Length) GetEncryptedItemRange(int index)
    {
        return _layout.EncryptedItem(index);
    }

    /// <summary>
    /// Decrypts item <paramref name="index"/> from its encrypted bytes already in memory (see
    /// <see cref="GetEncryptedItemRange"/>) into <paramref name="destination"/>, without touching the stream.
    /// <paramref name="encryptedItem"/> and <paramref name="destination"/> must not overlap.
    /// </summary>
    /// <exception cref="ChunkAuthenticationException">A chunk was modified, swapped or moved.</exception>
    /// <exception cref="PackageTruncatedException"><paramref name="encryptedItem"/> is shorter than the item.</exception>
    /// <exception cref="ItemDigestMismatchException">The plaintext digest differs from the manifest.</exception>
    public void DecryptItem(int index, ReadOnlySpan<byte> encryptedItem, Span<byte> destination, bool verifyPlaintextDigest = false)
    {
        AesGcm aead = _aead ?? throw new InvalidOperationException("Call Unlock with the model key before reading items.");
        (_, long encryptedLength) = GetEncryptedItemRange(index);
        PackageItem item = Manifest.Items[index];
        if (destination.Length < item.ByteLength)
        {
            throw new ArgumentException($"Destination holds {destination.Length} bytes; item '{item.Name}' needs {item.ByteLength}.", nameof(destination));
        }
        if (encryptedItem.Length != encryptedLength)
        {
            throw new PackageTruncatedException($"The encrypted bytes of {Describe(item)} are {encryptedItem.Length} bytes, expected {encryptedLength}: the copy is incomplete. Copy the complete item again.")
            { ItemName = item.Name };
        }
        Span<byte> output = destination[..checked((int)item.ByteLength)];
        try
        {
            if (item.ChunkCount >= 4 && Environment.ProcessorCount > 1)
            {
                DecryptChunksParallel(index, item, output, encryptedItem, ReadOnlySpan<byte>.Empty);
            }
            else
            {
                DecryptChunks(aead, index, item, output, encryptedItem, fromStream: false);
            }
            VerifyDigest(item, output, verifyPlaintextDigest);
        }
        catch
        {
            CryptographicOperations.ZeroMemory(output);
            throw;
        }
    }

    /// <summary>
    /// Decrypts item <paramref name="index"/> over itself: <paramref name="data"/> holds the item's
    /// chunk ciphertexts back to back (exactly <see cref="PackageItem.ByteLength"/> bytes, the tags
    /// taken out) and <paramref name="tags"/> the chunk tags in order (<see cref="PackageItem.ChunkCount"/>
    /// × 16 bytes). This is how a device unlocks a tensor where it will live, so the plaintext never
    /// needs a second buffer. On any failure <paramref name="data"/> is zeroed.
    /// </summary>
    /// <exception cref="ChunkAuthenticationException">A chunk or its tag was modified, swapped or moved.</exception>
    /// <exception cref="PackageTruncatedException"><paramref name="data"/> or <paramref name="tags"/> has the wrong length.</exception>
    /// <exception cref="ItemDigestMismatchException">The plaintext digest differs from the manifest.</exception>
    public void DecryptItemInPlace(int index, Span<byte> data, ReadOnlySpan<byte> tags, bool verifyPlaintextDigest = false)
    {
        AesGcm aead = _aead ?? throw new InvalidOperationException("Call Unlock with the model key before reading items.");
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Manifest.Items.Count);
        PackageItem item = Manifest.Items[index];
        long tagBytes = (long)item.ChunkCount * PackageCrypto.TagSize;
        if (data.Length != item.ByteLength || tags.Length != tagBytes)
        {
            CryptographicOperations.ZeroMemory(data);
            throw new PackageTruncatedException($"{Describe(item)} needs {item.ByteLength} bytes of ciphertext and {tagBytes} bytes of chunk tags; {data.Length} and {tags.Length} were given. Copy the complete item again.")
            { ItemName = item.Name };
        }
        try
        {
            if (item.ChunkCount >= 4 && Environment.ProcessorCount > 1)
            {
                DecryptChunksParallel(index, item, data, data, tags);
            }
            else
            {
                byte[] ad = PackageCrypto.CreateAssociatedData(item, Manifest.Digest.Span, out int indexOffset);
                Span<byte> nonce = stackalloc byte[PackageCrypto.NonceSize];
                for (int chunk = 0; chunk < item.ChunkCount; chunk++)
                {
                    int start = chunk * Manifest.ChunkSize;
                    Span<byte> body = data.Slice(start, Math.Min(Manifest.ChunkSize, data.Length - start));
                    ChunkAuthenticationException? failure = DecryptChunk(aead, index, item, chunk, body, tags.Slice(chunk * PackageCrypto.TagSize, PackageCrypto.TagSize), body, ad, indexOffset, nonce);
                    if (failure is not null)
                    {
                        throw failure;
                    }
                }
            }
            VerifyDigest(item, data, verifyPlaintextDigest);
        }
        catch
        {
            CryptographicOperations.ZeroMemory(data);
            throw;
        }
    }

    /// <summary>Fails if the stream holds bytes after the last item (only for seekable streams or after reading every item in order).</summary>
    /// <exception cref="ProtocolFormatException">Trailing data follows the package.</exception>
    public void ExpectEnd()
    {
        if (_stream.CanSeek)
        {
            _stream.Position = _packageStart + _layout.TotalLength;
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
        CryptographicOperations.ZeroMemory(_contentKey);
    }

    private static string Describe(PackageItem item) =>
        item.Kind == PackageItemKind.Tensor ? $"tensor '{item.Name}'" : $"operator binary '{item.Name}'";

    private void DecryptChunks(AesGcm aead, int index, PackageItem item, Span<byte> output, ReadOnlySpan<byte> encrypted, bool fromStream)
    {
        byte[] ad = PackageCrypto.CreateAssociatedData(item, Manifest.Digest.Span, out int indexOffset);
        Span<byte> nonce = stackalloc byte[PackageCrypto.NonceSize];
        Span<byte> tagBuffer = stackalloc byte[PackageCrypto.TagSize];
        int chunkSize = Manifest.ChunkSize;
        for (int chunk = 0; chunk < item.ChunkCount; chunk++)
        {
            int start = chunk * chunkSize;
            int length = Math.Min(chunkSize, output.Length - start);
            Span<byte> plaintext = output.Slice(start, length);
            scoped ReadOnlySpan<byte> ciphertext;
            scoped ReadOnlySpan<byte> tag;
            if (fromStream)
            {
                // In place: the ciphertext lands in the destination and is decrypted over itself.
                ReadChunkBytes(plaintext, item, chunk);
                ReadChunkBytes(tagBuffer, item, chunk);
                ciphertext = plaintext;
                tag = tagBuffer;
            }
            else
            {
                int at = start + (chunk * PackageCrypto.TagSize);
                ciphertext = encrypted.Slice(at, length);
                tag = encrypted.Slice(at + length, PackageCrypto.TagSize);
            }
            ChunkAuthenticationException? failure = DecryptChunk(aead, index, item, chunk, ciphertext, tag, plaintext, ad, indexOffset, nonce);
            if (failure is not null)
            {
                throw failure;
            }
        }
    }

    /// <summary>
    /// Decrypts an in-memory item on all cores: chunks are independent, so each worker takes every
    /// N-th chunk with its own AesGcm instance (instances are not thread-safe). Pointers cross into
    /// the workers because spans cannot; the fixed block outlives Parallel.For.
    /// </summary>
    /// <remarks>
    /// With <paramref name="separateTags"/> empty, <paramref name="encrypted"/> is the package layout
    /// (each chunk followed by its tag); otherwise it holds the bare chunk ciphertexts at the
    /// plaintext's offsets (possibly the output itself: AES-GCM decrypts over an identical span) and
    /// the tags come from <paramref name="separateTags"/>.
    /// </remarks>
    private unsafe void DecryptChunksParallel(int index, PackageItem item, Span<byte> output, ReadOnlySpan<byte> encrypted, ReadOnlySpan<byte> separateTags)
    {
        bool interleaved = separateTags.IsEmpty;
        int workers = Math.Min(Environment.ProcessorCount, item.ChunkCount);
        int chunkSize = Manifest.ChunkSize;
        ChunkAuthenticationException? firstFailure = null;
        var failureLock = new object();
        fixed (byte* outputPointer = output)
        fixed (byte* encryptedPointer = encrypted)
        fixed (byte* tagsPointer = separateTags)
        {
            nint outputAddress = (nint)outputPointer;
            nint encryptedAddress = (nint)encryptedPointer;
            nint tagsAddress = (nint)tagsPointer;
            int outputLength = output.Length;
            int encryptedLength = encrypted.Length;
            int tagsLength = separateTags.Length;
            Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, worker =>
            {
                using var aead = new AesGcm(_contentKey, PackageCrypto.TagSize);
                byte[] ad = PackageCrypto.CreateAssociatedData(item, Manifest.Digest.Span, out int indexOffset);
                Span<byte> nonce = stackalloc byte[PackageCrypto.NonceSize];
                var outputSpan = new Span<byte>((void*)outputAddress, outputLength);
                var encryptedSpan = new ReadOnlySpan<byte>((void*)encryptedAddress, encryptedLength);
                var tagsSpan = new ReadOnlySpan<byte>((void*)tagsAddress, tagsLength);
                for (int chunk = worker; chunk < item.ChunkCount; chunk += workers)
                {
                    int start = chunk * chunkSize;
                    int length = Math.Min(chunkSize, outputLength - start);
                    int at = interleaved ? start + (chunk * PackageCrypto.TagSize) : start;
                    ReadOnlySpan<byte> tag = interleaved ? encryptedSpan.Slice(at + length, PackageCrypto.TagSize) : tagsSpan.Slice(chunk * PackageCrypto.TagSize, PackageCrypto.TagSize);
                    ChunkAuthenticationException? failure = DecryptChunk(aead, index, item, chunk, encryptedSpan.Slice(at, length), tag, outputSpan.Slice(start, length), ad, indexOffset, nonce);
                    if (failure is not null)
                    {
                        lock (failureLock)
                        {
                            // Report the lowest failing chunk so the error does not depend on thread timing.
                            if (firstFailure is null || failure.ChunkIndex < firstFailure.ChunkIndex)
                            {
                                firstFailure = failure;
                            }
                        }
                        return;
                    }
                }
            });
        }
        if (firstFailure is not null)
        {
            throw firstFailure;
        }
    }

    private static ChunkAuthenticationException? DecryptChunk(AesGcm aead, int index, PackageItem item, int chunk, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, byte[] ad, int indexOffset, Span<byte> nonce)
    {
        PackageCrypto.Nonce(index, chunk, nonce);
        PackageCrypto.SetChunkIndex(ad, indexOffset, chunk);
        try
        {
            aead.Decrypt(nonce, ciphertext, tag, plaintext, ad);
            return null;
        }
        catch (AuthenticationTagMismatchException ex)
        {
            return new ChunkAuthenticationException(
                $"Chunk {chunk} of {item.ChunkCount} of {Describe(item)} failed authentication: it was modified, swapped with another item's chunk or moved. Discard this copy and fetch the package from the model provider again.",
                ex)
            { ItemName = item.Name, ChunkIndex = chunk };
        }
    }

    private static void VerifyDigest(PackageItem item, ReadOnlySpan<byte> output, bool verify)
    {
        if (!verify)
        {
            return;
        }
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(output, digest);
        if (!CryptographicOperations.FixedTimeEquals(digest, item.Sha256.Span))
        {
            throw new ItemDigestMismatchException($"{Describe(item)} decrypted but does not match the manifest's SHA-256; the package was produced inconsistently. Ask the model provider to rebuild it.")
            { ItemName = item.Name };
        }
    }

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
