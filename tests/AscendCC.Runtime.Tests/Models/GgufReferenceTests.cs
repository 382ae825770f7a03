using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// stories260K written to an F32 GGUF by <see cref="GgufWriter"/> (from both source layouts) and read
/// back by <see cref="ModelCheckpoint.Open"/>: llama2.c's reference logits and tokens, the tokenizer
/// read back from the GGUF metadata encoding the reference prompts.
/// </summary>
public class GgufReferenceTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (string prompt in new[] { "once_upon_a_time", "lily_had_a" })
        {
            // model.safetensors is rotate_half order and must be permuted into GGUF's Meta order on export;
            // stories260K.bin is already in Meta order. Both must reproduce llama2.c when read as interleaved.
            foreach (string source in new[] { "model.safetensors", "stories260K.bin" })
            {
                yield return new TestCaseData(prompt, source).SetArgDisplayNames(prompt, source);
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void F32GgufReproducesLlama2cLogitsAndTokens(string prompt, string source)
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs reference = ReferenceOutputs.Load(folder, prompt);
        using var temp = new TempFolder();
        string gguf = temp.File("stories260K.gguf");
        using (var original = ModelCheckpoint.Open(Path.Combine(folder, source)))
        {
            GgufWriter.WriteLlama(gguf, original, TextTokenizer.Load(folder));
        }

        using var checkpoint = ModelCheckpoint.Open(gguf);
        Assert.Multiple(() =>
        {
            Assert.That(checkpoint.Layout, Is.EqualTo(CheckpointLayout.Gguf));
            Assert.That(checkpoint.RopeConvention, Is.EqualTo(RopeConvention.Interleaved));
            Assert.That(checkpoint.Config.TieWordEmbeddings, Is.True);
            Assert.That(checkpoint.OutputWeight.Name, Is.EqualTo(LlamaTensorNames.Embedding));
        });
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { Mode = ExecutionMode.Graph, MaxContext = 128, KvCachePrecision = KvCachePrecision.F32 });
        foreach (ReferenceStep step in reference.Steps.Take(8))
        {
            int next = model.Forward([step.Token], step.Pos);
            Logits.AssertClose(model.ReadLogits(), step.Logits, $"{prompt} from {source} pos {step.Pos}");
            Assert.That(next, Is.EqualTo(step.Argmax));
        }
        int[] generated = model.Generate(reference.PromptTokens, reference.GeneratedTokens.Length).ToArray();
        Assert.That(generated, Is.EqualTo(reference.GeneratedTokens));
    }

    [Test]
    public void ConfigReadFromGgufMetadataEqualsTheCheckpoints()
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        string gguf = temp.File("m.gguf");
        using var original = ModelCheckpoint.Open(Path.Combine(folder, "stories260K.bin"));
        GgufWriter.WriteLlama(gguf, original, TextTokenizer.Load(folder));
        using var checkpoint = ModelCheckpoint.Open(gguf);
        Assert.That(checkpoint.Config with { EosTokenIds = [] }, Is.EqualTo(original.Config with { EosTokenIds = [] }));
        Assert.That(checkpoint.Config.EosTokenIds, Is.EqualTo(original.Config.EosTokenIds));
        foreach (string name in original.TensorNames)
        {
            Assert.That(checkpoint.GetTensor(name).ReadFloat32(), Is.EqualTo(original.GetTensor(name).ReadFloat32()), name);
        }
    }

    [TestCase("tokenizer.model")]
    [TestCase("tok512.bin")]
    public void TokenizerReadFromGgufEncodesTheReferencePrompts(string tokenizerFile)
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        string gguf = temp.File("m.gguf");
        var written = TextTokenizer.Load(Path.Combine(folder, tokenizerFile));
        using (var original = ModelCheckpoint.Open(Path.Combine(folder, "stories260K.bin")))
        {
            GgufWriter.WriteLlama(gguf, original, written);
        }
        var tokenizer = TextTokenizer.Load(gguf);
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.VocabSize, Is.EqualTo(512));
            Assert.That(tokenizer.BosId, Is.EqualTo(1));
            Assert.That(tokenizer.EosId, Is.EqualTo(2));
            Assert.That(tokenizer.Encode("Once upon a time"), Is.EqualTo(ReferenceOutputs.Load(folder, "once_upon_a_time").PromptTokens));
            Assert.That(tokenizer.Encode("Lily had a"), Is.EqualTo(ReferenceOutputs.Load(folder, "lily_had_a").PromptTokens));
            Assert.That(tokenizer.SpecialTokens["<s>"], Is.EqualTo(1));
        });
        // The reference story decodes to its text, and the tokenizer that wrote it agrees on unseen text.
        var reference = ReferenceOutputs.Load(folder, "once_upon_a_time");
        string expectedText = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt")).TrimEnd('\n');
        Assert.That(tokenizer.Decode(reference.PromptTokens.Concat(reference.GeneratedTokens)), Is.EqualTo(expectedText));
        foreach (string text in new[] { "The cat sat on the mat.", "Tom and Lily played in the park, then ate 3 ice-creams!", "héllo 你好" })
        {
            Assert.That(tokenizer.Encode(text), Is.EqualTo(written.Encode(text)), text);
        }
    }

    [Test]
    public void Q8_0ExportReadsBackAsItsDequantizedValues()
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        string gguf = temp.File("q8.gguf");
        using var original = ModelCheckpoint.Open(Path.Combine(folder, "stories260K.bin"));
        GgufWriter.WriteLlama(gguf, original, TextTokenizer.Load(folder), GgufTensorType.Q8_0);
        using var file = GgufFile.Open(gguf);
        Assert.Multiple(() =>
        {
            Assert.That(file.FindTensor("blk.0.attn_q.weight")!.Type, Is.EqualTo(GgufTensorType.Q8_0));
            // 172-wide rows are not whole blocks of 32: kept F32, as the writer documents.
            Assert.That(file.FindTensor("blk.0.ffn_down.weight")!.Type, Is.EqualTo(GgufTensorType.F32));
            Assert.That(file.FindTensor("blk.0.attn_norm.weight")!.Type, Is.EqualTo(GgufTensorType.F32));
        });
        using var checkpoint = ModelCheckpoint.Open(gguf);
        CheckpointTensor q = checkpoint.GetTensor(LlamaTensorNames.QProj(0));
        Assert.That(q.DType, Is.EqualTo(TensorDType.F32));
        Assert.That(q.StoredByteLength, Is.EqualTo(64 * 64 / 32 * 34));
        float[] expected = original.GetTensor(LlamaTensorNames.QProj(0)).ReadFloat32();
        float[] actual = q.ReadFloat32();
        for (int row = 0; row < 64; row++)
        {
            for (int b = 0; b < 2; b++)
            {
                float amax = 0;
                for (int j = 0; j < 32; j++)
                {
                    amax = Math.Max(amax, Math.Abs(expected[row * 64 + b * 32 + j]));
                }
                for (int j = 0; j < 32; j++)
                {
                    int i = row * 64 + b * 32 + j;
                    Assert.That(Math.Abs(actual[i] - expected[i]), Is.LessThanOrEqualTo(amax / 127 * 0.57 + 4e-6), $"element {i}");
                }
            }
        }
    }
}
