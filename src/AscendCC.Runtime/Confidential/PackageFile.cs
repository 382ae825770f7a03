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
        if (package.IsEmpty)
        {
            throw Empty();
        }
        if (package.Length < 12 || !package[..8].SequenceEqual("ACCMPK01"u8))
        {
            throw NotAPackage();
        }
        uint length = BinaryPrimitives.ReadUInt32BigEndian(package[8..]);
        if (length > ModelManifest.MaxEncodedSize || 12L + length > package.Length)
        {
            throw ManifestTruncated(length, package.Length);
        }
        return ModelManifest.Decode(package.Slice(12, (int)length));
    }

    /// <inheritdoc cref="ReadManifest(ReadOnlySpan{byte})"/>
    public static ModelManifest ReadManifest(PackageSource package)
    {
        ArgumentNullException.ThrowIfNull(package);
        if (package.Length == 0)
        {
            throw Empty();
        }
        if (package.Length < 12 || !package.Read(0, 8).SequenceEqual("ACCMPK01"u8))
        {
            throw NotAPackage();
        }
        uint length = BinaryPrimitives.ReadUInt32BigEndian(package.Read(8, 4));
        if (length > ModelManifest.MaxEncodedSize || 12L + length > package.Length)
        {
            throw ManifestTruncated(length, package.Length);
        }
        return ModelManifest.Decode(package.Read(12, (int)length));
    }

    /// <summary>
    /// Where each item's chunk ciphertexts and tags lie in a package (public layout, derived from the
    /// manifest; nothing is decrypted or verified here — the device does that).
    /// </summary>
    /// <exception cref="FormatException">Not a package, or shorter than its manifest says.</exception>
    public static PackageLayout ReadLayout(ReadOnlySpan<byte> package) => CheckLength(PackageLayout.Of(ReadManifest(package)), package.Length);

    /// <inheritdoc cref="ReadLayout(ReadOnlySpan{byte})"/>
    public static PackageLayout ReadLayout(PackageSource package)
    {
        ArgumentNullException.ThrowIfNull(package);
        return CheckLength(PackageLayout.Of(ReadManifest(package)), package.Length);
    }

    /// <summary>Every item's chunk tags, item after item (the layout <see cref="PackageLayout.GatherTags"/> gives), read from <paramref name="package"/>.</summary>
    public static byte[] GatherTags(PackageLayout layout, PackageSource package)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(package);
        var tags = new byte[layout.TagBytes];
        int at = 0;
        for (int i = 0; i < layout.Manifest.Items.Count; i++)
        {
            for (int chunk = 0; chunk < layout.Manifest.Items[i].ChunkCount; chunk++)
            {
                (long offset, int length, _) = layout.ChunkCiphertext(i, chunk);
                package.Read(offset + length, TagSize).CopyTo(tags.AsSpan(at));
                at += TagSize;
            }
        }
        return tags;
    }

    // AES-GCM's tag after every chunk's ciphertext (the layout's chunk and tag offsets assume the same).
    private const int TagSize = 16;

    private static PackageLayout CheckLength(PackageLayout layout, long length) => layout.TotalLength <= length
        ? layout
        : throw new FormatException($"the package is truncated: its manifest describes {layout.TotalLength} bytes and the file has {length}; copy the whole file again");

    private static FormatException Empty() =>
        new("the package is empty: give the whole .ccpkg file the model provider exported");

    private static FormatException NotAPackage() =>
        new("not a confidential model package (magic ACCMPK01 missing); give the .ccpkg file the model provider exported");

    private static FormatException ManifestTruncated(uint length, long available) =>
        new($"the package is truncated: its manifest claims {length} bytes and {available - 12} remain; copy the whole file again");
}
