using AscendCC.Runtime.Models;
using LlamaChat.Demo;
using AscendCC.Runtime.Tokenizers;

namespace LlamaChat;

/// <summary>
/// The chat history as a running token context: BOS, each user turn (wrapped in the model's turn
/// format when it has one) and each reply, re-sent whole every turn — the data owner seals the whole
/// context each time, so the device keeps no conversation state between turns.
/// </summary>
internal sealed class Conversation(TextTokenizer tokenizer, ChatFormat? format, IReadOnlyCollection<int> stopTokens)
{
    private readonly List<int> _tokens = [];
    private int _beforeTurn;
    private bool _turnOpenedDocument;
    private bool _endedWithStop;

    public TextTokenizer Tokenizer => tokenizer;

    public IReadOnlyCollection<int> StopTokens => stopTokens;

    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>Index in <see cref="Tokens"/> where the latest user turn (with its BOS, if it opened a document) starts.</summary>
    public int TurnStart => _beforeTurn;

    /// <summary>
    /// Tokens of the latest user turn's text, BOS not counted: what llama2.c's -n counts of a prompt,
    /// which completion mode's --max-tokens follows.
    /// </summary>
    public int TurnTextTokens => _tokens.Count - _beforeTurn - (_turnOpenedDocument ? 1 : 0);

    public IReadOnlyList<int> AddUserTurn(string text)
    {
        _beforeTurn = _tokens.Count;
        string turn = format is null ? text : format.UserPrefix + text + format.AssistantPrefix;
        // A reply that ended with end-of-sequence closed a document; the next turn opens a new one, as in training.
        // A tokenizer with no BOS (GPT-Neo's) starts a document with its first text token.
        bool newDocument = (_tokens.Count == 0 || _endedWithStop) && tokenizer.HasBos;
        IReadOnlyList<int> encoded = tokenizer.Encode(turn, addBos: newDocument);
        if (encoded.Count == 0 && newDocument)
        {
            // An empty prompt generates from BOS alone, as llama2.c does.
            encoded = [tokenizer.BosId];
        }
        _turnOpenedDocument = newDocument && encoded.Count > 0 && encoded[0] == tokenizer.BosId;
        _tokens.AddRange(encoded);
        return _tokens;
    }

    public void UndoUserTurn()
    {
        _tokens.RemoveRange(_beforeTurn, _tokens.Count - _beforeTurn);
        _turnOpenedDocument = false;
    }

    public void AddReply(IReadOnlyList<int> reply)
    {
        _tokens.AddRange(reply);
        _endedWithStop = reply.Count > 0 && stopTokens.Contains(reply[^1]);
    }

    public void Reset()
    {
        _tokens.Clear();
        _beforeTurn = 0;
        _turnOpenedDocument = false;
        _endedWithStop = false;
    }
}
