using System.Buffers.Binary;
using AscendCC.Protocol.Packaging;

namespace AscendCC.Runtime.Confidential;

/// <summary>The host's view of a package file: it may read the manifest (public, signed), never the items.</summary>
public static class PackageFile
{
    /// <summary>Parses the manifest of a package without verifying its signature (the device verifies it).</summary>
    /// <exception cref="FormatException">Not a package, or truncated.</exception>
    public static ModelManifest ReadManifest(ReadOnlySpan<byte> package)
    {
        if (package.Length < 12 || !package[..8].SequenceEqual("ACCMPK01"u8))
        {
            throw new FormatException("not a confidential model package (magic ACCMPK01 missing); give the .ccpkg file the model provider exported");
        }
        uint length = BinaryPrimitives.ReadUInt32BigEndian(package[8..]);
        if (length > ModelManifest.MaxEncodedSize || 12L + length > package.Length)
        {
            throw new FormatException($"the package is truncated: its manifest claims {length} bytes and {package.Length - 12} remain; copy the whole file again");
        }
        return ModelManifest.Decode(package.Slice(12, (int)length));
    }

    /// <summary>
    /// Where each item's chunk ciphertexts and tags lie in a package (public layout, derived from the
    /// manifest; nothing is decrypted or verified here — the device does that).
    /// </summary>
    /// <exception cref="FormatException">Not a package, or shorter than its manifest says.</exception>
    public static PackageLayout ReadLayout(ReadOnlySpan<byte> package)
    {
        ModelManifest manifest = ReadManifest(package);
        var layout = new PackageLayout(manifest, 12 + manifest.Encoded.Length + SignatureSize);
        if (layout.TotalLength > package.Length)
        {
            throw new FormatException($"the package is truncated: its manifest describes {layout.TotalLength} bytes and the file has {package.Length}; copy the whole file again");
        }
        return layout;
    }

    /// <summary>Bytes of the provider's manifest signature after the manifest.</summary>
    internal const int SignatureSize = 96;
}

/// <summary>
/// The byte layout of a confidential model package: a signed header (magic, manifest, signature), then
/// each item as its chunks, every chunk's ciphertext followed by its 16-byte AES-GCM tag.
/// </summary>
public sealed class PackageLayout
{
    private const int TagSize = 16;
    private readonly long[] _itemStart;
    private readonly long[] _tagStart;

    internal PackageLayout(ModelManifest manifest, int headerLength)
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

    /// <summary>The (unverified) manifest.</summary>
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
