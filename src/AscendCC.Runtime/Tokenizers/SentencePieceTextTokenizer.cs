using System.Text;
using Microsoft.ML.Tokenizers;

namespace AscendCC.Runtime.Tokenizers;

/// <summary>SentencePiece through Microsoft.ML.Tokenizers' LlamaTokenizer.</summary>
internal sealed class SentencePieceTextTokenizer(LlamaTokenizer tokenizer) : TextTokenizer
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
}
