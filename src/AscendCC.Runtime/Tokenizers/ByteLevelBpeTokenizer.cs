using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a byte-level BPE model, as GPT-2, Llama 3 and Qwen use:
/// text is cut by the pre-tokenizer's regex, each piece's UTF-8 bytes are spelled with GPT-2's
/// byte-to-unicode alphabet ("Ġ" for a space) and merged; every byte has a token, so any text encodes.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> (<see cref="BpeOptions.ByteLevel"/>) does the
/// byte mapping, the merges and the decoding. Three things it cannot do are done here:
/// <list type="bullet">
/// <item>the pre-tokenizer: its <see cref="RegexPreTokenizer"/> drops text the regex does not match,
/// while a Hugging Face <c>Split</c> with behaviour <c>Isolated</c> keeps it as pieces of its own;</item>
/// <item><c>ignore_merges</c> (Llama 3): a piece that is itself in the vocabulary is one token, even when
/// the merges would split it differently;</item>
/// <item>added tokens (<c>&lt;|begin_of_text|&gt;</c>, <c>&lt;|eot_id|&gt;</c>) are cut out of the raw text
/// first, the beginning-of-sequence token comes from the post-processor's template.</item>
/// </list>
/// </remarks>
internal sealed class ByteLevelBpeTokenizer : TokenizerJsonModel
{
    /// <summary>GPT-2's <c>\s</c>-aware split, used by a ByteLevel pre-tokenizer with use_regex (its default).</summary>
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Llama 3's split, verbatim from its tokenizer.json.</summary>
    internal const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen2's split: Llama 3's with single digits.</summary>
    internal const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>
    /// llama.cpp's names (<c>tokenizer.ggml.pre</c>) of the byte-level pre-tokenizers read and written
    /// here: the split regex each stands for and whether it takes a piece in the vocabulary whole
    /// (<c>ignore_merges</c>). The first name of a split is the one written.
    /// </summary>
    internal static readonly (string Name, string Pattern, bool IgnoreMerges)[] GgufPreTokenizers =
    [
        ("gpt-2", Gpt2Pattern, false),
        ("default", Gpt2Pattern, false),
        ("gpt2", Gpt2Pattern, false),
        ("llama-bpe", Llama3Pattern, true),
        ("llama3", Llama3Pattern, true),
        ("llama-v3", Llama3Pattern, true),
        ("qwen2", Qwen2Pattern, false),
    ];

    /// <summary>GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes for U+0100 onwards.</summary>
    internal static readonly char[] ByteToChar = BuildByteToChar();

    private static readonly string[] BosNames = ["<|begin_of_text|>", "<s>", "<bos>"];
    private static readonly string[] EosNames = ["<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", "<|eot_id|>", "<|im_end|>"];

    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<string, int> _modelVocab;
    private readonly Dictionary<int, string> _addedById;
    private readonly HashSet<int> _specialIds;
    private readonly List<(string Content, int Id)> _addedTokens;
    private readonly List<NormalizationForm> _normalizers = [];
    private readonly List<Regex> _splits = [];
    private readonly HashSet<int> _bpeIds;
    private readonly List<string> _merges;
    private bool _addPrefixSpace;
    private readonly bool _ignoreMerges;
    private readonly int _vocabSize;
    private readonly int _bosId;
    private readonly int _eosId;

    public ByteLevelBpeTokenizer(string source, JsonElement root)
        : base(source)
    {
        var model = Required(root, "model", JsonValueKind.Object);
        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "BPE";
        if (type != "BPE")
        {
            throw Unsupported($"model type '{type}' with a ByteLevel pre-tokenizer", "Only BPE models are read from tokenizer.json.");
        }
        foreach (string prop in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            if (model.TryGetProperty(prop, out var v) && v.ValueKind == JsonValueKind.String && v.GetString()!.Length > 0)
            {
                throw Unsupported($"model.{prop} '{v.GetString()}'", "Byte-level Llama-family tokenizers do not use it.");
            }
        }
        _ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;

        _modelVocab = ReadVocab(model);
        for (int b = 0; b < 256; b++)
        {
            if (!_modelVocab.ContainsKey(ByteToChar[b].ToString()))
            {
                throw Format($"model.vocab has no token for byte 0x{b:X2} ('{ByteToChar[b]}', U+{(int)ByteToChar[b]:X4}); a byte-level vocabulary needs one token for each of the 256 bytes, spelled with GPT-2's byte-to-unicode alphabet.");
            }
        }
        _merges = ReadMerges(model);

        _addedTokens = [];
        _addedById = [];
        _specialIds = [];
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in added.EnumerateArray())
            {
                string content = Required(a, "content", JsonValueKind.String).GetString()!;
                int id = Required(a, "id", JsonValueKind.Number).TryGetInt32(out int i) && i >= 0
                    ? i
                    : throw Format($"added token '{content}' has id {a.GetProperty("id").GetRawText()}, not a non-negative integer.");
                _addedTokens.Add((content, id));
                _addedById[id] = content;
                if (a.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True)
                {
                    _specialIds.Add(id);
                }
            }
        }
        // Longest first, so a token never shadows a longer one sharing its prefix.
        _addedTokens.Sort((x, y) => y.Content.Length.CompareTo(x.Content.Length));
        _vocabSize = Math.Max(_modelVocab.Values.Max(), _addedById.Count > 0 ? _addedById.Keys.Max() : 0) + 1;

        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null)
        {
            ReadNormalizer(normalizer);
        }
        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind != JsonValueKind.Null)
        {
            ReadPreTokenizer(pre);
        }

        _bosId = TemplateBos(root) ?? FindAdded(BosNames);
        _eosId = FindAdded(EosNames);

        // Special tokens stay out of the BPE vocabulary so their text can never come from a merge;
        // they are cut out of the input before the BPE sees it.
        var bpeVocab = _modelVocab.Where(kv => !_specialIds.Contains(kv.Value)).ToList();
        _bpeIds = bpeVocab.Select(kv => kv.Value).ToHashSet();
        var options = new BpeOptions(bpeVocab)
        {
            Merges = _merges,
            ByteLevel = true,
        };
        try
        {
            _bpe = BpeTokenizer.Create(options);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw Format($"is refused by the BPE tokenizer ({e.Message}).");
        }
    }

    public override int VocabSize => _vocabSize;

    public override bool HasBos => _bosId >= 0;

    public override int BosId => _bosId >= 0 ? _bosId : throw new InvalidOperationException($"{Source} defines no beginning-of-sequence token (no post_processor template token, no <|begin_of_text|>, <s> or <bos>); encode with addBos: false.");

    public override int EosId => _eosId >= 0 ? _eosId : throw new InvalidOperationException($"{Source} defines no end-of-sequence token (none of {string.Join(", ", EosNames)} is an added token); take the stop ids from config.json's eos_token_id.");

    /// <summary>True when the file is byte-level BPE: a ByteLevel step in its pre-tokenizer or decoder.</summary>
    public static bool IsByteLevel(JsonElement root) =>
        (root.TryGetProperty("pre_tokenizer", out var pre) && HasByteLevel(pre, "pretokenizers"))
        || (root.TryGetProperty("decoder", out var decoder) && HasByteLevel(decoder, "decoders"));

    public override IReadOnlyDictionary<string, int> SpecialTokens =>
        _addedTokens.Where(a => _specialIds.Contains(a.Id)).GroupBy(a => a.Content).ToDictionary(g => g.Key, g => g.First().Id, StringComparer.Ordinal);

    /// <summary>Hugging Face's default: every added token in the text, special or not, is its id.</summary>
    public override IReadOnlyList<int> Encode(string text, bool addBos = true) => Encode(text, addBos, parseSpecialTokens: true);

    /// <summary>Without <paramref name="parseSpecialTokens"/> only the added tokens not marked special are cut out of the text (split_special_tokens=True).</summary>
    public override IReadOnlyList<int> Encode(string text, bool addBos, bool parseSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        List<(string Content, int Id)> added = parseSpecialTokens ? _addedTokens : _addedTokens.Where(a => !_specialIds.Contains(a.Id)).ToList();
        var ids = new List<int>();
        if (addBos)
        {
            ids.Add(BosId);
        }
        foreach (var (segment, addedId) in HuggingFaceBpeTokenizer.SplitAddedTokens(text, added))
        {
            if (addedId is { } id)
            {
                ids.Add(id);
                continue;
            }
            string normalized = segment;
            foreach (var form in _normalizers)
            {
                normalized = normalized.Normalize(form);
            }
            if (normalized.Length == 0)
            {
                continue;
            }
            if (_addPrefixSpace && normalized[0] != ' ')
            {
                normalized = " " + normalized;
            }
            foreach (string piece in PreTokenize(normalized))
            {
                EncodePiece(piece, ids);
            }
        }
        return ids;
    }

    public override string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        var run = new List<int>();
        foreach (int id in ids)
        {
            bool inModel = _bpeIds.Contains(id);
            if (!inModel && !_addedById.ContainsKey(id))
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id {id} is not in the vocabulary of {Source}.");
            }
            if (_specialIds.Contains(id))
            {
                continue;
            }
            if (inModel)
            {
                // Runs are decoded together so a character whose bytes span several tokens comes out whole.
                run.Add(id);
                continue;
            }
            Flush();
            text.Append(_addedById[id]);
        }
        Flush();
        string decoded = text.ToString();
        return _addPrefixSpace && decoded.StartsWith(' ') ? decoded[1..] : decoded;

        void Flush()
        {
            if (run.Count > 0)
            {
                text.Append(_bpe.Decode(run));
                run.Clear();
            }
        }
    }

    /// <summary>
    /// The vocabulary as llama.cpp's converter writes a byte-level BPE tokenizer (<c>tokenizer.ggml.model</c>
    /// "gpt2"): tokens by id, special added tokens as control tokens and the others as user-defined ones,
    /// ids no token has as "[PADn]" unused tokens, the merges, and the llama.cpp name of the split. A
    /// normalizer is dropped, as the converter drops Qwen2's NFC: llama.cpp does not normalize.
    /// </summary>
    /// <exception cref="NotSupportedException">The split has no llama.cpp name, or the file adds a prefix space, or it defines no end-of-sequence token.</exception>
    internal override GgufVocabulary ToGgufVocabulary()
    {
        string[] splits = [.. _splits.Select(r => r.ToString())];
        string pre = splits.Length == 1 && GgufPreTokenizers.FirstOrDefault(p => p.Pattern == splits[0] && p.IgnoreMerges == _ignoreMerges) is { Name: { } name }
            ? name
            : throw Unsupported($"writing GGUF of a pre-tokenizer that splits with [{string.Join(", ", splits.Select(r => $"'{r}'"))}]{(_ignoreMerges ? " and ignore_merges" : "")}",
                "llama.cpp names its pre-tokenizers instead of storing their regex, and GgufWriter knows 'gpt-2' (GPT-2's split), 'llama-bpe' (Llama 3's, with ignore_merges) and 'qwen2' (Qwen2's); convert this model with llama.cpp's convert_hf_to_gguf.py, which knows more.");
        if (_addPrefixSpace)
        {
            throw Unsupported("writing GGUF of a ByteLevel pre-tokenizer with add_prefix_space", "llama.cpp's byte-level tokenizer never prepends a space; such a GGUF would tokenize differently.");
        }
        if (_eosId < 0)
        {
            throw Unsupported("writing GGUF of a tokenizer without an end-of-sequence token", $"GGUF needs tokenizer.ggml.eos_token_id; add one of {string.Join(", ", EosNames)} as a special added token.");
        }
        var tokens = new string[_vocabSize];
        var types = new GgufTokenType[_vocabSize];
        foreach (var (token, id) in _modelVocab)
        {
            tokens[id] = token;
            types[id] = GgufTokenType.Normal;
        }
        foreach (var (content, id) in _addedTokens)
        {
            tokens[id] = content;
            types[id] = _specialIds.Contains(id) ? GgufTokenType.Control : GgufTokenType.UserDefined;
        }
        for (int id = 0; id < tokens.Length; id++)
        {
            if (tokens[id] is null)
            {
                tokens[id] = $"[PAD{id}]";
                types[id] = GgufTokenType.Unused;
            }
        }
        // A model without BOS (GPT-2, Qwen2) names its end-of-text token as BOS too, as the converter does; add_bos_token says it is not added.
        return new GgufVocabulary("gpt2", tokens, null, types, _bosId >= 0 ? _bosId : _eosId, _eosId, null)
        {
            Merges = _merges,
            PreTokenizer = pre,
            AddBos = _bosId >= 0,
        };
    }

    private void EncodePiece(string piece, List<int> ids)
    {
        if (_ignoreMerges && _modelVocab.TryGetValue(ToByteLevel(piece), out int whole) && !_specialIds.Contains(whole))
        {
            ids.Add(whole);
            return;
        }
        ids.AddRange(_bpe.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
    }

    /// <summary>Applies each Split regex in turn (behaviour Isolated: matches and the text between them are pieces).</summary>
    private List<string> PreTokenize(string text)
    {
        var pieces = new List<string> { text };
        foreach (Regex split in _splits)
        {
            var next = new List<string>(pieces.Count * 2);
            foreach (string piece in pieces)
            {
                int at = 0;
                foreach (ValueMatch m in split.EnumerateMatches(piece))
                {
                    if (m.Length == 0)
                    {
                        continue;
                    }
                    if (m.Index > at)
                    {
                        next.Add(piece[at..m.Index]);
                    }
                    next.Add(piece.Substring(m.Index, m.Length));
                    at = m.Index + m.Length;
                }
                if (at < piece.Length)
                {
                    next.Add(piece[at..]);
                }
            }
            pieces = next;
        }
        return pieces;
    }

    private static string ToByteLevel(string piece)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(piece);
        return string.Create(utf8.Length, utf8, static (chars, bytes) =>
        {
            for (int i = 0; i < bytes.Length; i++)
            {
                chars[i] = ByteToChar[bytes[i]];
            }
        });
    }

    private List<string> ReadMerges(JsonElement model)
    {
        var merges = new List<string>();
        int index = 0;
        foreach (var m in Required(model, "merges", JsonValueKind.Array).EnumerateArray())
        {
            (string left, string right) = m.ValueKind switch
            {
                JsonValueKind.String when m.GetString()!.Split(' ') is [{ Length: > 0 } a, { Length: > 0 } b] => (a, b),
                JsonValueKind.Array when m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String => (m[0].GetString()!, m[1].GetString()!),
                _ => throw Format($"model.merges[{index}] {m.GetRawText()} is neither \"left right\" nor [\"left\", \"right\"]."),
            };
            foreach (string token in new[] { left, right, left + right })
            {
                if (!_modelVocab.ContainsKey(token))
                {
                    throw Format($"model.merges[{index}] \"{left} {right}\" refers to '{token}', which is not in model.vocab.");
                }
            }
            // Byte-level tokens never hold a space (it is spelled "Ġ"), so "left right" is unambiguous.
            merges.Add($"{left} {right}");
            index++;
        }
        return merges;
    }

    private void ReadNormalizer(JsonElement n)
    {
        string type = Required(n, "type", JsonValueKind.String).GetString()!;
        switch (type)
        {
            case "Sequence":
                foreach (var inner in Required(n, "normalizers", JsonValueKind.Array).EnumerateArray())
                {
                    ReadNormalizer(inner);
                }
                break;
            case "NFC": _normalizers.Add(NormalizationForm.FormC); break;
            case "NFD": _normalizers.Add(NormalizationForm.FormD); break;
            case "NFKC": _normalizers.Add(NormalizationForm.FormKC); break;
            case "NFKD": _normalizers.Add(NormalizationForm.FormKD); break;
            default:
                throw Unsupported($"normalizer '{type}' in a byte-level tokenizer", "Supported: none, NFC, NFD, NFKC, NFKD or a Sequence of them.");
        }
    }

    private void ReadPreTokenizer(JsonElement p)
    {
        string type = Required(p, "type", JsonValueKind.String).GetString()!;
        switch (type)
        {
            case "Sequence":
                foreach (var inner in Required(p, "pretokenizers", JsonValueKind.Array).EnumerateArray())
                {
                    ReadPreTokenizer(inner);
                }
                break;
            case "ByteLevel":
                if (p.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.True)
                {
                    _addPrefixSpace = true;
                }
                // use_regex defaults to true: GPT-2 files rely on it; Llama 3 turns it off and splits with its own Split step.
                if (!(p.TryGetProperty("use_regex", out var ur) && ur.ValueKind == JsonValueKind.False))
                {
                    _splits.Add(new Regex(Gpt2Pattern, RegexOptions.CultureInvariant));
                }
                break;
            case "Split":
                var pattern = Required(p, "pattern", JsonValueKind.Object);
                string behavior = p.TryGetProperty("behavior", out var be) && be.ValueKind == JsonValueKind.String ? be.GetString()! : "Isolated";
                if (behavior != "Isolated" || (p.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True))
                {
                    throw Unsupported($"pre_tokenizer Split with behavior '{behavior}'{(p.TryGetProperty("invert", out var i2) && i2.ValueKind == JsonValueKind.True ? " and invert" : "")}", "Only behavior Isolated without invert (what GPT-2, Llama 3 and Qwen use) is supported.");
                }
                string regex = pattern.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()!
                    : pattern.TryGetProperty("String", out var s) && s.ValueKind == JsonValueKind.String ? Regex.Escape(s.GetString()!)
                    : throw Format($"pre_tokenizer Split pattern {pattern.GetRawText()} has neither a \"Regex\" nor a \"String\".");
                try
                {
                    _splits.Add(new Regex(regex, RegexOptions.CultureInvariant));
                }
                catch (ArgumentException e)
                {
                    throw Unsupported($"pre_tokenizer Split regex '{regex}' ({e.Message})", ".NET regular expressions have no possessive quantifiers or atomic Oniguruma extensions; rewrite the pattern without them.");
                }
                break;
            default:
                throw Unsupported($"pre_tokenizer '{type}' in a byte-level tokenizer", "Supported: ByteLevel, Split (Isolated) or a Sequence of them.");
        }
    }

    /// <summary>The special token the post-processor's template puts before the text, if any.</summary>
    private int? TemplateBos(JsonElement root)
    {
        if (!root.TryGetProperty("post_processor", out var post) || post.ValueKind != JsonValueKind.Object)
        {
            return null;
        }
        IEnumerable<JsonElement> processors = post.TryGetProperty("processors", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray()
            : [post];
        foreach (var processor in processors)
        {
            if (!processor.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array)
            {
                continue;
            }
            foreach (var item in single.EnumerateArray())
            {
                if (item.TryGetProperty("Sequence", out _))
                {
                    return null;
                }
                if (item.TryGetProperty("SpecialToken", out var st) && st.TryGetProperty("id", out var name) && name.ValueKind == JsonValueKind.String)
                {
                    string token = name.GetString()!;
                    int found = _addedTokens.FindIndex(a => a.Content == token);
                    return found >= 0 ? _addedTokens[found].Id
                        : _modelVocab.TryGetValue(token, out int id) ? id
                        : throw Format($"post_processor template token '{token}' is neither an added token nor in model.vocab.");
                }
            }
        }
        return null;
    }

    private int FindAdded(string[] names)
    {
        foreach (string name in names)
        {
            int found = _addedTokens.FindIndex(a => a.Content == name);
            if (found >= 0)
            {
                return _addedTokens[found].Id;
            }
        }
        return -1;
    }

    private static bool HasByteLevel(JsonElement e, string listName) =>
        e.ValueKind == JsonValueKind.Object
        && e.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String
        && (type.GetString() == "ByteLevel"
            || (type.GetString() == "Sequence" && e.TryGetProperty(listName, out var list) && list.ValueKind == JsonValueKind.Array
                && list.EnumerateArray().Any(inner => HasByteLevel(inner, listName))));

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

}
