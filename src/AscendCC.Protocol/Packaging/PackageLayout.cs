namespace AscendCC.Protocol.Packaging;

/// <summary>
/// The byte layout of a confidential model package: a signed header (magic, manifest, signature), then
/// each item as its chunks, every chunk's ciphertext followed by its 16-byte AES-GCM tag.
/// </summary>
public sealed class PackageLayout
{
    private const int TagSize = PackageCrypto.TagSize;

    /// <summary>Bytes of the provider's manifest signature (ECDSA P-384, r‖s) after the manifest.</summary>
    internal const int SignatureSize = 96;
    private readonly long[] _itemStart;
    private readonly long[] _tagStart;

    private PackageLayout(ModelManifest manifest, int headerLength)
    {
        Manifest = manifest;
        HeaderLength = headerLength;
        _itemStart = new long[manifest.Items.Count + 1];
        _tagStart = new long[manifest.Items.Count + 1];
        _itemStart[0] = headerLength;
        for (int i = 0; i < manifest.Items.Count; i++)
        {
            PackageItem item = manifest.Items[i];
            _itemStart[i + 1] = _itemStart[i] + item.ByteLength + ((long)item.ChunkCount * TagSize);
            _tagStart[i + 1] = _tagStart[i] + ((long)item.ChunkCount * TagSize);
        }
    }

    /// <summary>The layout of a package with <paramref name="manifest"/>: magic and length (12 bytes), manifest, signature, items.</summary>
    public static PackageLayout Of(ModelManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        return new PackageLayout(manifest, 12 + manifest.Encoded.Length + SignatureSize);
    }

    /// <summary>The manifest (as given; <see cref="ModelPackageReader"/> verifies it, this class does not).</summary>
    public ModelManifest Manifest { get; }

    /// <summary>Bytes of magic, manifest and signature: what the device needs to open the package.</summary>
    public int HeaderLength { get; }

    /// <summary>The package's full length.</summary>
    public long TotalLength => _itemStart[^1];

    /// <summary>All items' chunk tags together.</summary>
    public long TagBytes => _tagStart[^1];

    /// <summary>Where item <paramref name="index"/>'s tags start within <see cref="GatherTags"/>'s output.</summary>
    public long TagOffset(int index) => _tagStart[index];

    /// <summary>Bytes of item <paramref name="index"/>'s tags.</summary>
    public long TagLength(int index) => _tagStart[index + 1] - _tagStart[index];

    /// <summary>Item <paramref name="index"/>'s encrypted bytes (chunks with their tags): offset from the package start, and length.</summary>
    public (long Offset, long Length) EncryptedItem(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Manifest.Items.Count);
        return (_itemStart[index], _itemStart[index + 1] - _itemStart[index]);
    }

    /// <summary>Chunk <paramref name="chunk"/> of item <paramref name="index"/>: its ciphertext's offset and length in the package, and its offset in the plaintext.</summary>
    public (long PackageOffset, int Length, long ItemOffset) ChunkCiphertext(int index, int chunk)
    {
        PackageItem item = Manifest.Items[index];
        ArgumentOutOfRangeException.ThrowIfNegative(chunk);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(chunk, item.ChunkCount);
        long itemOffset = (long)chunk * Manifest.ChunkSize;
        int length = (int)Math.Min(Manifest.ChunkSize, item.ByteLength - itemOffset);
        return (_itemStart[index] + itemOffset + ((long)chunk * TagSize), length, itemOffset);
    }

    /// <summary>Every item's chunk tags, item after item, copied out of <paramref name="package"/>.</summary>
    public byte[] GatherTags(ReadOnlySpan<byte> package)
    {
        var tags = new byte[TagBytes];
        for (int i = 0; i < Manifest.Items.Count; i++)
        {
            for (int chunk = 0; chunk < Manifest.Items[i].ChunkCount; chunk++)
            {
                (long offset, int length, _) = ChunkCiphertext(i, chunk);
                package.Slice(checked((int)(offset + length)), TagSize).CopyTo(tags.AsSpan(checked((int)(_tagStart[i] + ((long)chunk * TagSize)))));
            }
        }
        return tags;
    }
}
