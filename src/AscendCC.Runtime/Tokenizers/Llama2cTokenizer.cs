using System.Text;
using Microsoft.ML.Tokenizers;
using AscendCC.Runtime.Models;

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

    /// <summary>llama2.c's vocabulary spells BOS and EOS "\n&lt;s&gt;\n" and "\n&lt;/s&gt;\n"; a rendered template writes them as Llama's "&lt;s&gt;" and "&lt;/s&gt;".</summary>
    public override IReadOnlyDictionary<string, int> SpecialTokens { get; } = new Dictionary<string, int>(StringComparer.Ordinal) { ["<s>"] = Bos, ["</s>"] = Eos };

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
