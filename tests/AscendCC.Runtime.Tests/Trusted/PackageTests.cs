using System.Diagnostics;
using System.Security.Cryptography;
using AscendCC.Protocol;
using AscendCC.Protocol.Packaging;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Trusted;

[TestFixture]
public sealed class PackageTests : IDisposable
{
    private const int Chunk = 4096;
    private readonly ECDsa _provider = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly ModelKey _key = ModelKey.Generate();
    private readonly byte[] _a = RandomNumberGenerator.GetBytes((3 * Chunk) + 100);
    private readonly byte[] _b = RandomNumberGenerator.GetBytes(2 * Chunk);
    private readonly byte[] _op = RandomNumberGenerator.GetBytes(777);
    private byte[] _package = [];
    private ModelManifest _manifest = null!;

    public void Dispose()
    {
        _provider.Dispose();
        _key.Dispose();
    }

    [OneTimeSetUp]
    public void Build()
    {
        using var output = new MemoryStream();
        _manifest = Builder().WriteTo(output, _key, _provider, Policy());
        _package = output.ToArray();
    }

    [Test]
    public void RoundTripRestoresEveryItemAndTheManifest()
    {
        using var reader = ModelPackageReader.Open(new MemoryStream(_package), _provider);
        reader.Unlock(_key);
        Assert.That(reader.Manifest.Digest.ToArray(), Is.EqualTo(_manifest.Digest.ToArray()));
        Assert.That(reader.Manifest.Items.Select(i => (i.Name, i.Kind, i.ChunkCount)), Is.EqualTo(new[]
        {
            ("layers.0.weight", PackageItemKind.Tensor, 4),
            ("layers.0.bias", PackageItemKind.Tensor, 2),
            ("empty", PackageItemKind.Tensor, 1),
            ("matmul_f16", PackageItemKind.OperatorBinary, 1),
        }));
        Assert.That(reader.Manifest.Items[0].Shape, Is.EqualTo(new long[] { 3 * Chunk + 100 }));
        Assert.That(reader.Manifest.ExpectedGraphMeasurement.ToArray(), Is.EqualTo(Enumerable.Repeat((byte)0x5A, 48).ToArray()));
        Assert.That(Read(reader, "matmul_f16"), Is.EqualTo(_op), "random access");
        Assert.That(Read(reader, "layers.0.weight"), Is.EqualTo(_a));
        Assert.That(Read(reader, "layers.0.bias"), Is.EqualTo(_b));
        Assert.That(Read(reader, "empty"), Is.Empty);
        reader.ExpectEnd();
    }

    [Test]
    public void NonSeekableStreamsAreReadInOrder()
    {
        using var reader = ModelPackageReader.Open(new ForwardOnlyStream(_package), _provider);
        reader.Unlock(_key);
        Assert.Throws<InvalidOperationException>(() => reader.ReadItem(1, new byte[_b.Length]));
        Assert.That(Read(reader, "layers.0.weight"), Is.EqualTo(_a));
        Assert.That(Read(reader, "layers.0.bias"), Is.EqualTo(_b));
    }

    [Test]
    public void TamperedChunkNamesTensorAndChunk()
    {
        byte[] tampered = (byte[])_package.Clone();
        tampered[DataStart() + (2 * (Chunk + 16)) + 5] ^= 0x01;
        var ex = Assert.Throws<ChunkAuthenticationException>(() => ReadAll(tampered));
        Assert.That((ex!.ItemName, ex.ChunkIndex), Is.EqualTo(("layers.0.weight", (int?)2)));
        Assert.That(ex.Message, Does.Contain("chunk 2 of 4 of tensor 'layers.0.weight'").IgnoreCase.And.Contain("fetch the package"));
    }

    [Test]
    public void ChunkSwappedBetweenTensorsIsDetected()
    {
        byte[] swapped = (byte[])_package.Clone();
        int aChunk0 = DataStart();
        int bChunk0 = DataStart() + _a.Length + (4 * 16);
        byte[] tmp = swapped.AsSpan(aChunk0, Chunk + 16).ToArray();
        swapped.AsSpan(bChunk0, Chunk + 16).CopyTo(swapped.AsSpan(aChunk0));
        tmp.CopyTo(swapped.AsSpan(bChunk0));
        var ex = Assert.Throws<ChunkAuthenticationException>(() => ReadAll(swapped));
        Assert.That((ex!.ItemName, ex.ChunkIndex), Is.EqualTo(("layers.0.weight", (int?)0)));
    }

    [Test]
    public void ReorderedChunksWithinATensorAreDetected()
    {
        byte[] reordered = (byte[])_package.Clone();
        int c0 = DataStart();
        int c1 = c0 + Chunk + 16;
        byte[] tmp = reordered.AsSpan(c0, Chunk + 16).ToArray();
        reordered.AsSpan(c1, Chunk + 16).CopyTo(reordered.AsSpan(c0));
        tmp.CopyTo(reordered.AsSpan(c1));
        var ex = Assert.Throws<ChunkAuthenticationException>(() => ReadAll(reordered));
        Assert.That(ex!.ChunkIndex, Is.EqualTo(0));
    }

    [Test]
    public void TruncationNamesTheItemAndChunk()
    {
        byte[] truncated = _package.AsSpan(0, _package.Length - 500).ToArray();
        var ex = Assert.Throws<PackageTruncatedException>(() => ReadAll(truncated));
        Assert.That((ex!.ItemName, ex.ChunkIndex), Is.EqualTo(("matmul_f16", (int?)0)));
        Assert.Throws<PackageTruncatedException>(() => ModelPackageReader.Open(new MemoryStream(_package, 0, 40), _provider));
    }

    [Test]
    public void TrailingDataIsRejected()
    {
        using var reader = ModelPackageReader.Open(new MemoryStream([.. _package, 1]), _provider);
        Assert.Throws<ProtocolFormatException>(reader.ExpectEnd);
    }

    [Test]
    public void ItemsInMemoryDecryptWithoutTheStreamAndDetectTampering()
    {
        using var reader = ModelPackageReader.Open(new MemoryStream(_package), _provider);
        reader.Unlock(_key);
        (long offset, long length) = reader.GetEncryptedItemRange(1);
        byte[] plain = new byte[_b.Length];
        reader.DecryptItem(1, _package.AsSpan((int)offset, (int)length), plain, verifyPlaintextDigest: true);
        Assert.That(plain, Is.EqualTo(_b));

        byte[] tampered = _package.AsSpan((int)offset, (int)length).ToArray();
        tampered[^1] ^= 0x01;
        var ex = Assert.Throws<ChunkAuthenticationException>(() => reader.DecryptItem(1, tampered, plain));
        Assert.That((ex!.ItemName, ex.ChunkIndex), Is.EqualTo(("layers.0.bias", (int?)1)));
        Assert.That(plain.AsSpan().ContainsAnyExcept((byte)0), Is.False, "a failed item leaves no plaintext behind");
        Assert.Throws<PackageTruncatedException>(() => reader.DecryptItem(1, tampered.AsSpan(1), plain));
    }

    [Test]
    public void ManifestDecodingRejectsLengthsWhoseOffsetsCouldOverflow()
    {
        // An item of more chunks than an int counts: its chunk count cannot even be checked.
        byte[] encoded = _manifest.Encoded.ToArray();
        int nameAt = encoded.AsSpan().IndexOf("layers.0.bias"u8);
        int lengthAt = nameAt + "layers.0.bias".Length + 2 + "float16".Length + 1 + 16;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(encoded.AsSpan(lengthAt), ((ulong)int.MaxValue * Chunk) + 1);
        var tooLong = Assert.Throws<ProtocolFormatException>(() => ModelManifest.Decode(encoded))!;
        Assert.That(tooLong.Field, Is.EqualTo("item.byteLength"));
        Assert.That(tooLong.Message, Does.Contain($"'layers.0.bias' needs more than {int.MaxValue} chunks of {Chunk} bytes"));

        // Items each of the most chunks of the largest size, signed as any provider (the host too) can:
        // together they pass 2^62 bytes, and a reader's offsets into the package would overflow.
        const int Largest = 16 << 20;
        long most = (long)int.MaxValue * Largest;
        var items = Enumerable.Range(0, 200).Select(i => new PackageItem(PackageItemKind.Tensor, $"t{i}", "uint8", [most], most, new byte[32], int.MaxValue)).ToList();
        var huge = new ModelManifest("huge", new byte[ModelManifest.SaltSize], Largest, new byte[ModelManifest.KeyCommitmentSize], new byte[48], items, Policy());
        var tooMuch = Assert.Throws<ProtocolFormatException>(() => ModelManifest.Decode(huge.Encoded.Span))!;
        Assert.That(tooMuch.Field, Is.EqualTo("item.byteLength"));
        Assert.That(tooMuch.Message, Does.Contain("'t127' makes the items together larger than"));
    }

    [Test]
    public void ManifestDecodingRejectsInconsistentChunkCounts()
    {
        byte[] encoded = _manifest.Encoded.ToArray();
        Assert.That(ModelManifest.Decode(encoded).Digest.ToArray(), Is.EqualTo(_manifest.Digest.ToArray()));
        int nameAt = encoded.AsSpan().IndexOf("layers.0.bias"u8);
        int chunkCountAt = nameAt + "layers.0.bias".Length + 2 + "float16".Length + 1 + 16 + 8 + 32;
        encoded[chunkCountAt + 3] ^= 0x07;
        Assert.That(Assert.Throws<ProtocolFormatException>(() => ModelManifest.Decode(encoded))!.Field, Is.EqualTo("item.chunkCount"));
    }

    [Test]
    public void WrongKeyIsReportedAsWrongKey()
    {
        using var reader = ModelPackageReader.Open(new MemoryStream(_package), _provider);
        using ModelKey other = ModelKey.Generate();
        Assert.Throws<ModelKeyMismatchException>(() => reader.Unlock(other));
        Assert.Throws<InvalidOperationException>(() => reader.ReadItem(0, new byte[_a.Length]));
    }

    [Test]
    public void ManifestSignedByAnotherKeyOrModifiedIsRejected()
    {
        using ECDsa other = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        Assert.Throws<ManifestSignatureException>(() => ModelPackageReader.Open(new MemoryStream(_package), other));

        byte[] modified = (byte[])_package.Clone();
        int nameAt = modified.AsSpan().IndexOf("layers.0.bias"u8);
        modified[nameAt] = (byte)'L';
        Assert.Throws<ManifestSignatureException>(() => ModelPackageReader.Open(new MemoryStream(modified), _provider));
    }

    [Test]
    public void TwoPackagesOfTheSameDataUnderOneKeyShareNoCiphertext()
    {
        using var second = new MemoryStream();
        Builder().WriteTo(second, _key, _provider, Policy());
        Assert.That(second.ToArray().AsSpan(DataStart(), 64).SequenceEqual(_package.AsSpan(DataStart(), 64)), Is.False, "the per-package salt must give a fresh content key");
    }

    [Test]
    public void UnlockThroughput()
    {
        const int size = 128 * 1024 * 1024;
        byte[] weights = GC.AllocateUninitializedArray<byte>(size);
        RandomNumberGenerator.Fill(weights.AsSpan(0, 1 << 20));
        for (int o = 1 << 20; o < size; o += 1 << 20)
        {
            weights.AsSpan(0, 1 << 20).CopyTo(weights.AsSpan(o));
        }
        using var output = new MemoryStream(size + (1 << 20));
        new ModelPackageBuilder("throughput").AddTensor("w", "uint8", [size], weights).WriteTo(output, _key, _provider, Policy());
        byte[] hbm = GC.AllocateUninitializedArray<byte>(size);

        double best = 0, bestWithDigest = 0, bestInMemory = 0;
        byte[] packageBytes = output.ToArray();
        for (int run = 0; run < 3; run++)
        {
            output.Position = 0;
            using var reader = ModelPackageReader.Open(output, _provider);
            reader.Unlock(_key);
            var watch = Stopwatch.StartNew();
            reader.ReadItem(0, hbm);
            best = Math.Max(best, size / watch.Elapsed.TotalSeconds / 1e9);
            watch.Restart();
            reader.ReadItem(0, hbm, verifyPlaintextDigest: true);
            bestWithDigest = Math.Max(bestWithDigest, size / watch.Elapsed.TotalSeconds / 1e9);
            (long offset, long length) = reader.GetEncryptedItemRange(0);
            watch.Restart();
            reader.DecryptItem(0, packageBytes.AsSpan((int)offset, (int)length), hbm);
            bestInMemory = Math.Max(bestInMemory, size / watch.Elapsed.TotalSeconds / 1e9);
        }
        TestContext.Out.WriteLine($"Package unlock (AES-256-GCM, 1 MiB chunks, in place): {best:F2} GB/s from a stream (in place), {bestInMemory:F2} GB/s from memory; with plaintext SHA-256 check: {bestWithDigest:F2} GB/s");
        Assert.That(hbm.AsSpan().SequenceEqual(weights), Is.True);
    }

    private ModelPackageBuilder Builder() => new ModelPackageBuilder("tiny-llm") { ChunkSize = Chunk, ExpectedGraphMeasurement = Enumerable.Repeat((byte)0x5A, 48).ToArray() }
        .AddTensor("layers.0.weight", "float16", [_a.Length], _a)
        .AddTensor("layers.0.bias", "float16", [2, Chunk / 2], _b)
        .AddTensor("empty", "float32", [0], Array.Empty<byte>())
        .AddOperatorBinary("matmul_f16", _op);

    private static ReleasePolicy Policy() => new(1, [new byte[48]], new byte[32]);

    private int DataStart() => 12 + _manifest.Encoded.Length + 96;

    private void ReadAll(byte[] package)
    {
        using var reader = ModelPackageReader.Open(new MemoryStream(package), _provider);
        reader.Unlock(_key);
        for (int i = 0; i < reader.Manifest.Items.Count; i++)
        {
            reader.ReadItem(i, new byte[reader.Manifest.Items[i].ByteLength], verifyPlaintextDigest: true);
        }
    }

    private static byte[] Read(ModelPackageReader reader, string name)
    {
        byte[] result = new byte[reader.Manifest.Items[reader.Manifest.IndexOf(name)].ByteLength];
        reader.ReadItem(name, result, verifyPlaintextDigest: true);
        return result;
    }

    private sealed class ForwardOnlyStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
