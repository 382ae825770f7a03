using System.Buffers.Binary;
using System.Text;
using AscendCC.Runtime.Models;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

public class SafetensorsFileTests
{
    [Test]
    public void ReadsStories260KWithEveryLlamaTensor()
    {
        string folder = TestData.RequireModel("stories260K");
        using var file = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors"));
        Assert.That(file.Tensors, Has.Count.EqualTo(1 + 5 * 9 + 1));
        var embed = file.GetTensor("model.embed_tokens.weight");
        Assert.Multiple(() =>
        {
            Assert.That(embed.DType, Is.EqualTo(TensorDType.F32));
            Assert.That(embed.Shape, Is.EqualTo(new long[] { 512, 64 }));
            Assert.That(embed.ByteLength, Is.EqualTo(512 * 64 * 4));
            Assert.That(file.GetTensor("model.layers.0.self_attn.k_proj.weight").Shape, Is.EqualTo(new long[] { 32, 64 }));
            Assert.That(file.Tensors.Values.All(t => t.DType == TensorDType.F32), Is.True);
        });
        float[] values = embed.ReadFloat32();
        Assert.That(values.Any(v => v != 0) && values.All(float.IsFinite), Is.True);
    }

    [Test]
    public void RoundTripsF32F16AndBF16WithMetadata()
    {
        using var temp = new TempFolder();
        string path = temp.File("mixed.safetensors");
        float[] f32 = [1.5f, -2.25f, 3e-3f, 1e6f, 0f, -0f];
        Half[] f16 = [(Half)0.5f, (Half)(-2f), (Half)65504f, Half.Epsilon];
        float[] bf16 = [1f, -3.5f, 256f];
        SafetensorsFile.Write(path,
        [
            ("a.f32", TensorDType.F32, [2, 3], Bytes(f32)),
            ("b.f16", TensorDType.F16, [4], f16.SelectMany(h => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits(h))).ToArray()),
            ("c.bf16", TensorDType.BF16, [3, 1], bf16.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(v) >> 16))).ToArray()),
            ("d.scalar", TensorDType.F32, [], Bytes([7f])),
            ("e.empty", TensorDType.F32, [0, 5], []),
        ], new Dictionary<string, string> { ["format"] = "pt" });

        using var file = SafetensorsFile.Open(path);
        Assert.Multiple(() =>
        {
            Assert.That(file.Metadata["format"], Is.EqualTo("pt"));
            Assert.That(file.TensorNames, Is.EqualTo(new[] { "a.f32", "b.f16", "c.bf16", "d.scalar", "e.empty" }));
            Assert.That(file.GetTensor("a.f32").ReadFloat32(), Is.EqualTo(f32));
            Assert.That(file.GetTensor("b.f16").ReadFloat32(), Is.EqualTo(f16.Select(h => (float)h).ToArray()));
            Assert.That(file.GetTensor("c.bf16").ReadFloat32(), Is.EqualTo(bf16));
            Assert.That(file.GetTensor("c.bf16").Shape, Is.EqualTo(new long[] { 3, 1 }));
            Assert.That(file.GetTensor("d.scalar").ReadFloat32(), Is.EqualTo(new[] { 7f }));
            Assert.That(file.GetTensor("e.empty").ElementCount, Is.Zero);
            Assert.That(file.DataStart % 8, Is.Zero, "header padded to 8 bytes");
        });
        var missing = Assert.Throws<CheckpointFormatException>(() => file.GetTensor("nope"));
        Assert.That(missing!.TensorName, Is.EqualTo("nope"));
    }

    [Test]
    public void FileShorterThanTheLengthPrefixIsTruncated()
    {
        using var temp = new TempFolder();
        string path = temp.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path));
        Assert.That(e!.Message, Does.Contain("shorter than the 8-byte header length"));
        Assert.That(e.FilePath, Is.EqualTo(path));
    }

    [Test]
    public void HeaderLengthBeyondTheFileIsRefused()
    {
        using var temp = new TempFolder();
        string path = WriteRaw(temp, "{}", 0, declaredHeaderLength: 1000);
        Assert.That(() => SafetensorsFile.Open(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("1000-byte JSON header but only 2 bytes follow"));
    }

    [Test]
    public void OversizedHeaderIsRefusedBeforeReadingIt()
    {
        using var temp = new TempFolder();
        string path = WriteRaw(temp, "{}", 0, declaredHeaderLength: 200_000_000);
        Assert.That(() => SafetensorsFile.Open(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("above the 100000000-byte limit"));
    }

    [TestCase("{\"a\": {\"dtype\": \"F32\", ", "not valid UTF-8 JSON")]
    [TestCase("[1, 2]", "not an object")]
    [TestCase("{\"a\": 5}", "not an object with dtype")]
    [TestCase("{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", "lacks data_offsets")]
    [TestCase("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", "shape[0] = -1 is not a non-negative integer")]
    [TestCase("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", "is not a [begin, end] pair")]
    [TestCase("{\"__metadata__\": {\"k\": 1}}", "not a string")]
    public void MalformedHeaderNamesTheProblem(string header, string expected)
    {
        using var temp = new TempFolder();
        string path = WriteRaw(temp, header, 4);
        Assert.That(() => SafetensorsFile.Open(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains(expected));
    }

    [Test]
    public void InvalidUtf8HeaderIsRefused()
    {
        using var temp = new TempFolder();
        byte[] header = [.. Encoding.ASCII.GetBytes("{\"a"), 0xFF, 0xFE, .. Encoding.ASCII.GetBytes("\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}")];
        string path = WriteRaw(temp, header, 4);
        Assert.That(() => SafetensorsFile.Open(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("not valid UTF-8 JSON"));
    }

    [Test]
    public void OverlappingOffsetsNameBothTensors()
    {
        using var temp = new TempFolder();
        string path = WriteRaw(temp, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12);
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path));
        Assert.That(e!.TensorName, Is.EqualTo("b"));
        Assert.That(e.Message, Does.Contain("overlap tensor 'a'"));
    }

    [Test]
    public void OffsetsPastTheDataSectionAreRefused()
    {
        using var temp = new TempFolder();
        string path = WriteRaw(temp, "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8);
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path));
        Assert.That(e!.TensorName, Is.EqualTo("w"));
        Assert.That(e.Message, Does.Contain("run past the 8-byte data section"));
    }

    [Test]
    public void GapsAndTrailingBytesAreRefused()
    {
        using var temp = new TempFolder();
        string gap = WriteRaw(temp, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8);
        Assert.That(() => SafetensorsFile.Open(gap), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("leaving a gap"));
        string trailing = WriteRaw(temp, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 8, name: "t.safetensors");
        Assert.That(() => SafetensorsFile.Open(trailing), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("index 4 bytes of data but the data section holds 8"));
    }

    [Test]
    public void SizeThatDisagreesWithShapeIsRefused()
    {
        using var temp = new TempFolder();
        string path = WriteRaw(temp, "{\"w\": {\"dtype\": \"BF16\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}}", 24);
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path));
        Assert.That(e!.TensorName, Is.EqualTo("w"));
        Assert.That(e.Message, Does.Contain("needs 12 bytes but data_offsets [0, 24] span 24"));
    }

    [Test]
    public void UnsupportedDtypeNamesTensorAndDtype()
    {
        using var temp = new TempFolder();
        string path = WriteRaw(temp, "{\"ids\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8);
        Assert.That(() => SafetensorsFile.Open(path), Throws.TypeOf<NotSupportedException>()
            .With.Message.Contains("tensor 'ids'").And.Message.Contains("dtype 'I64'").And.Message.Contains("F32, F16, BF16"));
    }

    [Test]
    public void DuplicateTensorNamesAreRefused()
    {
        using var temp = new TempFolder();
        string path = WriteRaw(temp, "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8);
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path));
        Assert.That(e!.TensorName, Is.EqualTo("w"));
        Assert.That(e.Message, Does.Contain("more than once"));
    }

    [Test]
    public void TruncatedRealCheckpointNamesTheCutTensor()
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        byte[] bytes = File.ReadAllBytes(Path.Combine(folder, "model.safetensors"));
        string path = temp.File("cut.safetensors");
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
        string last;
        using (var whole = SafetensorsFile.Open(Path.Combine(folder, "model.safetensors")))
        {
            last = whole.TensorNames[^1];
        }
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path));
        Assert.That(e!.TensorName, Is.EqualTo(last));
        Assert.That(e.Message, Does.Contain("truncated"));
    }

    internal static byte[] Bytes(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }
        return bytes;
    }

    private static string WriteRaw(TempFolder temp, string header, int dataBytes, ulong? declaredHeaderLength = null, string name = "raw.safetensors") =>
        WriteRaw(temp, Encoding.UTF8.GetBytes(header), dataBytes, declaredHeaderLength, name);

    private static string WriteRaw(TempFolder temp, byte[] header, int dataBytes, ulong? declaredHeaderLength = null, string name = "raw.safetensors")
    {
        string path = temp.File(name);
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredHeaderLength ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
