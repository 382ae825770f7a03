using System.Text;
using System.Text.Json;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using LLama;
using LLama.Native;
using NUnit.Framework;
using Style = AscendCC.Runtime.Tests.Models.ByteLevelTokenizerTests.Style;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// A model with a byte-level BPE tokenizer.json (GPT-2, Llama 3 or Qwen2 style) written as GGUF by
/// <see cref="GgufWriter.WriteLlama"/>: llama.cpp loads the file and tokenizes every text as the
/// tokenizer.json does, our own GGUF reader too, and the device and llama.cpp agree on its logits. Splits
/// llama.cpp has no name for, and tokenizers it would read differently, are refused before a byte is written.
/// </summary>
[NonParallelizable]
public class GgufByteLevelExportTests
{
    private static IEnumerable<string> Texts(IReadOnlyDictionary<string, int> specials) =>
        ByteLevelTokenizerTests.RoundTripTexts
            .Concat(["the theme 12345 abcabc", "Don't STOP—it's 2024!", "line\n\n  indented\r\n\ttab"])
            .Concat(specials.Keys.Select(s => $"x{s}y {s}  z"));

    /// <summary>A folder of seeded Gaussian weights for <paramref name="config"/> with <paramref name="tokenizerJson"/>.</summary>
    private static string WriteFolder(string folder, LlamaConfig config, Dictionary<string, object?> tokenizerJson)
    {
        var rng = new Random(5);
        Directory.CreateDirectory(folder);
        var tensors = config.ExpectedTensors().Select(e =>
        {
            int count = (int)e.Shape.Aggregate(1L, (x, y) => x * y);
            bool bias = e.Name.EndsWith(".bias", StringComparison.Ordinal), norm = e.Shape.Length == 1 && !bias;
            float[] values = [.. Enumerable.Range(0, count).Select(_ => norm ? 1f : (float)(RandomLlamaCheckpoint.Gaussian(rng) * (bias ? 0.3 : 1 / Math.Sqrt(e.Shape[^1]))))];
            return (e.Name, TensorDType.F32, e.Shape, TensorData.FromFloat32(e.Name, e.Shape, values).Bytes.ToArray());
        });
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), tensors.OrderBy(t => t.Name, StringComparer.Ordinal));
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJson());
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), JsonSerializer.Serialize(tokenizerJson));
        return folder;
    }

    private static LlamaConfig ConfigFor(Style style, int vocabSize, bool qwen3) => qwen3
        ? RandomLlamaCheckpoint.Config with { Architecture = LlamaConfig.Qwen3Architecture, ModelType = "qwen3", QkNorm = true, ExplicitHeadDim = 128, VocabSize = vocabSize }
        : style == Style.Qwen2
        ? RandomLlamaCheckpoint.Config with { Architecture = LlamaConfig.Qwen2Architecture, ModelType = "qwen2", QkvBias = true, VocabSize = vocabSize }
        : RandomLlamaCheckpoint.Config with { VocabSize = vocabSize };

    /// <remarks>The last case is a Qwen3 (GGUF architecture qwen3, head_dim 128 as Qwen3's) with Qwen's tokenizer, as its GGUF downloads come.</remarks>
    [TestCase(Style.Llama3, "llama-bpe", 0, false)]
    [TestCase(Style.Qwen2, "qwen2", 17, false)]
    [TestCase(Style.Gpt2, "gpt-2", 0, false)]
    [TestCase(Style.Qwen2, "qwen2", 17, true)]
    public void AByteLevelModelsGgufTokenizesAndRunsInLlamaCppAsItsFolderDoes(Style style, string pre, int padding, bool qwen3)
    {
        using var temp = new TempFolder();
        var (root, ids) = ByteLevelTokenizerTests.Build(style);
        int tokens = ids.Values.Max() + 1;
        string folder = WriteFolder(temp.File("model"), ConfigFor(style, tokens + padding, qwen3), root);
        string gguf = temp.File("model.gguf");
        TextTokenizer expected = TextTokenizer.Load(folder);
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            GgufWriter.WriteLlama(gguf, checkpoint, expected);
        }

        using (var file = GgufFile.Open(gguf))
        {
            var m = file.Metadata;
            Assert.Multiple(() =>
            {
                Assert.That(m.GetString("general.architecture"), Is.EqualTo(qwen3 ? "qwen3" : style == Style.Qwen2 ? "qwen2" : "llama"));
                Assert.That(m.GetString("tokenizer.ggml.model"), Is.EqualTo("gpt2"));
                Assert.That(m.GetString("tokenizer.ggml.pre"), Is.EqualTo(pre));
                Assert.That(m.GetArray("tokenizer.ggml.merges")!.Count, Is.EqualTo(JsonDocument.Parse(JsonSerializer.Serialize(root)).RootElement.GetProperty("model").GetProperty("merges").GetArrayLength()));
                Assert.That(m.Contains("tokenizer.ggml.scores"), Is.False, "a byte-level vocabulary has no scores");
                Assert.That(m.Find("tokenizer.ggml.add_bos_token")!.Value, Is.EqualTo(expected.HasBos));
            });
            var vocabulary = GgufVocabulary.Read(file);
            Assert.That(vocabulary.Tokens, Has.Count.EqualTo(tokens + padding));
            Assert.That(Enumerable.Range(tokens, padding).Select(vocabulary.TypeOf), Has.All.EqualTo(GgufTokenType.Unused), "rows past the tokenizer");
            Assert.That(vocabulary.TypeOf(ids["[CUSTOM]"]), Is.EqualTo(GgufTokenType.UserDefined));
        }

        // Our own reader of the file, and llama.cpp's, encode as the tokenizer.json does.
        TextTokenizer ours = TextTokenizer.Load(gguf);
        Assert.That((ours.HasBos, ours.EosId), Is.EqualTo((expected.HasBos, expected.EosId)));
        NativeApi.llama_empty_call();
        var parameters = new LLama.Common.ModelParams(gguf) { ContextSize = 128, BatchSize = 128, GpuLayerCount = 0, Threads = 2 };
        using (var weights = LLamaWeights.LoadFromFile(parameters))
        {
            foreach (string text in Texts(expected.SpecialTokens))
            {
                int[] want = [.. expected.Encode(text, addBos: false)];
                Assert.That(ours.Encode(text, addBos: false), Is.EqualTo(want), $"our reader of the GGUF: \"{text}\"");
                Assert.That(ours.Encode(text, addBos: false, parseSpecialTokens: false), Is.EqualTo(expected.Encode(text, addBos: false, parseSpecialTokens: false)), $"\"{text}\" without special tokens");
                Assert.That(weights.Tokenize(text, false, true, Encoding.UTF8).Select(t => (int)t), Is.EqualTo(want), $"llama.cpp: \"{text}\"");
                Assert.That(ours.Decode(want), Is.EqualTo(expected.Decode(want)), text);
            }
            string prompt = "the theme";
            Assert.That(weights.Tokenize(prompt, true, true, Encoding.UTF8).Select(t => (int)t), Is.EqualTo(expected.Encode(prompt, addBos: expected.HasBos)), "llama.cpp adds BOS exactly when the tokenizer.json's template does");
        }

        int[] ids24 = [.. expected.Encode("the theme 12345 abcabc in the 中 text, the end", addBos: expected.HasBos)];
        float[] fromFolder = GgufReadBack.DeviceLastLogits(folder, ids24, WeightPrecision.F32);
        float[] fromFile = GgufReadBack.DeviceLastLogits(gguf, ids24, WeightPrecision.F32);
        float[] theirs = LlamaCppGreedy.LastLogits(gguf, ids24);
        static double Distance(float[] a, float[] b) => a.Zip(b).Max(p => Math.Abs(p.First - p.Second));
        double spread = fromFile.Max() - fromFile.Min(), distance = Distance(fromFile, theirs);
        TestContext.Out.WriteLine($"{style}{(qwen3 ? " (qwen3)" : "")}: {ids24.Length} prompt tokens; device against llama.cpp {distance:g4} where the logits spread over {spread:g4}");
        Assert.That(Distance(fromFile, fromFolder), Is.LessThan(1e-3), "the GGUF's logits are the folder's");
        Assert.That(distance, Is.LessThan(0.01), "llama.cpp's logits on the file");
        Assert.That(Array.IndexOf(theirs, theirs.Max()), Is.EqualTo(Array.IndexOf(fromFile, fromFile.Max())), "the next token");
    }

    [Test]
    public void ATokenizerLlamaCppWouldReadDifferentlyIsRefusedBeforeAnythingIsWritten()
    {
        using var temp = new TempFolder();
        void Refused(string name, Dictionary<string, object?> root, int vocab, params string[] named)
        {
            string folder = WriteFolder(temp.File(name), ConfigFor(Style.Llama3, vocab, qwen3: false), root);
            string gguf = temp.File($"{name}.gguf");
            using var checkpoint = ModelCheckpoint.Open(folder);
            var e = Assert.Throws<NotSupportedException>(() => GgufWriter.WriteLlama(gguf, checkpoint, TextTokenizer.Load(folder)), name);
            foreach (string n in named)
            {
                Assert.That(e!.Message, Does.Contain(n), name);
            }
            Assert.That(File.Exists(gguf), Is.False, $"{name}: nothing written");
        }

        var (prefixed, ids) = ByteLevelTokenizerTests.Build(Style.Gpt2PrefixSpace);
        Refused("prefix-space", prefixed, ids.Values.Max() + 1, "add_prefix_space");

        // Llama 3's split without ignore_merges is no pre-tokenizer llama.cpp names: "llama-bpe" would take pieces whole.
        var (llama3, ids3) = ByteLevelTokenizerTests.Build(Style.Llama3);
        ((Dictionary<string, object?>)llama3["model"]!)["ignore_merges"] = false;
        Refused("no-ignore-merges", llama3, ids3.Values.Max() + 1, "'llama-bpe'", "ignore_merges");

        var (digits, idsD) = ByteLevelTokenizerTests.Build(Style.Llama3);
        string pattern = @"\p{N}{1,2}|\p{L}+|\s+|[^\s\p{L}\p{N}]+";
        digits["pre_tokenizer"] = new
        {
            type = "Sequence",
            pretokenizers = new object[]
            {
                new { type = "Split", pattern = new { Regex = pattern }, behavior = "Isolated", invert = false },
                new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = false },
            },
        };
        Refused("other-split", digits, idsD.Values.Max() + 1, pattern, "convert_hf_to_gguf.py");
    }

    [Test]
    public void AGgufsByteLevelTokenizerIsWrittenBackAsItWasRead()
    {
        using var temp = new TempFolder();
        var (root, ids) = ByteLevelTokenizerTests.Build(Style.Qwen2);
        string folder = WriteFolder(temp.File("model"), ConfigFor(Style.Qwen2, ids.Values.Max() + 1, qwen3: false), root);
        string first = temp.File("first.gguf"), second = temp.File("second.gguf");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            GgufWriter.WriteLlama(first, checkpoint, TextTokenizer.Load(folder));
        }
        using (var checkpoint = ModelCheckpoint.Open(first))
        {
            GgufWriter.WriteLlama(second, checkpoint, TextTokenizer.Load(first));
        }
        using var a = GgufFile.Open(first);
        using var b = GgufFile.Open(second);
        GgufVocabulary va = GgufVocabulary.Read(a), vb = GgufVocabulary.Read(b);
        Assert.Multiple(() =>
        {
            Assert.That(vb.Tokens, Is.EqualTo(va.Tokens));
            Assert.That(Enumerable.Range(0, vb.Tokens.Count).Select(vb.TypeOf), Is.EqualTo(Enumerable.Range(0, va.Tokens.Count).Select(va.TypeOf)));
            Assert.That(vb.Merges, Is.EqualTo(va.Merges));
            Assert.That((vb.PreTokenizer, vb.BosId, vb.EosId, vb.AddBos), Is.EqualTo((va.PreTokenizer, va.BosId, va.EosId, va.AddBos)));
        });
    }
}
