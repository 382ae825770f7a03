using System.Security.Cryptography;
using AscendCC.Protocol.Encoding;

namespace AscendCC.Protocol.Packaging;

/// <summary>
/// The signed description of a confidential model package: items with their plaintext digests and
/// chunking, the expected graph measurement, the release policy and the package salt and key
/// commitment. See docs/model-package.md for the byte layout.
/// </summary>
public sealed class ModelManifest
{
    /// <summary>Largest accepted manifest encoding.</summary>
    public const int MaxEncodedSize = 16 * 1024 * 1024;

    /// <summary>Size of the package salt.</summary>
    public const int SaltSize = 32;

    /// <summary>Size of the key commitment.</summary>
    public const int KeyCommitmentSize = 32;

    private const int MaxItems = 1 << 20;
    private const long MaxTotalBytes = long.MaxValue / 2;
    private const int MaxRank = 8;
    private const int MaxNameBytes = 512;

    private static ReadOnlySpan<byte> Magic => "ACCMAN01"u8;

    internal ModelManifest(string modelName, ReadOnlySpan<byte> salt, int chunkSize, ReadOnlySpan<byte> keyCommitment, ReadOnlySpan<byte> expectedGraphMeasurement, IReadOnlyList<PackageItem> items, ReleasePolicy policy)
    {
        ModelName = modelName;
        Salt = salt.ToArray();
        ChunkSize = chunkSize;
        KeyCommitment = keyCommitment.ToArray();
        ExpectedGraphMeasurement = expectedGraphMeasurement.ToArray();
        Items = items;
        Policy = policy;
        Encoded = Encode();
        Digest = SHA384.HashData(Encoded.Span);
    }

    /// <summary>Model name.</summary>
    public string ModelName { get; }

    /// <summary>Random per-package salt: content keys and nonces derive from it, so two packages never share a nonce even under one model key.</summary>
    public ReadOnlyMemory<byte> Salt { get; }

    /// <summary>Plaintext bytes per chunk (a power of two, 4 KiB to 16 MiB).</summary>
    public int ChunkSize { get; }

    /// <summary>HKDF commitment to the model key: lets a reader tell "wrong key" from "tampered data".</summary>
    public ReadOnlyMemory<byte> KeyCommitment { get; }

    /// <summary>The canonical task-list measurement the device must reproduce before executeModel.</summary>
    public ReadOnlyMemory<byte> ExpectedGraphMeasurement { get; }

    /// <summary>All items in package order.</summary>
    public IReadOnlyList<PackageItem> Items { get; }

    /// <summary>Weight tensors.</summary>
    public IEnumerable<PackageItem> Tensors => Items.Where(i => i.Kind == PackageItemKind.Tensor);

    /// <summary>Operator binaries.</summary>
    public IEnumerable<PackageItem> OperatorBinaries => Items.Where(i => i.Kind == PackageItemKind.OperatorBinary);

    /// <summary>Key release conditions.</summary>
    public ReleasePolicy Policy { get; }

    /// <summary>The canonical encoding (what is signed).</summary>
    public ReadOnlyMemory<byte> Encoded { get; }

    /// <summary>SHA-384 of <see cref="Encoded"/>; bound into every chunk's associated data and the key release.</summary>
    public ReadOnlyMemory<byte> Digest { get; }

    /// <summary>Index of the item named <paramref name="name"/>, or -1.</summary>
    public int IndexOf(string name)
    {
        for (int i = 0; i < Items.Count; i++)
        {
            if (Items[i].Name == name)
            {
                return i;
            }
        }
        return -1;
    }

    private byte[] Encode()
    {
        var writer = new CanonicalWriter(1024 + (Items.Count * 128));
        writer.WriteFixed(Magic);
        writer.WriteString(ModelName);
        writer.WriteFixed(Salt.Span);
        writer.WriteUInt32((uint)ChunkSize);
        writer.WriteFixed(KeyCommitment.Span);
        writer.WriteVariable(ExpectedGraphMeasurement.Span);
        writer.WriteUInt32((uint)Items.Count);
        foreach (PackageItem item in Items)
        {
            writer.WriteByte((byte)item.Kind);
            writer.WriteString(item.Name);
            writer.WriteString(item.ElementType);
            writer.WriteByte((byte)item.Shape.Count);
            foreach (long dim in item.Shape)
            {
                writer.WriteInt64(dim);
            }
            writer.WriteUInt64((ulong)item.ByteLength);
            writer.WriteFixed(item.Sha256.Span);
            writer.WriteUInt32((uint)item.ChunkCount);
        }
        Policy.WriteTo(writer);
        return writer.ToArray();
    }

    /// <summary>Parses and validates a manifest encoding (the signature is checked by the package reader).</summary>
    /// <exception cref="ProtocolFormatException">Malformed or inconsistent manifest.</exception>
    public static ModelManifest Decode(ReadOnlySpan<byte> encoded)
    {
        var reader = new CanonicalReader(encoded, "model manifest");
        reader.ExpectMagic(Magic, "magic");
        string modelName = reader.ReadString(MaxNameBytes, "modelName");
        ReadOnlySpan<byte> salt = reader.ReadFixed(SaltSize, "salt");
        uint chunkSize = reader.ReadUInt32("chunkSize");
        if (!IsValidChunkSize(chunkSize))
        {
            throw reader.Fail("chunkSize", "is not a power of two between 4 KiB and 16 MiB");
        }
        ReadOnlySpan<byte> commitment = reader.ReadFixed(KeyCommitmentSize, "keyCommitment");
        ReadOnlySpan<byte> graph = reader.ReadVariable(64, "expectedGraphMeasurement");
        uint count = reader.ReadUInt32("itemCount");
        if (count > MaxItems)
        {
            throw reader.Fail("itemCount", $"exceeds {MaxItems}");
        }
        var items = new List<PackageItem>((int)count);
        var names = new HashSet<string>(StringComparer.Ordinal);
        // The items' ciphertext and tags together, so that no offset a reader derives from the
        // manifest can overflow: a manifest is signed by whoever built the package, the host included.
        long total = 0;
        for (int i = 0; i < count; i++)
        {
            PackageItemKind kind = reader.ReadEnum<PackageItemKind>("item.kind");
            string name = reader.ReadString(MaxNameBytes, "item.name");
            if (name.Length == 0 || !names.Add(name))
            {
                throw reader.Fail("item.name", $"'{name}' is empty or duplicated");
            }
            string elementType = reader.ReadString(32, "item.elementType");
            byte rank = reader.ReadByte("item.rank");
            if (rank > MaxRank)
            {
                throw reader.Fail("item.rank", $"of '{name}' exceeds {MaxRank}");
            }
            long[] shape = new long[rank];
            for (int d = 0; d < rank; d++)
            {
                shape[d] = reader.ReadInt64("item.shape");
                if (shape[d] < 0)
                {
                    throw reader.Fail("item.shape", $"of '{name}' has a negative dimension");
                }
            }
            ulong length = reader.ReadUInt64("item.byteLength");
            if (length > long.MaxValue / 2)
            {
                throw reader.Fail("item.byteLength", $"of '{name}' is too large");
            }
            byte[] digest = reader.ReadFixed(SHA256.HashSizeInBytes, "item.sha256").ToArray();
            uint chunks = reader.ReadUInt32("item.chunkCount");
            if (length > (ulong)int.MaxValue * chunkSize)
            {
                throw reader.Fail("item.byteLength", $"of '{name}' needs more than {int.MaxValue} chunks of {chunkSize} bytes");
            }
            if (chunks != (uint)PackageItem.ChunkCountFor((long)length, (int)chunkSize))
            {
                throw reader.Fail("item.chunkCount", $"of '{name}' disagrees with its length and the chunk size");
            }
            long encrypted = (long)length + ((long)chunks * PackageCrypto.TagSize);
            if (encrypted > MaxTotalBytes - total)
            {
                throw reader.Fail("item.byteLength", $"of '{name}' makes the items together larger than {MaxTotalBytes} bytes");
            }
            total += encrypted;
            items.Add(new PackageItem(kind, name, elementType, shape, (long)length, digest, (int)chunks));
        }
        ReleasePolicy policy = ReleasePolicy.ReadFrom(ref reader);
        reader.ExpectEnd();
        return new ModelManifest(modelName, salt, (int)chunkSize, commitment, graph, items, policy);
    }

    internal static bool IsValidChunkSize(uint chunkSize) =>
        chunkSize >= 4096 && chunkSize <= 16 * 1024 * 1024 && (chunkSize & (chunkSize - 1)) == 0;
}
