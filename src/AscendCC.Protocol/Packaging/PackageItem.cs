namespace AscendCC.Protocol.Packaging;

/// <summary>Whether a package item is a weight tensor or an operator binary.</summary>
public enum PackageItemKind
{
    /// <summary>A weight tensor.</summary>
    Tensor = 1,

    /// <summary>An operator (kernel) binary.</summary>
    OperatorBinary = 2,
}

/// <summary>One encrypted item of a model package, as listed in the signed manifest.</summary>
public sealed class PackageItem
{
    internal PackageItem(PackageItemKind kind, string name, string elementType, IReadOnlyList<long> shape, long byteLength, ReadOnlyMemory<byte> sha256, int chunkCount)
    {
        Kind = kind;
        Name = name;
        ElementType = elementType;
        Shape = shape;
        ByteLength = byteLength;
        Sha256 = sha256;
        ChunkCount = chunkCount;
    }

    /// <summary>Tensor or operator binary.</summary>
    public PackageItemKind Kind { get; }

    /// <summary>Unique name (tensor parameter name or operator name).</summary>
    public string Name { get; }

    /// <summary>Element type name for tensors (e.g. "float16"); empty for operator binaries.</summary>
    public string ElementType { get; }

    /// <summary>Tensor shape; empty for operator binaries.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>Plaintext length.</summary>
    public long ByteLength { get; }

    /// <summary>SHA-256 of the plaintext.</summary>
    public ReadOnlyMemory<byte> Sha256 { get; }

    /// <summary>Number of encrypted chunks (at least one, so even an empty item is authenticated).</summary>
    public int ChunkCount { get; }

    /// <summary>The chunk count for a length and chunk size.</summary>
    public static int ChunkCountFor(long byteLength, int chunkSize) =>
        byteLength == 0 ? 1 : checked((int)((byteLength + chunkSize - 1) / chunkSize));
}
