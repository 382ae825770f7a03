using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;
using AscendCC.Runtime.Models;

namespace AscendCC.Runtime.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a BPE model in the SentencePiece style Llama 2 and
/// Mistral use: normalizer Prepend/Replace (or a Metaspace pre-tokenizer) turning spaces into "▁",
/// byte fallback to &lt;0xNN&gt; pieces for characters outside the vocabulary, added special tokens.
/// </summary>
/// <remarks>
/// The merges run in Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>; that tokenizer has no byte
/// fallback, so text is first cut at characters outside the vocabulary (which can never take part in
/// a merge) and those are emitted as byte pieces here. Byte-level BPE (GPT-2 / Llama 3 style) files
/// are recognised by <see cref="LoadFile"/> and read by <see cref="ByteLevelBpeTokenizer"/>.
/// </remarks>
internal sealed class HuggingFaceBpeTokenizer : TokenizerJsonModel
{
    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly HashSet<int> _specialIds;
    private readonly List<(string Content, int Id)> _addedTokens;
    private readonly List<Func<string, string>> _normalizers;
    private readonly string? _spaceSymbol;
    private readonly bool _prependsSpace;
    private readonly bool _splitOnSpaceSymbol;
    private readonly bool _byteFallback;
    private readonly int[] _byteIds;
    private readonly int? _unkId;
    private readonly bool _fuseUnk;
    private readonly int _bosId;
    private readonly int _eosId;

    private HuggingFaceBpeTokenizer(string source, JsonElement root)
        : base(source)
    {
        var model = Required(root, "model", JsonValueKind.Object);
        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "BPE";
        if (type != "BPE")
        {
            throw Unsupported($"model type '{type}'", "Only BPE tokenizer.json files are read; for SentencePiece Unigram models pass tokenizer.model instead.");
        }
        _vocab = ReadVocab(model);
        var merges = new List<string>();
        foreach (var m in Required(model, "merges", JsonValueKind.Array).EnumerateArray())
        {
            string merge = m.ValueKind switch
            {
                JsonValueKind.String => m.GetString()!,
                JsonValueKind.Array when m.GetArrayLength() == 2 && m[0].GetString() is { } a && m[1].GetString() is { } b =>
                    a.Contains(' ', StringComparison.Ordinal) || b.Contains(' ', StringComparison.Ordinal)
                        ? throw Unsupported($"merge [\"{a}\", \"{b}\"] containing a space", "BpeTokenizer takes merges as \"left right\" strings.")
                        : $"{a} {b}",
                _ => throw Format($"merge {m.GetRawText()} is neither \"left right\" nor [left, right]."),
            };
            merges.Add(merge);
        }
        _byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        _fuseUnk = model.TryGetProperty("fuse_unk", out var fu) && fu.ValueKind == JsonValueKind.True;
        string? unk = model.TryGetProperty("unk_token", out var u) && u.ValueKind == JsonValueKind.String ? u.GetString() : null;
        foreach (string prop in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            if (model.TryGetProperty(prop, out var v) && v.ValueKind == JsonValueKind.String && v.GetString()!.Length > 0)
            {
                throw Unsupported($"model.{prop} '{v.GetString()}'", "Llama-family tokenizers do not use it.");
            }
        }

        _addedTokens = [];
        _specialIds = [];
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in added.EnumerateArray())
            {
                string content = Required(a, "content", JsonValueKind.String).GetString()!;
                int id = Required(a, "id", JsonValueKind.Number).GetInt32();
                _vocab.TryAdd(content, id);
                _addedTokens.Add((content, id));
                if (a.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True)
                {
                    _specialIds.Add(id);
                }
            }
        }
        // Longest first, so "<s>" never shadows a longer added token sharing its prefix.
        _addedTokens.Sort((x, y) => y.Content.Length.CompareTo(x.Content.Length));
        int size = _vocab.Values.Max() + 1;
        _idToToken = new string[size];
        foreach (var (token, id) in _vocab)
        {
            _idToToken[id] ??= token;
        }
        if (unk is not null)
        {
            _unkId = _vocab.TryGetValue(unk, out int unkId) ? unkId : throw Format($"unk_token '{unk}' is not in the vocabulary.");
        }
        _byteIds = new int[256];
        for (int b = 0; b < 256; b++)
        {
            _byteIds[b] = _vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
        }
        if (_byteFallback && _byteIds.Contains(-1))
        {
            throw Format("byte_fallback is on but not all 256 <0xNN> pieces are in the vocabulary.");
        }

        _normalizers = [];
        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null)
        {
            AddNormalizer(normalizer, ref _spaceSymbol, ref _prependsSpace);
        }
        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind != JsonValueKind.Null)
        {
            ReadPreTokenizer(pre, ref _spaceSymbol, ref _prependsSpace, ref _splitOnSpaceSymbol);
        }

        _bosId = FindSpecial(root, before: true, "<s>", "<|begin_of_text|>", "<bos>");
        _eosId = FindSpecial(root, before: false, "</s>", "<|end_of_text|>", "<eos>");

        // Runs handed to BpeTokenizer hold only in-vocabulary characters, so it needs no unknown token;
        // special tokens stay out so their text can never come from a merge.
        var options = new BpeOptions(_vocab.Where(kv => !_specialIds.Contains(kv.Value)).Select(kv => new KeyValuePair<string, int>(kv.Key, kv.Value)))
        {
            Merges = merges,
        };
        _bpe = BpeTokenizer.Create(options);
    }

    public override int VocabSize => _idToToken.Length;

    public override bool HasBos => _bosId >= 0;

    public override int BosId => _bosId >= 0 ? _bosId : throw new InvalidOperationException($"{Source} defines no beginning-of-sequence token; encode with addBos: false.");

    public override int EosId => _eosId >= 0 ? _eosId : throw new InvalidOperationException($"{Source} defines no end-of-sequence token.");

    /// <summary>Loads a tokenizer.json: byte-level BPE (GPT-2 / Llama 3 style) or SentencePiece-style BPE.</summary>
    public static TextTokenizer LoadFile(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointFormatException(path, null, "is not a JSON object.", "Pass the tokenizer.json that came with the model.");
            }
            return ByteLevelBpeTokenizer.IsByteLevel(doc.RootElement)
                ? new ByteLevelBpeTokenizer(path, doc.RootElement)
                : new HuggingFaceBpeTokenizer(path, doc.RootElement);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, null, $"is not valid JSON ({e.Message}).", "Pass the tokenizer.json that came with the model.", e);
        }
        catch (InvalidOperationException e)
        {
            // JsonElement accessors throw InvalidOperationException on a value of the wrong kind.
            throw new CheckpointFormatException(path, null, $"has a field of the wrong JSON type ({e.Message}).", "Pass the tokenizer.json that came with the model.", e);
        }
    }

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
        bool first = true;
        foreach (var (segment, addedId) in SplitAddedTokens(text, added))
        {
            if (addedId is { } id)
            {
                ids.Add(id);
                first = false;
                continue;
            }
            string normalized = segment;
            foreach (var normalize in _normalizers)
            {
                normalized = normalize(normalized);
            }
            if (_splitOnSpaceSymbol && _spaceSymbol is not null)
            {
                normalized = normalized.Replace(" ", _spaceSymbol, StringComparison.Ordinal);
                // Metaspace "first" prepends only before the first segment.
                if (_prependsSpace && first && normalized.Length > 0 && !normalized.StartsWith(_spaceSymbol, StringComparison.Ordinal))
                {
                    normalized = _spaceSymbol + normalized;
                }
                foreach (string word in SplitBefore(normalized, _spaceSymbol))
                {
                    EncodeWord(word, ids);
                }
            }
            else
            {
                EncodeWord(normalized, ids);
            }
            first = false;
        }
        return ids;
    }

    public override string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (id < 0 || id >= _idToToken.Length || _idToToken[id] is null)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id {id} is not in the vocabulary of {Source}.");
            }
            if (_specialIds.Contains(id))
            {
                continue;
            }
            string token = _idToToken[id];
            if (_byteFallback && TryParseBytePiece(token, out byte b))
            {
                bytes.Add(b);
                continue;
            }
            if (_spaceSymbol is not null)
            {
                token = token.Replace(_spaceSymbol, " ", StringComparison.Ordinal);
            }
            bytes.AddRange(Encoding.UTF8.GetBytes(token));
        }
        string text = Encoding.UTF8.GetString(bytes.ToArray());
        return _prependsSpace && text.StartsWith(' ') ? text[1..] : text;
    }

    private void EncodeWord(string word, List<int> ids)
    {
        int runStart = 0;
        int pos = 0;
        bool lastWasUnk = false;
        Span<byte> utf8 = stackalloc byte[4];
        while (pos < word.Length)
        {
            var rune = Rune.GetRuneAt(word, pos);
            string piece = rune.ToString();
            bool inVocab = _vocab.ContainsKey(piece);
            // BpeTokenizer splits into UTF-16 units, so a non-BMP character is emitted whole here.
            if (inVocab && rune.IsBmp)
            {
                pos += rune.Utf16SequenceLength;
                continue;
            }
            FlushRun(word, runStart, pos, ids, ref lastWasUnk);
            if (inVocab)
            {
                ids.Add(_vocab[piece]);
                lastWasUnk = false;
            }
            else if (_byteFallback)
            {
                int n = rune.EncodeToUtf8(utf8);
                for (int i = 0; i < n; i++)
                {
                    ids.Add(_byteIds[utf8[i]]);
                }
                lastWasUnk = false;
            }
            else if (_unkId is { } unk)
            {
                if (!(_fuseUnk && lastWasUnk))
                {
                    ids.Add(unk);
                }
                lastWasUnk = true;
            }
            else
            {
                throw new ArgumentException($"Character U+{rune.Value:X4} is not in the vocabulary of {Source}, which has neither byte_fallback nor unk_token; remove it from the text.", nameof(word));
            }
            pos += rune.Utf16SequenceLength;
            runStart = pos;
        }
        FlushRun(word, runStart, pos, ids, ref lastWasUnk);
    }

    private void FlushRun(string word, int start, int end, List<int> ids, ref bool lastWasUnk)
    {
        if (end > start)
        {
            ids.AddRange(_bpe.EncodeToIds(word.AsSpan(start, end - start), considerPreTokenization: false, considerNormalization: false));
            lastWasUnk = false;
        }
    }

    /// <summary>
    /// Cuts <paramref name="text"/> at occurrences of the added tokens (<paramref name="addedTokens"/>
    /// sorted longest first), as Hugging Face does before normalizing: added tokens are matched in the
    /// raw text and never take part in merges.
    /// </summary>
    internal static IEnumerable<(string Segment, int? AddedId)> SplitAddedTokens(string text, List<(string Content, int Id)> addedTokens)
    {
        int start = 0;
        for (int i = 0; i < text.Length;)
        {
            int matched = addedTokens.FindIndex(a => a.Content.Length > 0 && string.CompareOrdinal(text, i, a.Content, 0, a.Content.Length) == 0);
            if (matched < 0)
            {
                i++;
                continue;
            }
            if (i > start)
            {
                yield return (text[start..i], null);
            }
            yield return (addedTokens[matched].Content, addedTokens[matched].Id);
            i += addedTokens[matched].Content.Length;
            start = i;
        }
        if (start < text.Length || text.Length == 0)
        {
            yield return (text[start..], null);
        }
    }

    private static IEnumerable<string> SplitBefore(string text, string symbol)
    {
        int start = 0;
        for (int i = text.IndexOf(symbol, 1, StringComparison.Ordinal); i > 0 && i < text.Length; i = text.IndexOf(symbol, i + 1, StringComparison.Ordinal))
        {
            yield return text[start..i];
            start = i;
        }
        if (start < text.Length)
        {
            yield return text[start..];
        }
    }

    private void AddNormalizer(JsonElement n, ref string? spaceSymbol, ref bool prependsSpace)
    {
        string type = Required(n, "type", JsonValueKind.String).GetString()!;
        switch (type)
        {
            case "Sequence":
                foreach (var inner in Required(n, "normalizers", JsonValueKind.Array).EnumerateArray())
                {
                    AddNormalizer(inner, ref spaceSymbol, ref prependsSpace);
                }
                break;
            case "Prepend":
                string prepend = Required(n, "prepend", JsonValueKind.String).GetString()!;
                prependsSpace = true;
                _normalizers.Add(s => s.Length == 0 ? s : prepend + s);
                break;
            case "Replace":
                var pattern = Required(n, "pattern", JsonValueKind.Object);
                string content = Required(n, "content", JsonValueKind.String).GetString()!;
                if (!pattern.TryGetProperty("String", out var literal) || literal.ValueKind != JsonValueKind.String)
                {
                    throw Unsupported($"normalizer Replace with pattern {pattern.GetRawText()}", "Only literal String patterns are supported.");
                }
                string from = literal.GetString()!;
                if (from == " ")
                {
                    spaceSymbol = content;
                }
                _normalizers.Add(s => s.Replace(from, content, StringComparison.Ordinal));
                break;
            case "NFC": _normalizers.Add(s => s.Normalize(NormalizationForm.FormC)); break;
            case "NFD": _normalizers.Add(s => s.Normalize(NormalizationForm.FormD)); break;
            case "NFKC": _normalizers.Add(s => s.Normalize(NormalizationForm.FormKC)); break;
            case "NFKD": _normalizers.Add(s => s.Normalize(NormalizationForm.FormKD)); break;
            default:
                throw Unsupported($"normalizer '{type}'", "Supported normalizers: Sequence, Prepend, Replace (literal), NFC, NFD, NFKC, NFKD.");
        }
    }

    private void ReadPreTokenizer(JsonElement p, ref string? spaceSymbol, ref bool prependsSpace, ref bool split)
    {
        string type = Required(p, "type", JsonValueKind.String).GetString()!;
        if (type == "Metaspace")
        {
            spaceSymbol = p.TryGetProperty("replacement", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "\u2581";
            string scheme = p.TryGetProperty("prepend_scheme", out var ps) && ps.ValueKind == JsonValueKind.String
                ? ps.GetString()!
                : p.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.False ? "never" : "always";
            prependsSpace = scheme != "never";
            // Words are split before each replacement symbol unless "split" is false; either way spaces become the symbol.
            split = true;
            if (p.TryGetProperty("split", out var sp) && sp.ValueKind == JsonValueKind.False)
            {
                string symbol = spaceSymbol;
                bool prepend = prependsSpace;
                split = false;
                _normalizers.Add(s => s.Length == 0 ? s : (prepend && !s.StartsWith(' ') ? symbol : "") + s.Replace(" ", symbol, StringComparison.Ordinal));
            }
            return;
        }
        // Byte-level files (a ByteLevel pre-tokenizer or decoder) never get here: ByteLevelBpeTokenizer reads them.
        throw Unsupported($"pre_tokenizer '{type}' without a ByteLevel step", "SentencePiece-style BPE takes no pre-tokenizer or Metaspace; byte-level BPE (GPT-2 / Llama 3) needs a ByteLevel pre-tokenizer or decoder.");
    }

    private int FindSpecial(JsonElement root, bool before, params string[] commonNames)
    {
        if (before && root.TryGetProperty("post_processor", out var post) && post.ValueKind == JsonValueKind.Object
            && post.TryGetProperty("single", out var single) && single.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in single.EnumerateArray())
            {
                if (item.TryGetProperty("Sequence", out _))
                {
                    break;
                }
                if (item.TryGetProperty("SpecialToken", out var st) && st.TryGetProperty("id", out var name) && name.GetString() is { } n && _vocab.TryGetValue(n, out int id))
                {
                    return id;
                }
            }
        }
        foreach (string name in commonNames)
        {
            if (_vocab.TryGetValue(name, out int id))
            {
                return id;
            }
        }
        return -1;
    }

}
