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
    // Where each user turn (with the BOS that opened its document, if any) starts in _tokens.
    private readonly List<int> _turnStarts = [];
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
        _turnStarts.Add(_tokens.Count);
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
        _turnStarts.RemoveAt(_turnStarts.Count - 1);
        _turnOpenedDocument = false;
    }

    /// <summary>Tokens of the latest user turn alone, with a BOS in front when the model takes one.</summary>
    public int LatestTurnAlone => _tokens.Count - _beforeTurn + (tokenizer.HasBos && !_turnOpenedDocument ? 1 : 0);

    /// <summary>
    /// Drops the oldest whole turns (each user turn with its reply), never the latest, until the
    /// context is at most <paramref name="maxTokens"/> tokens; the context keeps starting with BOS.
    /// Returns how many turns and tokens were dropped.
    /// </summary>
    public (int Turns, int Tokens) DropOldestTurns(int maxTokens)
    {
        int turns = 0, tokens = 0;
        while (_tokens.Count > maxTokens && _turnStarts.Count > 1)
        {
            int from = _turnStarts[0], to = _turnStarts[1];
            // The first turn's BOS opens the context: keep it unless the next turn brings its own.
            bool keepBos = tokenizer.HasBos && from < to && _tokens[from] == tokenizer.BosId && _tokens[to] != tokenizer.BosId;
            int start = keepBos ? from + 1 : from;
            int removed = to - start;
            _tokens.RemoveRange(start, removed);
            _turnStarts.RemoveAt(0);
            for (int i = 0; i < _turnStarts.Count; i++)
            {
                _turnStarts[i] -= removed;
            }
            _turnStarts[0] = from;
            _beforeTurn -= removed;
            turns++;
            tokens += removed;
        }
        return (turns, tokens);
    }

    public void AddReply(IReadOnlyList<int> reply)
    {
        _tokens.AddRange(reply);
        _endedWithStop = reply.Count > 0 && stopTokens.Contains(reply[^1]);
    }

    public void Reset()
    {
        _tokens.Clear();
        _turnStarts.Clear();
        _beforeTurn = 0;
        _turnOpenedDocument = false;
        _endedWithStop = false;
    }
}
