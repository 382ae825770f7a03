using System.Text;
using System.Text.Json;
using AscendCC.Runtime.Models;
using NUnit.Framework;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// Byte-level BPE tokenizer.json files (GPT-2 / Llama 3 / Qwen style), generated here: the 256 byte
/// tokens spelled with GPT-2's byte-to-unicode alphabet, a few merges whose results are worked out
/// by hand below, and Llama 3's special tokens.
/// </summary>
public class ByteLevelTokenizerTests
{
    /// <summary>Llama 3's pre-tokenizer split, verbatim from its tokenizer.json.</summary>
    private const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen2's pre-tokenizer split, verbatim from its tokenizer.json.</summary>
    private const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>GPT-2's bytes_to_unicode, transcribed from its Python reference (not shared with the code under test).</summary>
    private static readonly Dictionary<byte, char> ByteChars = BuildByteChars();

    internal static readonly string[] RoundTripTexts =
    [
        "",
        "Hello, world!",
        "héllo wörld, café, naïve, Zoë",
        "中文 and 日本語 and 한국어",
        "emoji 😊👍🏽 and 🏳️‍🌈 flags",
        "tabs\tand\nnew lines\r\nand\n\n\nblank lines",
        "many     spaces   between    words     ",
        "   leading and trailing   ",
        "numbers 1234567 3.14159 -42",
        "it's they're I'M we'LL you'd",
        "abc abcabc the theme 12345",
        "x[CUSTOM]y",
    ];

    private static IEnumerable<TestCaseData> Styles()
    {
        yield return new TestCaseData(Style.Llama3).SetArgDisplayNames("Llama 3 style");
        yield return new TestCaseData(Style.Gpt2).SetArgDisplayNames("GPT-2 style");
        yield return new TestCaseData(Style.Gpt2PrefixSpace).SetArgDisplayNames("GPT-2 style, add_prefix_space");
    }

    public enum Style
    {
        Llama3,
        Gpt2,
        Gpt2PrefixSpace,

        /// <summary>Qwen2's layout: its own split (single digits), NFC, no ignore_merges, no BOS, ChatML tokens.</summary>
        Qwen2,
    }

    [TestCaseSource(nameof(Styles))]
    public void ArbitraryTextRoundTrips(Style style)
    {
        using var temp = new TempFolder();
        (TextTokenizer tokenizer, _) = Load(temp, style);
        var random = new Random(20240601);
        string[] pool = ["a", "b", "c", "e", "h", "t", "Z", "1", "2", "3", "4", "5", " ", " ", "  ", "\n", "\t", "\r\n", "'s", ".", "!", "é", "ß", "中", "文", "ё", "😊", "👍🏽", "\u0301", "\u00A0", "[CUSTOM]"];
        var texts = new List<string>(RoundTripTexts);
        for (int i = 0; i < 200; i++)
        {
            var sb = new StringBuilder();
            int length = random.Next(1, 24);
            for (int k = 0; k < length; k++)
            {
                // Mostly the pool; sometimes any non-surrogate BMP code point or an astral one.
                int roll = random.Next(10);
                sb.Append(roll < 8 ? pool[random.Next(pool.Length)]
                    : roll == 8 ? ((char)random.Next(0x20, 0xD800)).ToString()
                    : char.ConvertFromUtf32(random.Next(0x10000, 0x10FFFF)));
            }
            texts.Add(sb.ToString());
        }
        if (style == Style.Gpt2PrefixSpace)
        {
            // As in Hugging Face, add_prefix_space gives every segment between added tokens a space unless
            // it starts with one, and decoding drops only the first: such texts cannot come back unchanged.
            texts.RemoveAll(t => t.StartsWith(' ') || t.Contains("[CUSTOM]", StringComparison.Ordinal));
            Assert.That(texts, Has.Count.GreaterThan(100));
        }
        foreach (string text in texts)
        {
            IReadOnlyList<int> ids = tokenizer.Encode(text, addBos: false);
            Assert.That(ids, Has.All.InRange(0, tokenizer.VocabSize - 1), text);
            Assert.That(tokenizer.Decode(ids), Is.EqualTo(text), $"round trip of \"{text}\" via [{string.Join(", ", ids)}]");
        }
    }

    [Test]
    public void Llama3StyleEncodingsMatchTheMergesWorkedOutByHand()
    {
        using var temp = new TempFolder();
        (TextTokenizer tokenizer, Dictionary<string, int> vocab) = Load(temp, Style.Llama3);
        int Id(string text) => vocab[Spell(text)];
        int Byte(byte b) => vocab[ByteChars[b].ToString()];
        Assert.Multiple(() =>
        {
            // "the" | " theme": t·h·e → t he;  Ġ·t·h·e·m·e → Ġt h e m e → Ġt he m e → Ġthe m e.
            Assert.That(tokenizer.Encode("the theme", addBos: false), Is.EqualTo(new[] { Id("t"), Id("he"), Id(" the"), Id("m"), Id("e") }));
            // The split gives "a" | " " | " b", so the "Ġ Ġ" merge must not fire across the two spaces.
            Assert.That(tokenizer.Encode("a  b", addBos: false), Is.EqualTo(new[] { Id("a"), Id(" "), Id(" "), Id("b") }));
            // Digits split in threes: "123" | "45" → 12 3 | 45 (the "3 4" merge cannot cross the split).
            Assert.That(tokenizer.Encode("12345", addBos: false), Is.EqualTo(new[] { Id("12"), Id("3"), Id("45") }));
            // ignore_merges: "abc" is in the vocabulary, so it is one token although the merges give ab c.
            Assert.That(tokenizer.Encode("abc", addBos: false), Is.EqualTo(new[] { Id("abc") }));
            // 中 is E4 B8 AD: merged to one token; 文 (E6 96 87) has no merges and stays three byte tokens.
            Assert.That(tokenizer.Encode("中文", addBos: false), Is.EqualTo(new[] { Id("中"), Byte(0xE6), Byte(0x96), Byte(0x87) }));
            Assert.That(tokenizer.Encode(" in", addBos: false), Is.EqualTo(new[] { Id(" "), Id("in") }));
            Assert.That(tokenizer.Decode([Id(" the"), Id("m"), Id("e"), Id("中"), Byte(0xE6), Byte(0x96), Byte(0x87)]), Is.EqualTo(" theme中文"));
        });
    }

    [Test]
    public void Gpt2StyleUsesItsOwnSplitAndAppliesMergesWithoutIgnoreMerges()
    {
        using var temp = new TempFolder();
        (TextTokenizer tokenizer, Dictionary<string, int> vocab) = Load(temp, Style.Gpt2);
        int Id(string text) => vocab[Spell(text)];
        Assert.Multiple(() =>
        {
            // GPT-2 keeps a run of digits together: 1·2·3·4·5 → 12 3 4 5 → 12 34 5 (no "34 5" merge).
            Assert.That(tokenizer.Encode("12345", addBos: false), Is.EqualTo(new[] { Id("12"), Id("34"), Id("5") }));
            // No ignore_merges: a·b·c → ab c, and "ab c" is no merge, although "abc" is in the vocabulary.
            Assert.That(tokenizer.Encode("abc", addBos: false), Is.EqualTo(new[] { Id("ab"), Id("c") }));
            Assert.That(tokenizer.Encode("the theme", addBos: false), Is.EqualTo(new[] { Id("t"), Id("he"), Id(" the"), Id("m"), Id("e") }));
            // "it's" splits before the contraction: it | 's.
            Assert.That(tokenizer.Encode("it's", addBos: false), Is.EqualTo(new[] { Id("i"), Id("t"), Id("'"), Id("s") }));
        });
        Assert.That(tokenizer.EosId, Is.EqualTo(vocab["<|endoftext|>"]));
        Assert.That(() => tokenizer.BosId, Throws.InvalidOperationException.With.Message.Contains("addBos: false"));

        (TextTokenizer prefixed, _) = Load(temp, Style.Gpt2PrefixSpace);
        Assert.That(prefixed.Encode("the", addBos: false), Is.EqualTo(new[] { Id(" the") }), "add_prefix_space turns \"the\" into \" the\"");
        Assert.That(prefixed.Decode([Id(" the")]), Is.EqualTo("the"), "the space the encoder added is not part of the text");
    }

    [Test]
    public void AnIsolatedSplitKeepsTheTextBetweenItsMatches()
    {
        using var temp = new TempFolder();
        (Dictionary<string, object?> root, Dictionary<string, int> vocab) = Build(Style.Llama3);
        // A literal split on spaces: the words between the matches must become pieces of their own, not vanish.
        root["pre_tokenizer"] = new
        {
            type = "Sequence",
            pretokenizers = new object[] { new { type = "Split", pattern = new { String = " " }, behavior = "Isolated", invert = false }, new { type = "ByteLevel", use_regex = false } },
        };
        string path = temp.File("tokenizer.json");
        File.WriteAllText(path, JsonSerializer.Serialize(root));
        var tokenizer = TextTokenizer.Load(path);
        int Id(string text) => vocab[Spell(text)];
        // "the" | " " | "theme": without the split " theme" would merge to Ġthe m e.
        Assert.That(tokenizer.Encode("the theme", addBos: false), Is.EqualTo(new[] { Id("t"), Id("he"), Id(" "), Id("t"), Id("he"), Id("m"), Id("e") }));
        Assert.That(tokenizer.Decode(tokenizer.Encode("the  theme ")), Is.EqualTo("the  theme "));
    }

    [Test]
    public void SpecialTokensAreAddedTokensAndTheTemplateGivesBos()
    {
        using var temp = new TempFolder();
        (TextTokenizer tokenizer, Dictionary<string, int> vocab) = Load(temp, Style.Llama3);
        int Id(string text) => vocab[Spell(text)];
        int bot = vocab["<|begin_of_text|>"], eot = vocab["<|eot_id|>"], end = vocab["<|end_of_text|>"], custom = vocab["[CUSTOM]"];
        Assert.Multiple(() =>
        {
            Assert.That((tokenizer.BosId, tokenizer.EosId, tokenizer.VocabSize), Is.EqualTo((bot, end, custom + 1)));
            Assert.That(tokenizer.Encode("hi"), Is.EqualTo(new[] { bot, Id("h"), Id("i") }));
            Assert.That(tokenizer.Encode("<|begin_of_text|>hi<|eot_id|>", addBos: false), Is.EqualTo(new[] { bot, Id("h"), Id("i"), eot }));
            Assert.That(tokenizer.Encode("x[CUSTOM]y", addBos: false), Is.EqualTo(new[] { Id("x"), custom, Id("y") }));
            // Special tokens are dropped from text; a non-special added token is its content.
            Assert.That(tokenizer.Decode([bot, Id("h"), Id("i"), eot, end]), Is.EqualTo("hi"));
            Assert.That(tokenizer.Decode([Id("x"), custom, Id("y")]), Is.EqualTo("x[CUSTOM]y"));
            Assert.That(() => tokenizer.Decode([custom + 1]), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("not in the vocabulary"));
        });
    }

    [Test]
    public void MalformedByteLevelFilesAreRefusedNamingTheFileAndTheProblem()
    {
        using var temp = new TempFolder();
        string path = temp.File("tokenizer.json");

        void Expect<TException>(Action<Dictionary<string, object?>, Dictionary<string, object?>> corrupt, string problem) where TException : Exception
        {
            (Dictionary<string, object?> root, _) = Build(Style.Llama3);
            corrupt(root, (Dictionary<string, object?>)root["model"]!);
            File.WriteAllText(path, JsonSerializer.Serialize(root));
            var ex = Assert.Throws<TException>(() => TextTokenizer.Load(path), problem)!;
            Assert.That(ex.Message, Does.Contain(path).And.Contain(problem));
        }

        Expect<NotSupportedException>((_, model) => model["type"] = "WordPiece", "model type 'WordPiece'");
        Expect<CheckpointFormatException>((_, model) => model.Remove("vocab"), "\"vocab\" is missing");
        Expect<CheckpointFormatException>((_, model) => model["merges"] = ((string[])model["merges"]!).Append($"{Spell(" t")} zz").ToArray(), "refers to 'zz', which is not in model.vocab");
        Expect<CheckpointFormatException>((_, model) => model["merges"] = ((string[])model["merges"]!).Append("abc").ToArray(), "is neither \"left right\"");
        Expect<CheckpointFormatException>((_, model) => ((Dictionary<string, int>)model["vocab"]!).Remove(Spell("\n")), "no token for byte 0x0A");
        Expect<NotSupportedException>((root, _) => root["pre_tokenizer"] = new { type = "Sequence", pretokenizers = new object[] { new { type = "Split", pattern = new { Regex = @"\s+" }, behavior = "Removed" }, new { type = "ByteLevel", use_regex = false } } }, "behavior 'Removed'");
        Expect<CheckpointFormatException>((root, _) => root["post_processor"] = new { type = "TemplateProcessing", single = new object[] { new { SpecialToken = new { id = "<|nope|>", type_id = 0 } } } }, "'<|nope|>'");
    }

    private static (TextTokenizer Tokenizer, Dictionary<string, int> Vocab) Load(TempFolder temp, Style style)
    {
        (Dictionary<string, object?> root, Dictionary<string, int> ids) = Build(style);
        string path = temp.File($"tokenizer-{style}.json");
        File.WriteAllText(path, JsonSerializer.Serialize(root));
        return (TextTokenizer.Load(path), ids);
    }

    /// <summary>The tokenizer.json and every id by token (byte tokens by their spelling, added tokens by content).</summary>
    internal static (Dictionary<string, object?> Root, Dictionary<string, int> Ids) Build(Style style)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        // Single bytes first, in bytes_to_unicode order as GPT-2's vocabulary has them.
        foreach (var (_, c) in ByteChars.OrderBy(kv => kv.Value))
        {
            vocab[c.ToString()] = vocab.Count;
        }
        var merges = new List<(string Left, string Right)>();
        void Merge(byte[] left, byte[] right)
        {
            string l = Spell(left), r = Spell(right);
            merges.Add((l, r));
            vocab.TryAdd(l + r, vocab.Count);
        }
        void MergeText(string left, string right) => Merge(Encoding.UTF8.GetBytes(left), Encoding.UTF8.GetBytes(right));
        MergeText(" ", "t");
        MergeText("h", "e");
        MergeText(" t", "he");
        MergeText("i", "n");
        MergeText(" ", " ");
        MergeText("1", "2");
        MergeText("3", "4");
        MergeText("4", "5");
        MergeText("a", "b");
        MergeText("b", "c");
        MergeText("a", "bc");
        Merge([0xE4], [0xB8]);
        Merge([0xE4, 0xB8], [0xAD]);

        var ids = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        var added = new List<object>();
        void Add(string content, bool special)
        {
            ids[content] = ids.Count;
            added.Add(new { id = ids[content], content, single_word = false, lstrip = false, rstrip = false, normalized = !special, special });
        }

        var root = new Dictionary<string, object?> { ["version"] = "1.0", ["truncation"] = null, ["padding"] = null };
        var model = new Dictionary<string, object?>
        {
            ["type"] = "BPE",
            ["dropout"] = null,
            ["unk_token"] = null,
            ["continuing_subword_prefix"] = null,
            ["end_of_word_suffix"] = null,
            ["fuse_unk"] = false,
            ["byte_fallback"] = false,
            ["vocab"] = vocab,
        };
        if (style == Style.Llama3)
        {
            Add("<|begin_of_text|>", special: true);
            Add("<|end_of_text|>", special: true);
            Add("<|eot_id|>", special: true);
            Add("[CUSTOM]", special: false);
            root["normalizer"] = null;
            root["pre_tokenizer"] = new
            {
                type = "Sequence",
                pretokenizers = new object[]
                {
                    new { type = "Split", pattern = new { Regex = Llama3Pattern }, behavior = "Isolated", invert = false },
                    new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = false },
                },
            };
            root["post_processor"] = new
            {
                type = "Sequence",
                processors = new object[]
                {
                    new { type = "ByteLevel", add_prefix_space = true, trim_offsets = false, use_regex = true },
                    new { type = "TemplateProcessing", single = new object[] { new { SpecialToken = new { id = "<|begin_of_text|>", type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } } } },
                },
            };
            model["ignore_merges"] = true;
            model["merges"] = merges.Select(m => $"{m.Left} {m.Right}").ToArray();
        }
        else if (style == Style.Qwen2)
        {
            Add("<|endoftext|>", special: true);
            Add("<|im_start|>", special: true);
            Add("<|im_end|>", special: true);
            Add("[CUSTOM]", special: false);
            root["normalizer"] = new { type = "NFC" };
            root["pre_tokenizer"] = new
            {
                type = "Sequence",
                pretokenizers = new object[]
                {
                    new { type = "Split", pattern = new { Regex = Qwen2Pattern }, behavior = "Isolated", invert = false },
                    new { type = "ByteLevel", add_prefix_space = false, trim_offsets = false, use_regex = false },
                },
            };
            root["post_processor"] = new { type = "ByteLevel", add_prefix_space = false, trim_offsets = false, use_regex = false };
            model["ignore_merges"] = false;
            model["merges"] = merges.Select(m => new[] { m.Left, m.Right }).ToArray();
        }
        else
        {
            // GPT-2 keeps <|endoftext|> in the model vocabulary as well as among the added tokens.
            vocab["<|endoftext|>"] = vocab.Count;
            ids["<|endoftext|>"] = vocab["<|endoftext|>"];
            added.Add(new { id = vocab["<|endoftext|>"], content = "<|endoftext|>", special = true });
            Add("[CUSTOM]", special: false);
            root["normalizer"] = null;
            root["pre_tokenizer"] = new { type = "ByteLevel", add_prefix_space = style == Style.Gpt2PrefixSpace, trim_offsets = true };
            root["post_processor"] = new { type = "ByteLevel", add_prefix_space = true, trim_offsets = false };
            // The newer tokenizers format: merges as pairs.
            model["merges"] = merges.Select(m => new[] { m.Left, m.Right }).ToArray();
        }
        root["added_tokens"] = added;
        root["decoder"] = new { type = "ByteLevel", add_prefix_space = true, trim_offsets = true, use_regex = true };
        root["model"] = model;
        return (root, ids);
    }

    private static string Spell(string text) => Spell(Encoding.UTF8.GetBytes(text));

    private static string Spell(byte[] bytes) => string.Concat(bytes.Select(b => ByteChars[b]));

    private static Dictionary<byte, char> BuildByteChars()
    {
        // bs = [! .. ~] + [¡ .. ¬] + [® .. ÿ]; cs = bs; the remaining bytes get 256 + n in byte order.
        var bs = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        var map = bs.ToDictionary(b => (byte)b, b => (char)b);
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            if (!bs.Contains(b))
            {
                map[(byte)b] = (char)(256 + n++);
            }
        }
        return map;
    }
}
