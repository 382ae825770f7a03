using System.Text.Json;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// Byte-level BPE vocabularies from GGUF metadata (tokenizer.ggml.model "gpt2"): the GGUF that
/// llama.cpp's converter would make of a tokenizer.json encodes and decodes exactly as that
/// tokenizer.json does (the generated Llama 3 and GPT-2 style files of <see cref="ByteLevelTokenizerTests"/>).
/// </summary>
public class GgufTokenizerTests
{
    /// <summary>The tokenizer.json as GGUF metadata, the way convert_hf_to_gguf.py lays it out.</summary>
    private static string ToGguf(TempFolder temp, JsonElement root, string pre, string bos, string eos, bool addBos)
    {
        var byId = new SortedDictionary<int, (string Token, GgufTokenType Type)>();
        foreach (var v in root.GetProperty("model").GetProperty("vocab").EnumerateObject())
        {
            byId[v.Value.GetInt32()] = (v.Name, GgufTokenType.Normal);
        }
        foreach (var a in root.GetProperty("added_tokens").EnumerateArray())
        {
            byId[a.GetProperty("id").GetInt32()] = (a.GetProperty("content").GetString()!, a.GetProperty("special").GetBoolean() ? GgufTokenType.Control : GgufTokenType.UserDefined);
        }
        Assert.That(byId.Keys, Is.EqualTo(Enumerable.Range(0, byId.Count)), "ids are dense");
        string[] tokens = byId.Values.Select(t => t.Token).ToArray();
        string[] merges = root.GetProperty("model").GetProperty("merges").EnumerateArray()
            .Select(m => m.ValueKind == JsonValueKind.String ? m.GetString()! : $"{m[0].GetString()} {m[1].GetString()}").ToArray();
        string path = temp.File($"{pre}.gguf");
        new GgufWriter()
            .Add("general.architecture", "llama")
            .Add("tokenizer.ggml.model", "gpt2")
            .Add("tokenizer.ggml.pre", pre)
            .Add("tokenizer.ggml.tokens", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.String, tokens)))
            .Add("tokenizer.ggml.token_type", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.Int32, byId.Values.Select(t => (int)t.Type).ToArray())))
            .Add("tokenizer.ggml.merges", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.String, merges)))
            .Add("tokenizer.ggml.bos_token_id", (uint)Array.IndexOf(tokens, bos))
            .Add("tokenizer.ggml.eos_token_id", (uint)Array.IndexOf(tokens, eos))
            .Add("tokenizer.ggml.add_bos_token", addBos)
            .Write(path);
        return path;
    }

    [TestCase(ByteLevelTokenizerTests.Style.Llama3, "llama-bpe", "<|begin_of_text|>", "<|eot_id|>", true)]
    [TestCase(ByteLevelTokenizerTests.Style.Gpt2, "gpt-2", "<|endoftext|>", "<|endoftext|>", false)]
    public void ByteLevelGgufEncodesAsItsTokenizerJson(ByteLevelTokenizerTests.Style style, string pre, string bos, string eos, bool addBos)
    {
        using var temp = new TempFolder();
        var (root, ids) = ByteLevelTokenizerTests.Build(style);
        string json = temp.File("tokenizer.json");
        File.WriteAllText(json, JsonSerializer.Serialize(root));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var expected = TextTokenizer.Load(json);
        var tokenizer = TextTokenizer.Load(ToGguf(temp, doc.RootElement, pre, bos, eos, addBos));
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.VocabSize, Is.EqualTo(expected.VocabSize));
            Assert.That(tokenizer.HasBos, Is.EqualTo(addBos));
            Assert.That(tokenizer.EosId, Is.EqualTo(ids[eos]));
            Assert.That(tokenizer.SpecialTokens, Is.EquivalentTo(expected.SpecialTokens));
        });
        if (addBos)
        {
            Assert.That(tokenizer.BosId, Is.EqualTo(ids[bos]));
        }
        foreach (string text in ByteLevelTokenizerTests.RoundTripTexts.Append($"a{bos}b{eos}"))
        {
            IReadOnlyList<int> want = expected.Encode(text, addBos: false);
            Assert.That(tokenizer.Encode(text, addBos: false), Is.EqualTo(want), text);
            Assert.That(tokenizer.Encode(text, addBos: false, parseSpecialTokens: false), Is.EqualTo(expected.Encode(text, addBos: false, parseSpecialTokens: false)), text);
            Assert.That(tokenizer.Decode(want), Is.EqualTo(expected.Decode(want)), text);
        }
        if (addBos)
        {
            Assert.That(tokenizer.Encode("the theme"), Is.EqualTo(expected.Encode("the theme")));
        }
    }

    [Test]
    public void UnknownPreTokenizersAndTokenizerModelsAreNamed()
    {
        using var temp = new TempFolder();
        var (root, _) = ByteLevelTokenizerTests.Build(ByteLevelTokenizerTests.Style.Llama3);
        using var doc = JsonDocument.Parse(JsonSerializer.Serialize(root));
        string path = ToGguf(temp, doc.RootElement, "deepseek-coder", "<|begin_of_text|>", "<|eot_id|>", true);
        var e = Assert.Throws<CheckpointFormatException>(() => TextTokenizer.Load(path));
        Assert.That(e!.Message, Does.Contain("'deepseek-coder'").And.Contain("llama-bpe"));

        string other = temp.File("bert.gguf");
        new GgufWriter().Add("tokenizer.ggml.model", "bert")
            .Add("tokenizer.ggml.tokens", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.String, new[] { "a", "b", "c" })))
            .Write(other);
        e = Assert.Throws<CheckpointFormatException>(() => TextTokenizer.Load(other));
        Assert.That(e!.Message, Does.Contain("'bert'").And.Contain("'gpt2'"));
    }
}
