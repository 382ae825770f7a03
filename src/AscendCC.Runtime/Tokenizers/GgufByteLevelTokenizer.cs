using System.Text.Json;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Tokenizers;

/// <summary>
/// A byte-level BPE vocabulary from GGUF metadata (<c>tokenizer.ggml.model</c> "gpt2"): the same
/// tokenizer a Hugging Face tokenizer.json describes, so it is read by <see cref="ByteLevelBpeTokenizer"/>
/// from the tokenizer.json the metadata stands for, with GGUF's own BOS/EOS ids and add-BOS flag.
/// </summary>
/// <remarks>
/// llama.cpp names the pre-tokenizer (<c>tokenizer.ggml.pre</c>) instead of storing its regex; the
/// names read here map to the splits of the tokenizer.json files they came from. Control tokens become
/// special added tokens, user-defined ones added tokens, as llama.cpp's converter made them.
/// </remarks>
internal sealed class GgufByteLevelTokenizer : TextTokenizer
{
    /// <summary>The tokenizer.ggml.pre names read.</summary>
    public static IReadOnlyList<string> SupportedPreTokenizers { get; } = [.. ByteLevelBpeTokenizer.GgufPreTokenizers.Select(p => p.Name)];

    private readonly TextTokenizer _inner;
    private readonly int _bos;
    private readonly int _eos;
    private readonly bool _addBos;

    private GgufByteLevelTokenizer(TextTokenizer inner, int bos, int eos, bool addBos)
    {
        _inner = inner;
        _bos = bos;
        _eos = eos;
        _addBos = addBos;
    }

    public static TextTokenizer Create(GgufVocabulary vocabulary, string source)
    {
        string pre = vocabulary.PreTokenizer ?? "default";
        (string split, bool ignoreMerges) = ByteLevelBpeTokenizer.GgufPreTokenizers.FirstOrDefault(p => p.Name == pre) is { Name: not null } known
            ? (known.Pattern, known.IgnoreMerges)
            : throw new CheckpointFormatException(source, null, $"has tokenizer.ggml.pre '{pre}', a byte-level pre-tokenizer not read yet; read: {string.Join(", ", SupportedPreTokenizers)}.",
                "Pass the model's tokenizer.json with --tokenizer / TextTokenizer.Load.");
        if (vocabulary.Merges is null)
        {
            throw new CheckpointFormatException(source, null, "is a byte-level BPE GGUF without tokenizer.ggml.merges.", "The GGUF's tokenizer is incomplete; pass the model's tokenizer.json.");
        }
        using var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteBoolean("ignore_merges", ignoreMerges);
            w.WriteStartObject("vocab");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < vocabulary.Tokens.Count; i++)
            {
                // Added tokens are listed below; a duplicate piece keeps its first id, as a JSON object would.
                if (vocabulary.TypeOf(i) is not (GgufTokenType.Control or GgufTokenType.UserDefined) && seen.Add(vocabulary.Tokens[i]))
                {
                    w.WriteNumber(vocabulary.Tokens[i], i);
                }
            }
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (string merge in vocabulary.Merges)
            {
                w.WriteStringValue(merge);
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartArray("added_tokens");
            for (int i = 0; i < vocabulary.Tokens.Count; i++)
            {
                if (vocabulary.TypeOf(i) is GgufTokenType.Control or GgufTokenType.UserDefined)
                {
                    w.WriteStartObject();
                    w.WriteNumber("id", i);
                    w.WriteString("content", vocabulary.Tokens[i]);
                    w.WriteBoolean("special", vocabulary.TypeOf(i) == GgufTokenType.Control);
                    w.WriteEndObject();
                }
            }
            w.WriteEndArray();
            w.WriteStartObject("pre_tokenizer");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("pretokenizers");
            w.WriteStartObject();
            w.WriteString("type", "Split");
            w.WriteStartObject("pattern");
            w.WriteString("Regex", split);
            w.WriteEndObject();
            w.WriteString("behavior", "Isolated");
            w.WriteEndObject();
            w.WriteStartObject();
            w.WriteString("type", "ByteLevel");
            w.WriteBoolean("use_regex", false);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartObject("decoder");
            w.WriteString("type", "ByteLevel");
            w.WriteEndObject();
            w.WriteEndObject();
        }
        using var doc = JsonDocument.Parse(json.ToArray());
        var inner = new ByteLevelBpeTokenizer(source, doc.RootElement);
        return new GgufByteLevelTokenizer(inner, vocabulary.BosId, vocabulary.EosId, vocabulary.AddBos);
    }

    public override int VocabSize => _inner.VocabSize;

    public override int BosId => _bos;

    public override bool HasBos => _addBos;

    public override int EosId => _eos;

    public override IReadOnlyDictionary<string, int> SpecialTokens => _inner.SpecialTokens;

    /// <summary>As llama.cpp (and Hugging Face) do by default: special tokens written in the text are their ids.</summary>
    public override IReadOnlyList<int> Encode(string text, bool addBos = true) => Encode(text, addBos, parseSpecialTokens: true);

    public override IReadOnlyList<int> Encode(string text, bool addBos, bool parseSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        if (addBos)
        {
            ids.Add(_bos);
        }
        ids.AddRange(_inner.Encode(text, addBos: false, parseSpecialTokens));
        return ids;
    }

    public override string Decode(IEnumerable<int> ids) => _inner.Decode(ids);

    /// <summary>The vocabulary it was read from, as its tokenizer.json would write it, with the GGUF's own BOS/EOS ids and add-BOS flag.</summary>
    internal override GgufVocabulary? ToGgufVocabulary() => _inner.ToGgufVocabulary() is { } vocabulary
        ? vocabulary with { BosId = _bos, EosId = _eos, AddBos = _addBos }
        : null;
}
