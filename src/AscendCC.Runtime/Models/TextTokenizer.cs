using System.Text;
using Microsoft.ML.Tokenizers;

namespace AscendCC.Runtime.Models;

/// <summary>
/// Text to token ids and back for Llama-family models, whatever file the tokenizer came in:
/// SentencePiece <c>tokenizer.model</c>, Hugging Face <c>tokenizer.json</c> (SentencePiece-style BPE with
/// byte fallback as in Llama 2 / Mistral, or byte-level BPE as in Llama 3 / GPT-2 / Qwen) or llama2.c <c>tok*.bin</c>.
/// </summary>
public abstract class TextTokenizer
{
    private static readonly string[] FolderCandidates = ["tokenizer.json", "tokenizer.model", "tokenizer.bin"];

    /// <summary>Number of ids the tokenizer can produce.</summary>
    public abstract int VocabSize { get; }

    /// <summary>Beginning-of-sequence id.</summary>
    public abstract int BosId { get; }

    /// <summary>
    /// True when the tokenizer defines a beginning-of-sequence token that a sequence starts with (Llama's
    /// &lt;s&gt;); false for tokenizers whose models take none (GPT-2 style byte-level BPE, as GPT-Neo's).
    /// Encode with <c>addBos: tokenizer.HasBos</c> to start a sequence as the model was trained.
    /// </summary>
    public virtual bool HasBos => true;

    /// <summary>End-of-sequence id.</summary>
    public abstract int EosId { get; }

    /// <summary>Encodes <paramref name="text"/>, with BOS first when <paramref name="addBos"/>.</summary>
    public abstract IReadOnlyList<int> Encode(string text, bool addBos = true);

    /// <summary>Decodes ids to text: special tokens are dropped, byte pieces (&lt;0xNN&gt; byte fallback, or
    /// byte-level tokens) are joined into UTF-8, and the leading space the encoder prepends is removed.</summary>
    public abstract string Decode(IEnumerable<int> ids);

    /// <summary>
    /// Loads a tokenizer from a file or a model folder. A folder is searched for tokenizer.json, then
    /// tokenizer.model, then tokenizer.bin / tok*.bin; a file is recognised by its name (.json, .model, .bin).
    /// </summary>
    public static TextTokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = Path.GetFullPath(path);
        if (Directory.Exists(path))
        {
            string? found = FolderCandidates
                .Select(n => Path.Combine(path, n))
                .FirstOrDefault(File.Exists)
                ?? Directory.EnumerateFiles(path, "tok*.bin").Order(StringComparer.Ordinal).FirstOrDefault();
            return found is null
                ? throw new CheckpointFormatException(path, null, "contains no tokenizer.json, tokenizer.model or tok*.bin.", "Copy the model's tokenizer file into the folder or pass its path.")
                : Load(found);
        }
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer not found: {path}. Pass tokenizer.json, tokenizer.model, a llama2.c tok*.bin or a model folder.", path);
        }
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            return HuggingFaceBpeTokenizer.LoadFile(path);
        }
        if (path.EndsWith(".model", StringComparison.OrdinalIgnoreCase))
        {
            using var stream = File.OpenRead(path);
            return LoadSentencePiece(stream, path);
        }
        if (path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            return Llama2cTokenizer.LoadFile(path);
        }
        throw new CheckpointFormatException(path, null, "is not a recognised tokenizer file.", "Pass tokenizer.json (Hugging Face), tokenizer.model (SentencePiece) or tok*.bin (llama2.c).");
    }

    /// <summary>Loads a SentencePiece BPE model (Llama 2's tokenizer.model); <paramref name="source"/> names it in errors.</summary>
    public static TextTokenizer LoadSentencePiece(Stream modelStream, string source = "tokenizer.model")
    {
        ArgumentNullException.ThrowIfNull(modelStream);
        LlamaTokenizer tokenizer;
        try
        {
            tokenizer = LlamaTokenizer.Create(modelStream, addBeginOfSentence: true, addEndOfSentence: false);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or IOException or Google.Protobuf.InvalidProtocolBufferException)
        {
            throw new CheckpointFormatException(source, null, $"is not a SentencePiece BPE model ({e.Message}).", "Pass the tokenizer.model that came with the checkpoint.", e);
        }
        return new SentencePieceTextTokenizer(tokenizer);
    }

    /// <summary>Parses "&lt;0xNN&gt;" byte-fallback pieces.</summary>
    internal static bool TryParseBytePiece(ReadOnlySpan<char> piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.Slice(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out value);
    }
}

/// <summary>SentencePiece through Microsoft.ML.Tokenizers' LlamaTokenizer.</summary>
internal sealed class SentencePieceTextTokenizer(LlamaTokenizer tokenizer) : TextTokenizer
{
    public override int VocabSize => tokenizer.Vocabulary.Count;

    public override int BosId => tokenizer.BeginningOfSentenceId;

    public override int EosId => tokenizer.EndOfSentenceId;

    public override IReadOnlyList<int> Encode(string text, bool addBos = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        return tokenizer.EncodeToIds(text, addBeginningOfSentence: addBos, addEndOfSentence: false);
    }

    public override string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return tokenizer.Decode(ids, considerSpecialTokens: false);
    }
}

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

    private Llama2cTokenizer(byte[][] vocab, float[] scores)
    {
        _vocab = vocab;
        _scores = scores;
        // Pieces are byte strings; Latin-1 maps each byte to one char so lookups stay byte-exact.
        _lookup = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < vocab.Length; i++)
        {
            _lookup.TryAdd(Encoding.Latin1.GetString(vocab[i]), i);
        }
    }

    public override int VocabSize => _vocab.Length;

    public override int BosId => Bos;

    public override int EosId => Eos;

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
            tokens.Add(Bos);
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
                    tokens.Add(utf8[i] + ByteOffset);
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
            if (id is Bos or Eos || id == 0)
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
