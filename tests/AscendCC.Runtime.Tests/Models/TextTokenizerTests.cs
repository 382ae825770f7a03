using System.Text;
using System.Text.Json;
using AscendCC.Runtime.Models;
using AscendCC.Tests;
using NUnit.Framework;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Runtime.Tests.Models;

public class TextTokenizerTests
{
    private const string NonAscii = "café 😊 日本";

    private static IEnumerable<TestCaseData> Stories260KFiles()
    {
        yield return new TestCaseData("tokenizer.model").SetArgDisplayNames("SentencePiece");
        yield return new TestCaseData("tok512.bin").SetArgDisplayNames("llama2.c");
        yield return new TestCaseData("generated tokenizer.json").SetArgDisplayNames("HF tokenizer.json");
    }

    [TestCaseSource(nameof(Stories260KFiles))]
    public void Stories260KEncodesTheReadmePromptsAndDecodesTheReferenceText(string file)
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        var tokenizer = LoadStories(folder, file, temp);
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.Encode("Once upon a time"), Is.EqualTo(new[] { 1, 403, 407, 261, 378 }));
            Assert.That(tokenizer.Encode("Lily had a"), Is.EqualTo(new[] { 1, 317, 381, 261 }));
            Assert.That(tokenizer.Encode("Lily had a", addBos: false), Is.EqualTo(new[] { 317, 381, 261 }));
            Assert.That((tokenizer.BosId, tokenizer.EosId, tokenizer.VocabSize), Is.EqualTo((1, 2, 512)));
        });
        foreach (string name in new[] { "once_upon_a_time", "lily_had_a" })
        {
            var reference = ReferenceOutputs.Load(folder, name);
            string text = File.ReadAllText(Path.Combine(folder, "reference", name + ".text.txt"));
            Assert.That(tokenizer.Decode([.. reference.PromptTokens, .. reference.GeneratedTokens]), Is.EqualTo(text), name);
        }
    }

    [TestCaseSource(nameof(Stories260KFiles))]
    public void Stories260KRoundTripsNonAsciiThroughByteFallback(string file)
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        var tokenizer = LoadStories(folder, file, temp);
        var ids = tokenizer.Encode(NonAscii);
        // 😊 is F0 9F 98 8A; the 512-piece vocabulary has no emoji, so those bytes must appear as <0xNN> ids (byte + 3).
        Assert.That(ids, Is.SupersetOf(new[] { 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x8A + 3 }));
        Assert.That(tokenizer.Decode(ids), Is.EqualTo(NonAscii));
        string story = "Once upon a time, a girl named Zoë found a ☂ in the park.\nShe said \"Hi!\"";
        Assert.That(tokenizer.Decode(tokenizer.Encode(story)), Is.EqualTo(story));
    }

    [TestCaseSource(nameof(Stories260KFiles))]
    public void StreamDecodingTokenByTokenReadsAsDecodingTheWhole(string file)
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        var tokenizer = LoadStories(folder, file, temp);
        // Leading spaces on every word, a newline, and characters spread over 2-4 byte-fallback tokens.
        string story = "Once upon a time, Zoë saw a ☂ and 😊.\nShe said \"Hi!\" " + NonAscii;
        IReadOnlyList<int> ids = tokenizer.Encode(story);
        Assume.That(string.Concat(ids.Select(id => tokenizer.Decode([id]))), Is.Not.EqualTo(story), "decoding token by token on its own loses spaces and characters");

        var whole = new TextStreamDecoder(tokenizer);
        var printed = new StringBuilder();
        foreach (int id in ids)
        {
            string piece = whole.Push(id);
            Assert.That(piece, Does.Not.Contain("\uFFFD"), "a partial character is held back, not printed");
            printed.Append(piece);
        }
        printed.Append(whole.Flush());
        Assert.That(printed.ToString(), Is.EqualTo(story));

        // After a context (the prompt) only the new text comes out, its first space kept.
        int split = tokenizer.Encode("Once upon a time").Count;
        var continuation = new TextStreamDecoder(tokenizer, ids.Take(split));
        Assert.That(continuation.Push(ids.Skip(split)) + continuation.Flush(), Is.EqualTo(story["Once upon a time".Length..]));
    }

    [Test]
    public void StreamDecodingFlushesAnUnfinishedCharacter()
    {
        string folder = TestData.RequireModel("stories260K");
        var tokenizer = TextTokenizer.Load(Path.Combine(folder, "tok512.bin"));
        var decoder = new TextStreamDecoder(tokenizer);
        // 😊 is F0 9F 98 8A: stop after its first two bytes (byte-fallback id = byte + 3).
        Assert.That(decoder.Push([.. tokenizer.Encode("Hi"), 0xF0 + 3, 0x9F + 3]), Is.EqualTo("Hi"));
        Assert.That(decoder.Flush(), Is.EqualTo("\uFFFD"));
        Assert.That(decoder.Flush(), Is.Empty);
    }

    [Test]
    public void AllThreeStories260KTokenizersAgreeOnLongText()
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        string text = string.Concat(Directory.GetFiles(Path.Combine(folder, "reference"), "*.text.txt").Order().Select(File.ReadAllText)) + " " + NonAscii + " 123 (x) -- naïve";
        var expected = LoadStories(folder, "tokenizer.model", temp).Encode(text);
        Assert.That(LoadStories(folder, "tok512.bin", temp).Encode(text), Is.EqualTo(expected));
        Assert.That(LoadStories(folder, "generated tokenizer.json", temp).Encode(text), Is.EqualTo(expected));
    }

    [Test]
    public void Llama2TokenizerEncodesTheReadmePromptsAndRoundTrips()
    {
        string folder = TestData.RequireModel("llama2-tokenizer");
        var tokenizer = TextTokenizer.Load(folder);
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.VocabSize, Is.EqualTo(32000));
            Assert.That(tokenizer.Encode("Once upon a time"), Is.EqualTo(new[] { 1, 9038, 2501, 263, 931 }));
            Assert.That(tokenizer.Encode("Lily had a"), Is.EqualTo(new[] { 1, 365, 2354, 750, 263 }));
            Assert.That(tokenizer.Decode(tokenizer.Encode(NonAscii)), Is.EqualTo(NonAscii));
            Assert.That(tokenizer.Decode(tokenizer.Encode("Ünïcödé: Привет, мир! 🎉🚀")), Is.EqualTo("Ünïcödé: Привет, мир! 🎉🚀"));
        });
    }

    [Test]
    public void HandWrittenTokenizerJsonAppliesMergesByteFallbackMetaspaceAndAddedTokens()
    {
        using var temp = new TempFolder();
        var vocab = new Dictionary<string, int> { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        for (int b = 0; b < 256; b++)
        {
            vocab[$"<0x{b:X2}>"] = 3 + b;
        }
        foreach (string piece in new[] { "▁", "a", "b", "c", "é", "▁a", "ab", "▁ab", "▁c" })
        {
            vocab[piece] = vocab.Count;
        }
        var json = new
        {
            version = "1.0",
            added_tokens = new object[]
            {
                new { id = 0, content = "<unk>", special = true },
                new { id = 1, content = "<s>", special = true },
                new { id = 2, content = "</s>", special = true },
            },
            normalizer = (object?)null,
            pre_tokenizer = new { type = "Metaspace", replacement = "▁", prepend_scheme = "first", split = true },
            model = new { type = "BPE", byte_fallback = true, fuse_unk = true, unk_token = "<unk>", vocab, merges = new[] { "a b", "▁ a", "▁a b", "▁ ab", "▁ c" } },
        };
        string path = temp.File("tokenizer.json");
        File.WriteAllText(path, JsonSerializer.Serialize(json));
        var tokenizer = TextTokenizer.Load(path);
        int Id(string piece) => vocab[piece];
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.Encode("ab ab c"), Is.EqualTo(new[] { 1, Id("▁ab"), Id("▁ab"), Id("▁c") }));
            Assert.That(tokenizer.Encode("abé</s>", addBos: false), Is.EqualTo(new[] { Id("▁ab"), Id("é"), 2 }));
            // ü (C3 BC) and 日 (E6 97 A5) are not in the vocabulary: byte pieces.
            Assert.That(tokenizer.Encode("aü日", addBos: false), Is.EqualTo(new[] { Id("▁a"), 3 + 0xC3, 3 + 0xBC, 3 + 0xE6, 3 + 0x97, 3 + 0xA5 }));
            Assert.That(tokenizer.Decode(tokenizer.Encode("cab ü 😊 日本 é")), Is.EqualTo("cab ü 😊 日本 é"));
            Assert.That(tokenizer.Decode([1, Id("▁ab"), 3 + 0xC3, 3 + 0xA9, 2]), Is.EqualTo("abé"));
        });
    }

    [Test]
    public void UnsupportedTokenizerJsonSaysWhy()
    {
        using var temp = new TempFolder();
        string path = temp.File("tokenizer.json");
        File.WriteAllText(path, """{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+"}}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""");
        Assert.That(() => TextTokenizer.Load(path), Throws.TypeOf<NotSupportedException>().With.Message.Contains("pre_tokenizer 'Split' without a ByteLevel step"));
        File.WriteAllText(path, """{"model": {"type": "Unigram", "vocab": []}}""");
        Assert.That(() => TextTokenizer.Load(path), Throws.TypeOf<NotSupportedException>().With.Message.Contains("model type 'Unigram'"));
        File.WriteAllText(path, """{"model": {"type": "BPE", "merges": []}}""");
        Assert.That(() => TextTokenizer.Load(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("\"vocab\""));
        File.WriteAllText(path, "{not json");
        Assert.That(() => TextTokenizer.Load(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("not valid JSON"));
    }

    [Test]
    public void CorruptLlama2cTokenizerIsRefused()
    {
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        byte[] bytes = File.ReadAllBytes(Path.Combine(folder, "tok512.bin"));
        string path = temp.File("tok512.bin");
        File.WriteAllBytes(path, bytes[..(bytes.Length - 3)]);
        Assert.That(() => TextTokenizer.Load(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("token 511"));
    }

    private static TextTokenizer LoadStories(string folder, string file, TempFolder temp)
    {
        if (file != "generated tokenizer.json")
        {
            return TextTokenizer.Load(Path.Combine(folder, file));
        }
        string path = temp.File("tokenizer.json");
        if (!File.Exists(path))
        {
            File.WriteAllText(path, TokenizerJsonFromLlama2c(Path.Combine(folder, "tok512.bin")));
        }
        return TextTokenizer.Load(path);
    }

    /// <summary>
    /// Converts llama2.c's tok512.bin (SentencePiece pieces and scores) to a Llama 2 style
    /// tokenizer.json the way Hugging Face's LlamaConverter does: a merge for every split of a piece
    /// into two pieces, ranked by the merged piece's score.
    /// </summary>
    private static string TokenizerJsonFromLlama2c(string path)
    {
        var pieces = new List<(string Piece, float Score)>();
        using (var reader = new BinaryReader(File.OpenRead(path)))
        {
            reader.ReadInt32();
            while (reader.BaseStream.Position < reader.BaseStream.Length)
            {
                float score = reader.ReadSingle();
                int len = reader.ReadInt32();
                pieces.Add((Encoding.UTF8.GetString(reader.ReadBytes(len)).Replace(' ', '▁'), score));
            }
        }
        pieces[0] = ("<unk>", 0);
        pieces[1] = ("<s>", 0);
        pieces[2] = ("</s>", 0);
        var vocab = new Dictionary<string, int>();
        for (int i = 0; i < pieces.Count; i++)
        {
            vocab[pieces[i].Piece] = i;
        }
        var merges = new List<(int Rank, int Left, int Right, string Merge)>();
        for (int id = 3 + 256; id < pieces.Count; id++)
        {
            string p = pieces[id].Piece;
            for (int k = 1; k < p.Length; k++)
            {
                if (vocab.TryGetValue(p[..k], out int l) && vocab.TryGetValue(p[k..], out int r))
                {
                    merges.Add((id, l, r, p[..k] + " " + p[k..]));
                }
            }
        }
        var json = new
        {
            version = "1.0",
            added_tokens = new object[]
            {
                new { id = 0, content = "<unk>", special = true },
                new { id = 1, content = "<s>", special = true },
                new { id = 2, content = "</s>", special = true },
            },
            normalizer = new { type = "Sequence", normalizers = new object[] { new { type = "Prepend", prepend = "▁" }, new { type = "Replace", pattern = new { String = " " }, content = "▁" } } },
            pre_tokenizer = (object?)null,
            post_processor = new { type = "TemplateProcessing", single = new object[] { new { SpecialToken = new { id = "<s>", type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } } } },
            model = new
            {
                type = "BPE",
                byte_fallback = true,
                fuse_unk = true,
                unk_token = "<unk>",
                vocab,
                merges = merges.OrderBy(m => m.Rank).ThenBy(m => m.Left).ThenBy(m => m.Right).Select(m => m.Merge).ToArray(),
            },
        };
        return JsonSerializer.Serialize(json);
    }
}
