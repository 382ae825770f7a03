using AscendCC.Runtime.Chat;
using AscendCC.Runtime.Tokenizers;

namespace LlamaChat;

/// <summary>
/// The chat history as a running token context, re-sent whole every turn — the data owner seals the
/// whole context each time, so the device keeps no conversation state between turns. With a chat
/// template the history is a list of messages (the --system message, then user and assistant turns)
/// and the context is the template's rendering of them, rendered again from the kept messages after
/// every change; without one (raw completion) it is BOS, each turn's text and each continuation.
/// </summary>
internal sealed class Conversation
{
    private readonly TextTokenizer _tokenizer;
    private readonly ChatTemplate? _template;
    private readonly string? _system;
    private readonly IReadOnlyDictionary<string, object?>? _templateVariables;
    private readonly IReadOnlyCollection<int> _stopTokens;
    private readonly List<int> _tokens = [];
    // Raw completion: where each user turn (with the BOS that opened its document, if any) starts in _tokens.
    private readonly List<int> _turnStarts = [];
    // Chat template: the messages the context is rendered from.
    private readonly List<ChatTurn> _messages = [];
    private int _beforeTurn;
    private bool _turnOpenedDocument;
    private bool _endedWithStop;

    public Conversation(TextTokenizer tokenizer, ChatTemplate? template, IReadOnlyCollection<int> stopTokens, string? system = null, IReadOnlyDictionary<string, object?>? templateVariables = null)
    {
        _tokenizer = tokenizer;
        _template = template;
        _stopTokens = stopTokens;
        _system = system;
        _templateVariables = templateVariables;
        Reset();
    }

    public TextTokenizer Tokenizer => _tokenizer;

    public IReadOnlyCollection<int> StopTokens => _stopTokens;

    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>The chat template's rendering of the context (special tokens as text); null in raw completion.</summary>
    public string? RenderedPrompt { get; private set; }

    /// <summary>Index in <see cref="Tokens"/> where the latest user turn (with its BOS, if it opened a document) starts.</summary>
    public int TurnStart => _beforeTurn;

    /// <summary>
    /// Tokens of the latest user turn's text, BOS not counted: what llama2.c's -n counts of a prompt,
    /// which completion mode's --max-tokens follows.
    /// </summary>
    public int TurnTextTokens => _tokens.Count - _beforeTurn - (_turnOpenedDocument ? 1 : 0);

    public IReadOnlyList<int> AddUserTurn(string text)
    {
        if (_template is not null)
        {
            // TurnStart and TurnTextTokens serve raw completion's echo and -n; a templated turn has neither.
            _beforeTurn = 0;
            _messages.Add(ChatTurn.User(text));
            try
            {
                Render();
            }
            catch (ChatTemplateException)
            {
                // A turn the template refuses (e.g. Gemma's role alternation) leaves no trace.
                _messages.RemoveAt(_messages.Count - 1);
                Render();
                throw;
            }
            return _tokens;
        }
        _beforeTurn = _tokens.Count;
        _turnStarts.Add(_tokens.Count);
        // A reply that ended with end-of-sequence closed a document; the next turn opens a new one, as in training.
        // A tokenizer with no BOS (GPT-Neo's) starts a document with its first text token.
        bool newDocument = (_tokens.Count == 0 || _endedWithStop) && _tokenizer.HasBos;
        IReadOnlyList<int> encoded = _tokenizer.Encode(text, addBos: newDocument);
        if (encoded.Count == 0 && newDocument)
        {
            // An empty prompt generates from BOS alone, as llama2.c does.
            encoded = [_tokenizer.BosId];
        }
        _turnOpenedDocument = newDocument && encoded.Count > 0 && encoded[0] == _tokenizer.BosId;
        _tokens.AddRange(encoded);
        return _tokens;
    }

    public void UndoUserTurn()
    {
        if (_template is not null)
        {
            _messages.RemoveAt(_messages.Count - 1);
            Render();
            return;
        }
        _tokens.RemoveRange(_beforeTurn, _tokens.Count - _beforeTurn);
        _turnStarts.RemoveAt(_turnStarts.Count - 1);
        _turnOpenedDocument = false;
    }

    /// <summary>Tokens of the latest user turn alone (after the system message, if any), with a BOS in front when the model takes one.</summary>
    public int LatestTurnAlone => _template is not null
        ? Encode([.. _messages.Where(m => m.Role == "system"), _messages[^1]], addGenerationPrompt: true).Count
        : _tokens.Count - _beforeTurn + (_tokenizer.HasBos && !_turnOpenedDocument ? 1 : 0);

    /// <summary>
    /// Drops the oldest whole turns (each user turn with its reply), never the latest, until the
    /// context is at most <paramref name="maxTokens"/> tokens; the context keeps starting with BOS and,
    /// with a chat template, keeps the system message. Returns how many turns and tokens were dropped.
    /// </summary>
    public (int Turns, int Tokens) DropOldestTurns(int maxTokens)
    {
        return _template is not null ? DropOldestMessages(maxTokens) : DropOldestTokens(maxTokens);
    }

    private (int Turns, int Tokens) DropOldestMessages(int maxTokens)
    {
        int before = _tokens.Count, turns = 0;
        while (_tokens.Count > maxTokens)
        {
            int first = _messages.FindIndex(m => m.Role != "system");
            int next = _messages.FindIndex(first + 1, m => m.Role == "user");
            if (first < 0 || next < 0)
            {
                break;
            }
            _messages.RemoveRange(first, next - first);
            Render();
            turns++;
        }
        return (turns, before - _tokens.Count);
    }

    private (int Turns, int Tokens) DropOldestTokens(int maxTokens)
    {
        int turns = 0, tokens = 0;
        while (_tokens.Count > maxTokens && _turnStarts.Count > 1)
        {
            int from = _turnStarts[0], to = _turnStarts[1];
            // The first turn's BOS opens the context: keep it unless the next turn brings its own.
            bool keepBos = _tokenizer.HasBos && from < to && _tokens[from] == _tokenizer.BosId && _tokens[to] != _tokenizer.BosId;
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
        _endedWithStop = reply.Count > 0 && _stopTokens.Contains(reply[^1]);
        if (_template is not null)
        {
            // The reply's text becomes the assistant message; the template writes its end-of-turn token
            // when it renders the history, as it did in training.
            _messages.Add(ChatTurn.Assistant(_tokenizer.Decode(reply.Where(t => !_stopTokens.Contains(t))).Trim()));
            return;
        }
        _tokens.AddRange(reply);
    }

    public void Reset()
    {
        _tokens.Clear();
        _turnStarts.Clear();
        _messages.Clear();
        _beforeTurn = 0;
        _turnOpenedDocument = false;
        _endedWithStop = false;
        RenderedPrompt = null;
        if (_template is not null && _system is not null)
        {
            _messages.Add(ChatTurn.System(_system));
        }
    }

    private void Render()
    {
        if (_messages.All(m => m.Role == "system"))
        {
            // Nothing to answer yet; templates index messages[0] and may fail on a chat without a turn.
            _tokens.Clear();
            RenderedPrompt = null;
            return;
        }
        RenderedPrompt = _template!.Render(_messages, addGenerationPrompt: true, _templateVariables);
        _tokens.Clear();
        _tokens.AddRange(_tokenizer.Encode(RenderedPrompt, addBos: _tokenizer.HasBos && !_template.StartsWithBos(RenderedPrompt), parseSpecialTokens: true));
    }

    private IReadOnlyList<int> Encode(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt)
    {
        string rendered = _template!.Render(messages, addGenerationPrompt, _templateVariables);
        return _tokenizer.Encode(rendered, addBos: _tokenizer.HasBos && !_template.StartsWithBos(rendered), parseSpecialTokens: true);
    }
}
