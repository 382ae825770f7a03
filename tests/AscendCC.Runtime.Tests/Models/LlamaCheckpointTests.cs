using System.Buffers.Binary;
using AscendCC.Runtime.Models;
using AscendCC.Tests;
using AscendCC.Tests.TorchLlama;
using NUnit.Framework;
using static TorchSharp.torch;
using AscendCC.Runtime.Llama;

namespace AscendCC.Runtime.Tests.Models;

public class LlamaCheckpointTests
{
    [Test]
    public void HuggingFaceAndLlama2cLayoutsHoldTheSameWeightsAfterTheQkPermutation()
    {
        string folder = TestData.RequireModel("stories260K");
        using var hf = ModelCheckpoint.Open(folder);
        using var l2c = ModelCheckpoint.Open(Path.Combine(folder, "stories260K.bin"));
        Assert.Multiple(() =>
        {
            Assert.That(hf.Layout, Is.EqualTo(CheckpointLayout.HuggingFace));
            Assert.That(hf.RopeConvention, Is.EqualTo(RopeConvention.Half));
            Assert.That(l2c.Layout, Is.EqualTo(CheckpointLayout.Llama2c));
            Assert.That(l2c.RopeConvention, Is.EqualTo(RopeConvention.Interleaved));
            Assert.That(l2c.TensorNames.Order(), Is.EqualTo(hf.TensorNames.Order()));
            Assert.That(l2c.Config with { EosTokenIds = [] }, Is.EqualTo(hf.Config with { EosTokenIds = [], TorchDtype = "float32" }));
            Assert.That(l2c.Config.EosTokenIds, Is.EqualTo(hf.Config.EosTokenIds));
            Assert.That(hf.OutputWeight.Name, Is.EqualTo(LlamaTensorNames.Embedding));
        });
        foreach (string name in hf.TensorNames)
        {
            var a = hf.GetTensor(name);
            var b = l2c.GetTensor(name);
            Assert.That(b.Shape, Is.EqualTo(a.Shape), name);
            float[] stored = b.ReadFloat32();
            bool isQ = name.EndsWith("q_proj.weight", StringComparison.Ordinal), isK = name.EndsWith("k_proj.weight", StringComparison.Ordinal);
            if (isQ || isK)
            {
                // Stored as-is: the interleaved rows differ from the HF rows until permuted.
                Assert.That(stored, Is.Not.EqualTo(a.ReadFloat32()), name + " must not be permuted silently");
                using var t = tensor(stored, b.Shape.ToArray());
                using var permuted = TorchLlamaLoader.InterleavedToHalf(t, isQ ? hf.Config.NumAttentionHeads : hf.Config.KeyValueHeads);
                stored = permuted.data<float>().ToArray();
            }
            Assert.That(stored, Is.EqualTo(a.ReadFloat32()), name);
        }
    }

    [Test]
    public void UnsharedLlama2cClassifierBecomesLmHead()
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        byte[] bytes = File.ReadAllBytes(Path.Combine(folder, "stories260K.bin"));
        int vocab = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(20));
        int dim = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(20), -vocab);
        float[] wcls = Enumerable.Range(0, vocab * dim).Select(i => i * 0.001f).ToArray();
        string path = temp.File("untied.bin");
        File.WriteAllBytes(path, [.. bytes, .. SafetensorsFileTests.Bytes(wcls)]);
        using var checkpoint = ModelCheckpoint.Open(path);
        Assert.That(checkpoint.Config.TieWordEmbeddings, Is.False);
        Assert.That(checkpoint.OutputWeight.Name, Is.EqualTo(LlamaTensorNames.LmHead));
        Assert.That(checkpoint.GetTensor(LlamaTensorNames.LmHead).ReadFloat32(), Is.EqualTo(wcls));
    }

    [Test]
    public void TruncatedLlama2cFileNamesTheFirstIncompleteTensor()
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        byte[] bytes = File.ReadAllBytes(Path.Combine(folder, "stories260K.bin"));
        // Header + embedding (512*64 floats) + the 5 attention RMS vectors + 1000 bytes into wq.
        int cut = 28 + 512 * 64 * 4 + 5 * 64 * 4 + 1000;
        string path = temp.File("cut.bin");
        File.WriteAllBytes(path, bytes[..cut]);
        var e = Assert.Throws<CheckpointFormatException>(() => ModelCheckpoint.Open(path));
        Assert.That(e!.TensorName, Is.EqualTo("model.layers.0.self_attn.q_proj.weight"));
        Assert.That(e.Message, Does.Contain("truncated"));
        string extra = temp.File("extra.bin");
        File.WriteAllBytes(extra, [.. bytes, 0, 0, 0, 0]);
        Assert.That(() => ModelCheckpoint.Open(extra), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("header describes"));
    }

    [Test]
    public void MissingTensorIsNamed()
    {
        using var temp = CopyHuggingFace(out string folder, skip: "model.layers.3.mlp.up_proj.weight");
        var e = Assert.Throws<CheckpointFormatException>(() => ModelCheckpoint.Open(folder));
        Assert.That(e!.TensorName, Is.EqualTo("model.layers.3.mlp.up_proj.weight"));
        Assert.That(e.Message, Does.Contain("is missing"));
    }

    [Test]
    public void ShapeThatDisagreesWithConfigIsNamed()
    {
        using var temp = CopyHuggingFace(out string folder, configEdit: c => c.Replace("\"intermediate_size\": 172", "\"intermediate_size\": 170", StringComparison.Ordinal));
        var e = Assert.Throws<CheckpointFormatException>(() => ModelCheckpoint.Open(folder));
        Assert.That(e!.TensorName, Is.EqualTo("model.layers.0.mlp.gate_proj.weight"));
        Assert.That(e.Message, Does.Contain("shape [172, 64] but config.json implies [170, 64]"));
    }

    [Test]
    public void UntiedConfigWithoutLmHeadSaysWhatToDo()
    {
        using var temp = CopyHuggingFace(out string folder, configEdit: c => c.Replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", StringComparison.Ordinal));
        var e = Assert.Throws<CheckpointFormatException>(() => ModelCheckpoint.Open(folder));
        Assert.That(e!.TensorName, Is.EqualTo(LlamaTensorNames.LmHead));
        Assert.That(e.Message, Does.Contain("tie_word_embeddings"));
    }

    [Test]
    public void ShardedCheckpointReadsTheSameTensors()
    {
        string source = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        File.Copy(Path.Combine(source, "config.json"), temp.File("config.json"));
        var map = new Dictionary<string, string>();
        using (var whole = SafetensorsFile.Open(Path.Combine(source, "model.safetensors")))
        {
            var names = whole.TensorNames;
            for (int shard = 0; shard < 2; shard++)
            {
                string shardName = $"model-0000{shard + 1}-of-00002.safetensors";
                var part = names.Where((_, i) => i % 2 == shard).ToList();
                SafetensorsFile.Write(temp.File(shardName), part.Select(n => (n, whole.GetTensor(n).DType, whole.GetTensor(n).Shape.ToArray(), whole.GetTensor(n).ReadBytes())));
                foreach (string n in part)
                {
                    map[n] = shardName;
                }
            }
        }
        string index = System.Text.Json.JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = map });
        File.WriteAllText(temp.File("model.safetensors.index.json"), index);
        using (var sharded = ModelCheckpoint.Open(temp.Path))
        using (var single = ModelCheckpoint.Open(source))
        {
            Assert.That(sharded.TensorNames.Order(), Is.EqualTo(single.TensorNames.Order()));
            foreach (string name in single.TensorNames)
            {
                Assert.That(sharded.GetTensor(name).ReadBytes(), Is.EqualTo(single.GetTensor(name).ReadBytes()), name);
            }
        }
        map["model.norm.weight"] = map["model.norm.weight"] == "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
        File.WriteAllText(temp.File("model.safetensors.index.json"), System.Text.Json.JsonSerializer.Serialize(new { weight_map = map }));
        var e = Assert.Throws<CheckpointFormatException>(() => ModelCheckpoint.Open(temp.Path));
        Assert.That(e!.TensorName, Is.EqualTo("model.norm.weight"));
        Assert.That(e.Message, Does.Contain("does not contain it"));
    }

    [Test]
    public void ConfigReadsStories260K()
    {
        string folder = TestData.RequireModel("stories260K");
        var c = LlamaConfig.Load(Path.Combine(folder, "config.json"));
        Assert.Multiple(() =>
        {
            Assert.That(c.Architecture, Is.EqualTo("LlamaForCausalLM"));
            Assert.That((c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads), Is.EqualTo((64, 172, 5, 8, 4)));
            Assert.That((c.VocabSize, c.MaxPositionEmbeddings, c.HeadDim, c.KeyValueDim), Is.EqualTo((512, 512, 8, 32)));
            Assert.That((c.RmsNormEps, c.RopeTheta, c.TieWordEmbeddings), Is.EqualTo((1e-5, 10000.0, true)));
            Assert.That(c.BosTokenId, Is.EqualTo(1));
            Assert.That(c.EosTokenIds, Is.EqualTo(new[] { 2 }));
            Assert.That(c.TorchDtype, Is.EqualTo("float32"));
        });
    }

    [Test]
    public void ConfigDefaultsKvHeadsAndRopeThetaAndReadsMistral()
    {
        var c = LlamaConfig.Parse("""
            {"architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
             "num_attention_heads": 32, "vocab_size": 32000, "max_position_embeddings": 32768, "rms_norm_eps": 1e-5,
             "head_dim": 128, "sliding_window": 4096, "eos_token_id": [2, 31999]}
            """);
        Assert.That((c.Architecture, c.NumKeyValueHeads, c.RopeTheta, c.HeadDim, c.SlidingWindow), Is.EqualTo(("MistralForCausalLM", 32, 10000.0, 128, (int?)4096)));
        Assert.That(c.EosTokenIds, Is.EqualTo(new[] { 2, 31999 }));
    }

    [TestCase("\"architectures\": [\"GPT2LMHeadModel\"]", "architectures [GPT2LMHeadModel] name no supported architecture", "LlamaForCausalLM, MistralForCausalLM")]
    [TestCase("\"model_type\": \"gpt2\"", "model_type 'gpt2' is not supported", "LlamaForCausalLM, MistralForCausalLM")]
    [TestCase("\"architectures\": [\"LlamaForCausalLM\"], \"num_key_value_heads\": 3", "not a multiple of num_key_value_heads 3", "Grouped-query")]
    [TestCase("\"architectures\": [\"LlamaForCausalLM\"], \"rms_norm_eps\": 0", "rms_norm_eps = 0", "Fix config.json")]
    [TestCase("\"architectures\": [\"LlamaForCausalLM\"], \"bos_token_id\": 999", "bos_token_id 999 is outside", "Fix config.json")]
    [TestCase("\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": \"64\"", "\"hidden_size\" is not an integer", "Fix config.json")]
    public void BadConfigNamesTheProblemAndTheFix(string head, string problem, string remedy)
    {
        string json = "{" + head + ", \"hidden_size\": 64, \"intermediate_size\": 172, \"num_hidden_layers\": 5, \"num_attention_heads\": 8, \"vocab_size\": 512, \"max_position_embeddings\": 512}";
        // Later duplicates win in JsonDocument lookups only for the first match; drop the default when the case overrides it.
        if (head.Contains("hidden_size", StringComparison.Ordinal))
        {
            json = json.Replace(", \"hidden_size\": 64", "", StringComparison.Ordinal);
        }
        Assert.That(() => LlamaConfig.Parse(json), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains(problem).And.Message.Contains(remedy));
    }

    [Test]
    public void MissingRequiredConfigFieldIsNamed()
    {
        Assert.That(() => LlamaConfig.Parse("{\"model_type\": \"llama\", \"hidden_size\": 64}"),
            Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("lacks the required field \"num_attention_heads\""));
    }

    private static TempFolder CopyHuggingFace(out string folder, string? skip = null, Func<string, string>? configEdit = null)
    {
        string source = TestData.RequireModel("stories260K");
        var temp = new TempFolder();
        folder = temp.Path;
        string config = File.ReadAllText(Path.Combine(source, "config.json"));
        File.WriteAllText(temp.File("config.json"), configEdit is null ? config : configEdit(config));
        using var whole = SafetensorsFile.Open(Path.Combine(source, "model.safetensors"));
        SafetensorsFile.Write(temp.File("model.safetensors"), whole.TensorNames.Where(n => n != skip)
            .Select(n => (n, whole.GetTensor(n).DType, whole.GetTensor(n).Shape.ToArray(), whole.GetTensor(n).ReadBytes())));
        return temp;
    }
}
