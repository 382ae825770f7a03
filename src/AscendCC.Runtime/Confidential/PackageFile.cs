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
}
