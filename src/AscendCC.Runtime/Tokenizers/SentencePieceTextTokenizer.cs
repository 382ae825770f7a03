using System.Text;
using Google.Protobuf;
using Microsoft.ML.Tokenizers;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Tokenizers;

/// <summary>SentencePiece through Microsoft.ML.Tokenizers' LlamaTokenizer.</summary>
internal sealed class SentencePieceTextTokenizer(LlamaTokenizer tokenizer, byte[] model) : TextTokenizer
{
    public override int VocabSize => tokenizer.Vocabulary.Count;

    public override int BosId => tokenizer.BeginningOfSentenceId;

    public override int EosId => tokenizer.EndOfSentenceId;

    public override IReadOnlyDictionary<string, int> SpecialTokens { get; } = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        [tokenizer.BeginningOfSentenceToken] = tokenizer.BeginningOfSentenceId,
        [tokenizer.EndOfSentenceToken] = tokenizer.EndOfSentenceId,
        [tokenizer.UnknownToken] = tokenizer.UnknownId,
    };

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

    /// <summary>
    /// The pieces, scores and types of the SentencePiece ModelProto (field 1, repeated SentencePiece
    /// {1 piece, 2 score, 3 type}), as llama.cpp's converter copies them into GGUF.
    /// </summary>
    internal override GgufVocabulary ToGgufVocabulary()
    {
        var tokens = new List<string>();
        var scores = new List<float>();
        var types = new List<GgufTokenType>();
        var input = new CodedInputStream(model);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) != 1 || WireFormat.GetTagWireType(tag) != WireFormat.WireType.LengthDelimited)
            {
                input.SkipLastField();
                continue;
            }
            var piece = new CodedInputStream(input.ReadBytes().ToByteArray());
            string text = "";
            float score = 0;
            var type = GgufTokenType.Normal;
            uint t;
            while ((t = piece.ReadTag()) != 0)
            {
                switch (WireFormat.GetTagFieldNumber(t))
                {
                    case 1: text = piece.ReadString(); break;
                    case 2: score = piece.ReadFloat(); break;
                    case 3: type = (GgufTokenType)piece.ReadEnum(); break;
                    default: piece.SkipLastField(); break;
                }
            }
            tokens.Add(text);
            scores.Add(score);
            types.Add(type);
        }
        return new GgufVocabulary("llama", tokens, scores, types, BosId, EosId, tokenizer.UnknownId);
    }
}
