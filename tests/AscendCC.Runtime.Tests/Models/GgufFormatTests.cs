using System.Text;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// The GGUF container: metadata of every type round-trips through <see cref="GgufWriter"/> and
/// <see cref="GgufFile"/>; hand-built files check the layout independently of the writer; every
/// malformed file is a <see cref="CheckpointFormatException"/> naming what is wrong.
/// </summary>
public class GgufFormatTests
{
    /// <summary>A GGUF file built byte by byte, independent of GgufWriter.</summary>
    private sealed class RawGguf
    {
        public uint Magic = 0x46554747;
        public uint Version = 3;
        public int Alignment = 32;
        public readonly List<Action<BinaryWriter>> Kvs = [];
        public readonly List<(string Name, ulong[] Ne, uint Type, ulong Offset)> Tensors = [];
        public byte[] Data = [];

        public RawGguf Kv(string key, uint type, Action<BinaryWriter> value)
        {
            Kvs.Add(w => { Str(w, key); w.Write(type); value(w); });
            return this;
        }

        public static void Str(BinaryWriter w, string s)
        {
            byte[] b = Encoding.UTF8.GetBytes(s);
            w.Write((ulong)b.Length);
            w.Write(b);
        }

        public byte[] Build()
        {
            var ms = new MemoryStream();
            var w = new BinaryWriter(ms);
            w.Write(Magic);
            w.Write(Version);
            w.Write((ulong)Tensors.Count);
            w.Write((ulong)Kvs.Count);
            foreach (var kv in Kvs)
            {
                kv(w);
            }
            foreach (var (name, ne, type, offset) in Tensors)
            {
                Str(w, name);
                w.Write((uint)ne.Length);
                foreach (ulong d in ne)
                {
                    w.Write(d);
                }
                w.Write(type);
                w.Write(offset);
            }
            while (ms.Length % Alignment != 0)
            {
                w.Write((byte)0);
            }
            w.Write(Data);
            return ms.ToArray();
        }
    }

    private static string Save(TempFolder temp, byte[] bytes, string name = "m.gguf")
    {
        string path = temp.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static CheckpointFormatException Refused(string path, params string[] fragments)
    {
        var e = Assert.Throws<CheckpointFormatException>(() => GgufFile.Open(path).Dispose());
        foreach (string f in fragments)
        {
            Assert.That(e!.Message, Does.Contain(f));
        }
        Assert.That(e!.Message, Does.Contain(path));
        return e;
    }

    private static RawGguf OneF32Tensor()
    {
        var raw = new RawGguf { Data = new byte[64] };
        raw.Kv("general.architecture", 8, w => RawGguf.Str(w, "llama"));
        raw.Tensors.Add(("t", [4, 4], 0, 0));
        return raw;
    }

    [Test]
    public void HandBuiltFileIsReadWithItsLayout()
    {
        using var temp = new TempFolder();
        var raw = new RawGguf { Version = 2, Data = new byte[32 + 8] };
        BitConverter.GetBytes(1.5f).CopyTo(raw.Data, 0);
        BitConverter.GetBytes((ushort)0x3C00).CopyTo(raw.Data, 32);
        raw.Kv("general.architecture", 8, w => RawGguf.Str(w, "llama"));
        raw.Kv("x.u8", 0, w => w.Write((byte)200));
        raw.Tensors.Add(("a", [2, 1], 0, 0));
        raw.Tensors.Add(("b", [4], 1, 32));
        string path = Save(temp, raw.Build());
        using var file = GgufFile.Open(path);
        Assert.Multiple(() =>
        {
            Assert.That(file.Version, Is.EqualTo(2u));
            Assert.That(file.Alignment, Is.EqualTo(32));
            Assert.That(file.DataOffset % 32, Is.EqualTo(0));
            Assert.That(file.Metadata.GetString("general.architecture"), Is.EqualTo("llama"));
            Assert.That(file.Metadata.GetInt32("x.u8"), Is.EqualTo(200));
            Assert.That(file.FindTensor("a")!.Shape, Is.EqualTo(new long[] { 1, 2 }));
            Assert.That(file.FindTensor("b")!.FileOffset, Is.EqualTo(file.DataOffset + 32));
        });
        var y = new float[4];
        file.ReadFloat32(file.FindTensor("b")!, y);
        Assert.That(y[0], Is.EqualTo(1f));
        var a = new float[2];
        file.ReadFloat32(file.FindTensor("a")!, a);
        Assert.That(a[0], Is.EqualTo(1.5f));
    }

    [Test]
    public void MetadataOfEveryTypeRoundTrips()
    {
        using var temp = new TempFolder();
        string path = temp.File("m.gguf");
        var values = new (string Key, GgufValue Value)[]
        {
            ("u8", new(GgufValueType.UInt8, (byte)255)),
            ("i8", new(GgufValueType.Int8, (sbyte)-128)),
            ("u16", new(GgufValueType.UInt16, (ushort)65535)),
            ("i16", new(GgufValueType.Int16, (short)-32768)),
            ("u32", new(GgufValueType.UInt32, uint.MaxValue)),
            ("i32", new(GgufValueType.Int32, int.MinValue)),
            ("f32", new(GgufValueType.Float32, -0.25f)),
            ("bool", new(GgufValueType.Bool, true)),
            ("str", new(GgufValueType.String, "héllo ▁ 你好")),
            ("u64", new(GgufValueType.UInt64, ulong.MaxValue)),
            ("i64", new(GgufValueType.Int64, long.MinValue)),
            ("f64", new(GgufValueType.Float64, Math.PI)),
            ("arr.str", new(GgufValueType.Array, new GgufArray(GgufValueType.String, new[] { "a", "", "▁b" }))),
            ("arr.f32", new(GgufValueType.Array, new GgufArray(GgufValueType.Float32, new[] { 1f, -2f }))),
            ("arr.bool", new(GgufValueType.Array, new GgufArray(GgufValueType.Bool, new[] { true, false }))),
            ("arr.empty", new(GgufValueType.Array, new GgufArray(GgufValueType.Int64, Array.Empty<long>()))),
            ("arr.nested", new(GgufValueType.Array, new GgufArray(GgufValueType.Array, new[] { new GgufArray(GgufValueType.UInt8, new byte[] { 1, 2 }) }))),
        };
        var writer = new GgufWriter(alignment: 64);
        foreach (var (k, v) in values)
        {
            writer.Add(k, v);
        }
        writer.AddTensor("t", [3, 2], GgufTensorType.F16, () => [1, 2, 3, 4, 5, 6]);
        writer.Write(path);
        using var file = GgufFile.Open(path);
        Assert.That(file.Alignment, Is.EqualTo(64));
        Assert.That(file.Metadata.Keys, Is.EqualTo(new[] { "general.alignment" }.Concat(values.Select(v => v.Key))));
        foreach (var (k, v) in values)
        {
            GgufValue read = file.Metadata.Find(k)!;
            Assert.That(read.Type, Is.EqualTo(v.Type), k);
            if (v.Value is GgufArray expected)
            {
                var actual = (GgufArray)read.Value;
                Assert.That(actual.ElementType, Is.EqualTo(expected.ElementType), k);
                Assert.That(actual.Count, Is.EqualTo(expected.Count), k);
                if (expected.ElementType != GgufValueType.Array)
                {
                    Assert.That(actual.Values, Is.EqualTo(expected.Values), k);
                }
                else
                {
                    Assert.That(((GgufArray)actual.Values.GetValue(0)!).Values, Is.EqualTo(new byte[] { 1, 2 }));
                }
            }
            else
            {
                Assert.That(read.Value, Is.EqualTo(v.Value), k);
            }
        }
        var t = file.FindTensor("t")!;
        Assert.That(t.Dimensions, Is.EqualTo(new long[] { 2, 3 }));
        var y = new float[6];
        file.ReadFloat32(t, y);
        Assert.That(y, Is.EqualTo(new float[] { 1, 2, 3, 4, 5, 6 }));
    }

    [Test]
    public void AWriteThatFailsHalfWayLeavesTheEarlierFileAndNoPartialOne()
    {
        using var temp = new TempFolder();
        string path = temp.File("model.gguf");
        new GgufWriter().Add("general.name", "earlier").AddTensor("a", [32], GgufTensorType.F32, () => new float[32]).Write(path);
        byte[] earlier = File.ReadAllBytes(path);

        var failing = new GgufWriter().Add("general.name", "later")
            .AddTensor("a", [32], GgufTensorType.F32, () => new float[32])
            .AddTensor("b", [32], GgufTensorType.F32, () => throw new IOException("the checkpoint's shard went away"));
        Assert.Throws<IOException>(() => failing.Write(path));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(earlier), "the earlier file is untouched");
        Assert.That(Directory.GetFiles(temp.Path), Is.EqualTo(new[] { path }), "no partial file is left");

        new GgufWriter().Add("general.name", "later").AddTensor("a", [32], GgufTensorType.F32, () => new float[32]).Write(path);
        using var file = GgufFile.Open(path);
        Assert.That(file.Metadata.GetString("general.name"), Is.EqualTo("later"), "a whole write replaces it");
    }

    [Test]
    public void BadMagicIsRefused()
    {
        using var temp = new TempFolder();
        var raw = OneF32Tensor();
        raw.Magic = 0x4C4C4747;
        Refused(Save(temp, raw.Build()), "magic");
    }

    [TestCase(1u, "version 1")]
    [TestCase(4u, "version 4")]
    [TestCase(0x03000000u, "big-endian")]
    public void UnsupportedVersionsAreRefused(uint version, string named)
    {
        using var temp = new TempFolder();
        var raw = OneF32Tensor();
        raw.Version = version;
        Refused(Save(temp, raw.Build()), named);
    }

    [Test]
    public void TruncationAnywhereIsRefusedNamingWhere()
    {
        using var temp = new TempFolder();
        byte[] whole = OneF32Tensor().Build();
        int dataStart = whole.Length - 64;
        Refused(Save(temp, whole[..6], "a.gguf"), "version", "truncated");
        // The counts are checked against what is left: a file cut after them fails at the tensor count.
        Refused(Save(temp, whole[..20], "b.gguf"), "tensor count", "truncated");
        Refused(Save(temp, whole[..60], "c.gguf"), "metadata 'general.architecture'", "truncated");
        Refused(Save(temp, whole[..(dataStart - 40)], "d.gguf"), "tensor info 't'", "truncated");
        var e = Refused(Save(temp, whole[..(dataStart + 60)], "e.gguf"), "truncated tensor data");
        Assert.That(e.TensorName, Is.EqualTo("t"));
    }

    [Test]
    public void HostileLengthsAreRefusedBeforeAllocating()
    {
        using var temp = new TempFolder();
        var raw = new RawGguf();
        raw.Kv("k", 9, w => { w.Write(8u); w.Write(ulong.MaxValue / 2); });
        Refused(Save(temp, raw.Build()), "array length", "metadata 'k'");
        raw = new RawGguf();
        raw.Kv("k", 8, w => w.Write(1UL << 40));
        Refused(Save(temp, raw.Build(), "b.gguf"), "string length");
        raw = new RawGguf();
        raw.Kv("k", 13, w => w.Write(0));
        Refused(Save(temp, raw.Build(), "c.gguf"), "value type 13");
    }

    [Test]
    public void UnsupportedTensorTypeIsRefusedNamingTensorTypeAndTheSupportedOnes()
    {
        using var temp = new TempFolder();
        string path = temp.File("iq2.gguf");
        // IQ2_XXS: 2.06 bits a weight on an E8 lattice grid, an importance-matrix type this runtime does not read.
        new GgufWriter().AddRawTensor("blk.0.attn_q.weight", [256, 1], GgufTensorType.IQ2_XXS, new byte[66]).Write(path);
        var e = Refused(path, "IQ2_XXS", "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS");
        Assert.That(e.TensorName, Is.EqualTo("blk.0.attn_q.weight"));
        new GgufWriter().AddRawTensor("x", [1], (GgufTensorType)99, new byte[4]).Write(path);
        Refused(path, "type 99");
    }

    [Test]
    public void MisalignedOffsetsAndBadAlignmentAreRefused()
    {
        using var temp = new TempFolder();
        var raw = OneF32Tensor();
        raw.Tensors[0] = ("t", [4, 2], 0, 16);
        var e = Refused(Save(temp, raw.Build()), "offset 16", "alignment 32");
        Assert.That(e.TensorName, Is.EqualTo("t"));
        raw = OneF32Tensor();
        raw.Kv("general.alignment", 4, w => w.Write(24u));
        Refused(Save(temp, raw.Build(), "b.gguf"), "general.alignment", "power of two");
        raw = OneF32Tensor();
        raw.Tensors.Add(("u", [4], 0, 32));
        Refused(Save(temp, raw.Build(), "c.gguf"), "overlaps tensor 't'");
        raw = OneF32Tensor();
        raw.Tensors[0] = ("t", [33, 1], 8, 0);
        Refused(Save(temp, raw.Build(), "d.gguf"), "not a multiple of the 32-element blocks of Q8_0");
    }

    [Test]
    public void UnknownArchitectureIsRefusedByTheCheckpoint()
    {
        using var temp = new TempFolder();
        string path = temp.File("falcon.gguf");
        new GgufWriter().Add("general.architecture", "falcon").AddTensor("token_embd.weight", [4, 4], GgufTensorType.F32, () => new float[16]).Write(path);
        var e = Assert.Throws<CheckpointFormatException>(() => ModelCheckpoint.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("'falcon'").And.Contain("supported: llama"));
    }

    private static GgufWriter TinyLlama(bool withOutput = false, long? ffnDownRows = null)
    {
        // hidden 32, 1 layer, 2 heads (1 kv head), ffn 64, vocab 8.
        var w = new GgufWriter()
            .Add("general.architecture", "llama")
            .Add("llama.embedding_length", 32u).Add("llama.block_count", 1u).Add("llama.feed_forward_length", 64u)
            .Add("llama.attention.head_count", 2u).Add("llama.attention.head_count_kv", 1u).Add("llama.context_length", 128u)
            .Add("llama.rope.freq_base", 500000f).Add("llama.attention.layer_norm_rms_epsilon", 1e-6f)
            .Add("tokenizer.ggml.model", "gpt2")
            .Add("tokenizer.ggml.tokens", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.String, Enumerable.Range(0, 8).Select(i => $"t{i}").ToArray())))
            .Add("tokenizer.ggml.eos_token_id", 7u);
        var rng = new Random(1);
        float[] R(long n) => Enumerable.Range(0, (int)n).Select(_ => (float)rng.NextDouble()).ToArray();
        void T(string name, long[] shape, GgufTensorType type = GgufTensorType.F32) => w.AddTensor(name, shape, type, () => R(shape.Aggregate(1L, (a, b) => a * b)));
        T("token_embd.weight", [8, 32], GgufTensorType.Q8_0);
        T("blk.0.attn_norm.weight", [32]);
        T("blk.0.attn_q.weight", [32, 32], GgufTensorType.F16);
        T("blk.0.attn_k.weight", [16, 32], GgufTensorType.BF16);
        T("blk.0.attn_v.weight", [16, 32]);
        T("blk.0.attn_output.weight", [32, 32]);
        T("blk.0.ffn_norm.weight", [32]);
        T("blk.0.ffn_gate.weight", [64, 32]);
        T("blk.0.ffn_up.weight", [64, 32]);
        T("blk.0.ffn_down.weight", [ffnDownRows ?? 32, 64]);
        T("output_norm.weight", [32]);
        if (withOutput)
        {
            T("output.weight", [8, 32]);
        }
        return w;
    }

    [Test]
    public void LlamaMetadataAndNamesMapToTheRuntimesConfigAndNames()
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        TinyLlama(withOutput: true).Write(path);
        using var checkpoint = ModelCheckpoint.Open(path);
        var config = (LlamaConfig)checkpoint.Config;
        Assert.Multiple(() =>
        {
            Assert.That(config.HiddenSize, Is.EqualTo(32));
            Assert.That(config.NumHiddenLayers, Is.EqualTo(1));
            Assert.That(config.IntermediateSize, Is.EqualTo(64));
            Assert.That(config.NumAttentionHeads, Is.EqualTo(2));
            Assert.That(config.NumKeyValueHeads, Is.EqualTo(1));
            Assert.That(config.MaxPositionEmbeddings, Is.EqualTo(128));
            Assert.That(config.RopeTheta, Is.EqualTo(500000));
            Assert.That(config.RmsNormEps, Is.EqualTo(1e-6).Within(1e-12));
            Assert.That(config.VocabSize, Is.EqualTo(8));
            Assert.That(config.TieWordEmbeddings, Is.False);
            Assert.That(config.EosTokenIds, Is.EqualTo(new[] { 7 }));
            Assert.That(checkpoint.GetTensor(LlamaTensorNames.LmHead).Shape, Is.EqualTo(new long[] { 8, 32 }));
            Assert.That(checkpoint.GetTensor(LlamaTensorNames.KProj(0)).DType, Is.EqualTo(TensorDType.BF16));
            Assert.That(checkpoint.GetTensor(LlamaTensorNames.QProj(0)).DType, Is.EqualTo(TensorDType.F16));
            Assert.That(checkpoint.GetTensor(LlamaTensorNames.Embedding).DType, Is.EqualTo(TensorDType.F32));
            Assert.That(checkpoint.TensorNames, Is.EquivalentTo(config.ExpectedTensors().Select(t => t.Name)));
        });
        // A byte-level BPE vocabulary without its merges is named as incomplete.
        var e = Assert.Throws<CheckpointFormatException>(() => TextTokenizer.Load(path));
        Assert.That(e!.Message, Does.Contain("byte-level BPE").And.Contain("tokenizer.ggml.merges"));
    }

    [Test]
    public void ShapesDisagreeingWithTheMetadataAreRefusedNamingTheTensor()
    {
        using var temp = new TempFolder();
        string path = temp.File("bad.gguf");
        TinyLlama(ffnDownRows: 64).Write(path);
        var e = Assert.Throws<CheckpointFormatException>(() => ModelCheckpoint.Open(path).Dispose());
        Assert.That(e!.TensorName, Is.EqualTo(LlamaTensorNames.DownProj(0)));
        Assert.That(e.Message, Does.Contain("[64, 64]"));
    }

    [Test]
    public void MissingLlamaMetadataIsNamed()
    {
        using var temp = new TempFolder();
        string path = temp.File("bad.gguf");
        new GgufWriter().Add("general.architecture", "llama").Add("llama.embedding_length", 32u).Write(path);
        var e = Assert.Throws<CheckpointFormatException>(() => ModelCheckpoint.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("llama.attention.head_count"));
    }
}
