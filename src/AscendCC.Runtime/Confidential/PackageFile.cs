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
        var layout = PackageLayout.Of(manifest);
        if (layout.TotalLength > package.Length)
        {
            throw new FormatException($"the package is truncated: its manifest describes {layout.TotalLength} bytes and the file has {package.Length}; copy the whole file again");
        }
        return layout;
    }
}
