using System.Buffers.Binary;
using System.Security.Cryptography;

namespace AscendCC.Protocol.Packaging;

/// <summary>
/// Builds a confidential model package: collects named tensors and operator binaries, hashes them,
/// signs the manifest and streams the encrypted chunks to an output stream with one reusable chunk
/// buffer. The plaintext is read twice (digest, then encryption) because every chunk's associated data
/// binds the final manifest digest; a tensor added as a producer is made twice for it, so the builder
/// never holds more than one such tensor at a time.
/// </summary>
public sealed class ModelPackageBuilder
{
    /// <summary>Default chunk size: 1 MiB.</summary>
    public const int DefaultChunkSize = 1024 * 1024;

    private readonly List<(PackageItemKind Kind, string Name, string ElementType, long[] Shape, ReadOnlyMemory<byte> Data, Func<ReadOnlyMemory<byte>>? Produce)> _items = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>Creates a builder for <paramref name="modelName"/>.</summary>
    public ModelPackageBuilder(string modelName)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelName);
        ModelName = modelName;
    }

    /// <summary>The model's name.</summary>
    public string ModelName { get; }

    /// <summary>Plaintext bytes per chunk (power of two, 4 KiB–16 MiB).</summary>
    public int ChunkSize { get; set; } = DefaultChunkSize;

    /// <summary>The expected graph (task-list) measurement.</summary>
    public ReadOnlyMemory<byte> ExpectedGraphMeasurement { get; set; }

    /// <summary>Adds a weight tensor.</summary>
    public ModelPackageBuilder AddTensor(string name, string elementType, IEnumerable<long> shape, ReadOnlyMemory<byte> data)
    {
        Add(PackageItemKind.Tensor, name, elementType, CheckShape(elementType, shape), data, null);
        return this;
    }

    /// <summary>
    /// Adds a weight tensor whose bytes <paramref name="produce"/> makes on demand: once when the package
    /// is hashed and once when it is encrypted (<see cref="WriteTo"/>), each time kept only while it is
    /// used, so a model larger than memory can be packaged tensor by tensor. Both calls must give the same
    /// bytes; <see cref="WriteTo"/> checks that they do.
    /// </summary>
    public ModelPackageBuilder AddTensor(string name, string elementType, IEnumerable<long> shape, Func<ReadOnlyMemory<byte>> produce)
    {
        ArgumentNullException.ThrowIfNull(produce);
        Add(PackageItemKind.Tensor, name, elementType, CheckShape(elementType, shape), ReadOnlyMemory<byte>.Empty, produce);
        return this;
    }

    private static long[] CheckShape(string elementType, IEnumerable<long> shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(elementType);
        ArgumentNullException.ThrowIfNull(shape);
        long[] dims = shape.ToArray();
        if (dims.Length > 8 || dims.Any(d => d < 0))
        {
            throw new ArgumentException("A shape has at most 8 non-negative dimensions.", nameof(shape));
        }
        return dims;
    }

    /// <summary>Adds an operator binary.</summary>
    public ModelPackageBuilder AddOperatorBinary(string name, ReadOnlyMemory<byte> binary)
    {
        Add(PackageItemKind.OperatorBinary, name, string.Empty, [], binary, null);
        return this;
    }

    /// <summary>Encrypts and writes the package.</summary>
    /// <param name="output">Destination stream (written sequentially).</param>
    /// <param name="modelKey">The model key.</param>
    /// <param name="providerSigningKey">The model provider's ECDSA P-384 signing key.</param>
    /// <param name="policy">Key release policy.</param>
    /// <returns>The signed manifest.</returns>
    /// <exception cref="InvalidOperationException">A producer gave other bytes the second time (the output is then not a valid package).</exception>
    public ModelManifest WriteTo(Stream output, ModelKey modelKey, ECDsa providerSigningKey, ReleasePolicy policy)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(modelKey);
        ArgumentNullException.ThrowIfNull(providerSigningKey);
        ArgumentNullException.ThrowIfNull(policy);
        if (!ModelManifest.IsValidChunkSize((uint)ChunkSize))
        {
            throw new InvalidOperationException("ChunkSize must be a power of two between 4 KiB and 16 MiB.");
        }
        if (providerSigningKey.KeySize != 384)
        {
            throw new ArgumentException("The provider signs with ECDSA P-384.", nameof(providerSigningKey));
        }

        byte[] salt = RandomNumberGenerator.GetBytes(ModelManifest.SaltSize);
        byte[] contentKey = GC.AllocateArray<byte>(32, pinned: true);
        byte[] commitment = new byte[ModelManifest.KeyCommitmentSize];
        try
        {
            PackageCrypto.DeriveKeys(modelKey, salt, contentKey, commitment);
            var items = _items.Select(i =>
            {
                ReadOnlySpan<byte> data = (i.Produce?.Invoke() ?? i.Data).Span;
                return new PackageItem(i.Kind, i.Name, i.ElementType, i.Shape, data.Length, SHA256.HashData(data), PackageItem.ChunkCountFor(data.Length, ChunkSize));
            }).ToArray();
            var manifest = new ModelManifest(ModelName, salt, ChunkSize, commitment, ExpectedGraphMeasurement.Span, items, policy);
            byte[] signature = providerSigningKey.SignData(PackageCrypto.SignedManifestInput(manifest.Encoded.Span), HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

            Span<byte> prefix = stackalloc byte[12];
            ModelPackageReader.Magic.CopyTo(prefix);
            BinaryPrimitives.WriteUInt32BigEndian(prefix.Slice(8), (uint)manifest.Encoded.Length);
            output.Write(prefix);
            output.Write(manifest.Encoded.Span);
            output.Write(signature);

            using var aead = new AesGcm(contentKey, PackageCrypto.TagSize);
            byte[] buffer = new byte[ChunkSize + PackageCrypto.TagSize];
            Span<byte> nonce = stackalloc byte[PackageCrypto.NonceSize];
            for (int itemIndex = 0; itemIndex < items.Length; itemIndex++)
            {
                PackageItem item = items[itemIndex];
                ReadOnlySpan<byte> data = (_items[itemIndex].Produce?.Invoke() ?? _items[itemIndex].Data).Span;
                if (_items[itemIndex].Produce is not null && !SHA256.HashData(data).AsSpan().SequenceEqual(item.Sha256.Span))
                {
                    // The manifest already written names the first bytes: these would not verify on a device.
                    throw new InvalidOperationException($"tensor '{item.Name}' was made with other bytes for encryption than for the manifest's digest; its producer must give the same bytes every call. The output is not a valid package: delete it.");
                }
                byte[] ad = PackageCrypto.CreateAssociatedData(item, manifest.Digest.Span, out int indexOffset);
                for (int chunk = 0; chunk < item.ChunkCount; chunk++)
                {
                    int start = chunk * ChunkSize;
                    int length = Math.Min(ChunkSize, data.Length - start);
                    PackageCrypto.Nonce(itemIndex, chunk, nonce);
                    PackageCrypto.SetChunkIndex(ad, indexOffset, chunk);
                    aead.Encrypt(nonce, data.Slice(start, length), buffer.AsSpan(0, length), buffer.AsSpan(length, PackageCrypto.TagSize), ad);
                    output.Write(buffer, 0, length + PackageCrypto.TagSize);
                }
            }
            CryptographicOperations.ZeroMemory(buffer);
            return manifest;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(contentKey);
        }
    }

    private void Add(PackageItemKind kind, string name, string elementType, long[] shape, ReadOnlyMemory<byte> data, Func<ReadOnlyMemory<byte>>? produce)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!_names.Add(name))
        {
            throw new ArgumentException($"An item named '{name}' was already added.", nameof(name));
        }
        _items.Add((kind, name, elementType, shape, data, produce));
    }
}
