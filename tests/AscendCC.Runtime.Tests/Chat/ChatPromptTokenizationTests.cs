using System.Text.Json;
using AscendCC.Runtime.Chat;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Chat;

/// <summary>
/// A rendered chat prompt's special tokens become their single ids (not their characters), and the
/// BOS the template writes is not doubled: with the real Llama 2 tokenizer and a small generated
/// tokenizer.json with Llama 3's special tokens.
/// </summary>
public class ChatPromptTokenizationTests
{
    private const int BeginOfText = 256, EotId = 257, StartHeader = 258, EndHeader = 259, NotSpecial = 260;

    private static ChatTemplate Load(string model) =>
        ChatTemplate.Load(Path.Combine(TestContext.CurrentContext.TestDirectory, "Chat", "ChatTemplates", model + ".json"));

    [Test]
    public void Llama2PromptEncodesSpecialTokensAsTheirIdsWithOneBos()
    {
        string folder = Path.Combine(TestData.ModelsRoot, "llama2-tokenizer");
        if (!File.Exists(Path.Combine(folder, "tokenizer.model")))
        {
            Assert.Ignore($"The real Llama 2 tokenizer is not at {folder} (see ../shared/models/README.md); skipped.");
        }
        TextTokenizer tokenizer = TextTokenizer.Load(folder);
        ChatTemplate template = Load("Llama-2-7b-chat-hf");
        ChatTurn[] chat = [ChatTurn.User("Hello"), ChatTurn.Assistant("Hi"), ChatTurn.User("Bye")];
        IReadOnlyList<int> ids = template.Encode(tokenizer, chat);

        // "<s>[INST] Hello [/INST] Hi </s><s>[INST] Bye [/INST]": "[INST]" is ▁[ INST ] = 518 25580 29962, as transformers encodes it.
        IReadOnlyList<int> hello = tokenizer.Encode("Hello", addBos: false);
        Assert.That(ids.Take(4), Is.EqualTo(new[] { 1, 518, 25580, 29962 }), "one BOS, the template's own");
        Assert.That(ids.Count(id => id == tokenizer.BosId), Is.EqualTo(2), "the two <s> the template writes, nothing more");
        Assert.That(ids.Count(id => id == tokenizer.EosId), Is.EqualTo(1));
        int eos = ids.ToList().IndexOf(tokenizer.EosId);
        Assert.That(ids[eos + 1], Is.EqualTo(tokenizer.BosId), "</s><s> between turns");
        Assert.That(ids.Skip(4).Take(hello.Count), Is.EqualTo(hello));
        Assert.That(template.EndOfTurnTokenIds(tokenizer), Is.EqualTo(new[] { 2 }));

        // The same text without special-token parsing spells "<s>" in characters: no control ids at all.
        IReadOnlyList<int> literal = tokenizer.Encode(template.Render(chat, true), addBos: false, parseSpecialTokens: false);
        Assert.That(literal, Does.Not.Contain(1).And.Not.Contain(2));
        Assert.That(tokenizer.Encode("Once upon a time", addBos: true, parseSpecialTokens: true), Is.EqualTo(new[] { 1, 9038, 2501, 263, 931 }), "plain text is unchanged");
    }

    [Test]
    public void ByteLevelTokenizerJsonEncodesAddedSpecialTokensAsTheirIds()
    {
        string folder = Directory.CreateTempSubdirectory("special-tokens-").FullName;
        try
        {
            string file = Path.Combine(folder, "tokenizer.json");
            File.WriteAllText(file, GeneratedTokenizerJson());
            TextTokenizer tokenizer = TextTokenizer.Load(file);
            Assert.That(tokenizer.SpecialTokens, Is.EquivalentTo(new Dictionary<string, int>
            {
                ["<|begin_of_text|>"] = BeginOfText, ["<|eot_id|>"] = EotId, ["<|start_header_id|>"] = StartHeader, ["<|end_header_id|>"] = EndHeader,
            }));
            ChatTemplate template = Load("Meta-Llama-3-8B-Instruct");
            IReadOnlyList<int> ids = template.Encode(tokenizer, [ChatTurn.System("S"), ChatTurn.User("Hi")]);
            int[] expected =
            [
                BeginOfText, StartHeader, .. "system"u8.ToArray().Select(b => (int)b), EndHeader, '\n', '\n', 'S', EotId,
                StartHeader, .. "user"u8.ToArray().Select(b => (int)b), EndHeader, '\n', '\n', 'H', 'i', EotId,
                StartHeader, .. "assistant"u8.ToArray().Select(b => (int)b), EndHeader, '\n', '\n',
            ];
            Assert.That(ids, Is.EqualTo(expected), "one <|begin_of_text|> (the template's), every special token one id");
            Assert.That(template.EndOfTurnTokenIds(tokenizer), Is.EqualTo(new[] { EotId }));

            // split_special_tokens=True: special tokens as bytes; a non-special added token is still its id.
            IReadOnlyList<int> literal = tokenizer.Encode("<|eot_id|><tool>", addBos: false, parseSpecialTokens: false);
            Assert.That(literal, Is.EqualTo("<|eot_id|>"u8.ToArray().Select(b => (int)b).Append(NotSpecial)));
            // A template without BOS of its own (ChatML) gets the tokenizer's.
            Assert.That(Load("OpenHermes-2.5-Mistral-7B").Encode(tokenizer, [ChatTurn.User("x")])[0], Is.EqualTo(BeginOfText));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>A byte-level BPE tokenizer.json: the 256 byte symbols as ids 0–255, no merges, Llama 3's special tokens from 256.</summary>
    private static string GeneratedTokenizerJson()
    {
        var vocab = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++)
        {
            vocab[ByteLevelBpeTokenizer.ByteToChar[b].ToString()] = b;
        }
        object Added(int id, string content, bool special) => new { id, content, special, single_word = false, lstrip = false, rstrip = false, normalized = false };
        var root = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = new[]
            {
                Added(BeginOfText, "<|begin_of_text|>", true), Added(EotId, "<|eot_id|>", true), Added(StartHeader, "<|start_header_id|>", true),
                Added(EndHeader, "<|end_header_id|>", true), Added(NotSpecial, "<tool>", false),
            },
            ["normalizer"] = null,
            ["pre_tokenizer"] = new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = true },
            ["post_processor"] = new { type = "TemplateProcessing", single = new object[] { new { SpecialToken = new { id = "<|begin_of_text|>", type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } } } },
            ["decoder"] = new { type = "ByteLevel" },
            ["model"] = new { type = "BPE", vocab, merges = Array.Empty<string>(), ignore_merges = true },
        };
        return JsonSerializer.Serialize(root);
    }
}
