using System.Text;
using Microsoft.ML.Tokenizers;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Tokenizers;

/// <summary>
/// llama2.c's tokenizer (tok*.bin: int32 max token length, then per token float32 score, int32
/// length, bytes), encoding exactly as run.c does: dummy-prefix space, code points, byte fallback
/// to id byte+3, then repeatedly merging the adjacent pair whose merge has the highest score.
/// </summary>
internal sealed class Llama2cTokenizer : TextTokenizer
{
    private const int Bos = 1;
    private const int Eos = 2;
    private const int ByteOffset = 3;

    private readonly byte[][] _vocab;
    private readonly float[] _scores;
    private readonly Dictionary<string, int> _lookup;
    private readonly int _bos;
    private readonly int _eos;
    private readonly int _unk;
    private readonly int[] _byteIds;
    private readonly bool[] _skipOnDecode;
    private readonly GgufVocabulary? _gguf;

    private Llama2cTokenizer(byte[][] vocab, float[] scores)
        : this(vocab, scores, Bos, Eos, 0, Enumerable.Range(ByteOffset, 256).ToArray(), id => id is 0 or Bos or Eos, null,
            new Dictionary<string, int>(StringComparer.Ordinal) { ["<s>"] = Bos, ["</s>"] = Eos })
    {
    }

    private Llama2cTokenizer(byte[][] vocab, float[] scores, int bos, int eos, int unk, int[] byteIds, Func<int, bool> special, GgufVocabulary? gguf, Dictionary<string, int> specialTokens)
    {
        _vocab = vocab;
        _scores = scores;
        _bos = bos;
        _eos = eos;
        _unk = unk;
        _byteIds = byteIds;
        _gguf = gguf;
        SpecialTokens = specialTokens;
        _skipOnDecode = new bool[vocab.Length];
        // Pieces are byte strings; Latin-1 maps each byte to one char so lookups stay byte-exact.
        _lookup = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < vocab.Length; i++)
        {
            _skipOnDecode[i] = special(i);
            // Control and unknown pieces are never produced from text (SentencePiece and llama.cpp alike).
            if (gguf is null || !_skipOnDecode[i])
            {
                _lookup.TryAdd(Encoding.Latin1.GetString(vocab[i]), i);
            }
        }
    }

    /// <summary>
    /// The same encoder over a SentencePiece-style vocabulary from GGUF metadata (tokenizer.ggml.model
    /// "llama"): "▁" in pieces is the space, &lt;0xNN&gt; pieces are the byte fallback, control, unknown
    /// and unused pieces are neither matched in text nor decoded.
    /// </summary>
    public static Llama2cTokenizer FromSentencePiece(GgufVocabulary vocabulary)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        int n = vocabulary.Tokens.Count;
        var vocab = new byte[n][];
        var byteIds = new int[256];
        Array.Fill(byteIds, -1);
        var specialTokens = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            string piece = vocabulary.Tokens[i];
            vocab[i] = Encoding.UTF8.GetBytes(piece.Replace('\u2581', ' '));
            if (TryParseBytePiece(piece, out byte b) && byteIds[b] < 0)
            {
                byteIds[b] = i;
            }
            if (vocabulary.TypeOf(i) is GgufTokenType.Control or GgufTokenType.Unknown)
            {
                specialTokens.TryAdd(piece, i);
            }
        }
        float[] scores = vocabulary.Scores?.ToArray() ?? new float[n];
        return new Llama2cTokenizer(vocab, scores, vocabulary.BosId, vocabulary.EosId, vocabulary.UnknownId ?? 0, byteIds,
            id => vocabulary.TypeOf(id) is GgufTokenType.Control or GgufTokenType.Unknown or GgufTokenType.Unused, vocabulary, specialTokens);
    }

    public override int VocabSize => _vocab.Length;

    public override int BosId => _bos;

    public override int EosId => _eos;

    /// <summary>llama2.c's vocabulary spells BOS and EOS "\n&lt;s&gt;\n" and "\n&lt;/s&gt;\n"; a rendered template writes them as Llama's "&lt;s&gt;" and "&lt;/s&gt;".
    /// From GGUF: the control and unknown pieces as written.</summary>
    public override IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>The vocabulary as GGUF's tokenizer.ggml.* metadata holds it (pieces with "▁", scores, types).</summary>
    internal override GgufVocabulary ToGgufVocabulary()
    {
        if (_gguf is not null)
        {
            return _gguf;
        }
        var tokens = new string[_vocab.Length];
        var types = new GgufTokenType[_vocab.Length];
        for (int i = 0; i < _vocab.Length; i++)
        {
            string piece = Encoding.UTF8.GetString(_vocab[i]);
            // llama2.c's export wrote BOS/EOS as "\n<s>\n" and "\n</s>\n" and the SentencePiece space as ' '.
            tokens[i] = i == Bos || i == Eos ? piece.Trim('\n') : piece.Replace(' ', '\u2581');
            types[i] = i == 0 ? GgufTokenType.Unknown
                : i == Bos || i == Eos ? GgufTokenType.Control
                : TryParseBytePiece(piece, out _) ? GgufTokenType.Byte
                : GgufTokenType.Normal;
        }
        return new GgufVocabulary("llama", tokens, _scores.ToArray(), types, Bos, Eos, 0);
    }

    public static Llama2cTokenizer LoadFile(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        long length = reader.BaseStream.Length;
        if (length < 4)
        {
            throw new CheckpointFormatException(path, null, "is shorter than the 4-byte max token length (truncated).", "Pass the tok*.bin exported with the model.");
        }
        int maxLength = reader.ReadInt32();
        var vocab = new List<byte[]>();
        var scores = new List<float>();
        while (reader.BaseStream.Position < length)
        {
            if (length - reader.BaseStream.Position < 8)
            {
                throw new CheckpointFormatException(path, null, $"ends inside the header of token {vocab.Count} (truncated).", "Re-export the tokenizer.");
            }
            float score = reader.ReadSingle();
            int len = reader.ReadInt32();
            if (len < 0 || len > maxLength || len > length - reader.BaseStream.Position)
            {
                throw new CheckpointFormatException(path, null, $"token {vocab.Count} declares {len} bytes (max token length {maxLength}, {length - reader.BaseStream.Position} bytes left).", "The file is corrupt or truncated; re-export the tokenizer.");
            }
            vocab.Add(reader.ReadBytes(len));
            scores.Add(score);
        }
        if (vocab.Count <= ByteOffset + 255)
        {
            throw new CheckpointFormatException(path, null, $"has {vocab.Count} tokens, too few for the 256 byte-fallback tokens from id 3.", "Pass a llama2.c tokenizer exported from a SentencePiece model with byte fallback.");
        }
        return new Llama2cTokenizer(vocab.ToArray(), scores.ToArray());
    }

    public override IReadOnlyList<int> Encode(string text, bool addBos = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<int>();
        if (addBos)
        {
            tokens.Add(_bos);
        }
        if (text.Length > 0 && _lookup.TryGetValue(" ", out int space))
        {
            tokens.Add(space);
        }
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var rune in text.EnumerateRunes())
        {
            int n = rune.EncodeToUtf8(utf8);
            if (_lookup.TryGetValue(Encoding.Latin1.GetString(utf8[..n]), out int id))
            {
                tokens.Add(id);
            }
            else
            {
                for (int i = 0; i < n; i++)
                {
                    int byteId = _byteIds[utf8[i]];
                    tokens.Add(byteId >= 0 ? byteId : _unk);
                }
            }
        }
        int first = addBos ? 1 : 0;
        while (true)
        {
            float bestScore = float.NegativeInfinity;
            int bestId = -1, bestIndex = -1;
            for (int i = first; i < tokens.Count - 1; i++)
            {
                string merged = Encoding.Latin1.GetString(_vocab[tokens[i]]) + Encoding.Latin1.GetString(_vocab[tokens[i + 1]]);
                if (_lookup.TryGetValue(merged, out int id) && _scores[id] > bestScore)
                {
                    bestScore = _scores[id];
                    bestId = id;
                    bestIndex = i;
                }
            }
            if (bestIndex < 0)
            {
                break;
            }
            tokens[bestIndex] = bestId;
            tokens.RemoveAt(bestIndex + 1);
        }
        return tokens;
    }

    public override string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        bool first = true;
        foreach (int id in ids)
        {
            if (id < 0 || id >= _vocab.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id {id} is outside the vocabulary [0, {_vocab.Length}).");
            }
            if (_skipOnDecode[id])
            {
                continue;
            }
            byte[] piece = _vocab[id];
            if (TryParseBytePiece(Encoding.Latin1.GetString(piece), out byte b))
            {
                bytes.Add(b);
            }
            else
            {
                // The encoder's dummy-prefix space is not part of the text.
                bytes.AddRange(first && piece.Length > 0 && piece[0] == (byte)' ' ? piece.AsSpan(1) : piece);
            }
            first = false;
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
