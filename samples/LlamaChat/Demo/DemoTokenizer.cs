using System.Text.Json.Nodes;
using AscendCC.Runtime.Tokenizers;

namespace LlamaChat.Demo;

/// <summary>
/// The demo model's tokenizer: one token per character of the corpus plus the 256 byte-fallback
/// pieces, written as a Hugging Face tokenizer.json (BPE model with no merges) in the subset the
/// runtime's <c>TextTokenizer.Load</c> reads. Character level is the simplest honest choice: nothing
/// is learned, so nothing can be tuned to the evaluation, and any text still encodes through the byte pieces.
/// </summary>
public static class DemoTokenizer
{
    /// <summary>Unknown-token id.</summary>
    public const int Unk = 0;

    /// <summary>Beginning-of-sequence id.</summary>
    public const int Bos = 1;

    /// <summary>End-of-sequence id.</summary>
    public const int Eos = 2;

    /// <summary>SentencePiece's space symbol, which the Llama tokenizer family uses for ' '.</summary>
    public const string SpaceSymbol = "\u2581";

    /// <summary>Builds the tokenizer.json text for the characters of <paramref name="corpus"/>; returns it and its vocabulary size.</summary>
    public static (string Json, int VocabSize) Build(IEnumerable<string> corpus)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        var chars = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string doc in corpus)
        {
            foreach (System.Text.Rune rune in doc.EnumerateRunes())
            {
                chars.Add(rune.Value == ' ' ? SpaceSymbol : rune.ToString());
            }
        }
        var vocab = new JsonObject { ["<unk>"] = Unk, ["<s>"] = Bos, ["</s>"] = Eos };
        int id = 3;
        for (int b = 0; b < 256; b++)
        {
            vocab[$"<0x{b:X2}>"] = id++;
        }
        foreach (string c in chars)
        {
            vocab[c] = id++;
        }
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(
                Special(Unk, "<unk>"),
                Special(Bos, "<s>"),
                Special(Eos, "</s>")),
            // Spaces become "▁" like every Llama tokenizer, but with no dummy prefix: the demo text is
            // encoded exactly as typed, which keeps the chat format's "\nA:" unambiguous.
            ["normalizer"] = new JsonObject
            {
                ["type"] = "Replace",
                ["pattern"] = new JsonObject { ["String"] = " " },
                ["content"] = SpaceSymbol,
            },
            ["pre_tokenizer"] = null,
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["unk_token"] = "<unk>",
                ["byte_fallback"] = true,
                ["fuse_unk"] = true,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(),
            },
        };
        return (root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }), id);
    }

    private static JsonObject Special(int id, string content) => new()
    {
        ["id"] = id,
        ["content"] = content,
        ["special"] = true,
    };
}
