namespace LlamaChat.Ui;

/// <summary>
/// Ctrl-C as a chat expects it: the first press during a reply stops that reply (the chat goes on
/// at the prompt); a second press during the same reply, or a press at the prompt, exits.
/// </summary>
public sealed class ReplyInterrupt
{
    private volatile bool _inReply;
    private volatile bool _requested;

    /// <summary>Whether the reply in progress was asked to stop.</summary>
    public bool Requested => _requested;

    /// <summary>A reply starts: a press now stops it.</summary>
    public void BeginReply()
    {
        _requested = false;
        _inReply = true;
    }

    /// <summary>The reply ended: a press now exits.</summary>
    public void EndReply() => _inReply = false;

    /// <summary>
    /// A Ctrl-C: true when it was taken as "stop the reply" (the process must not end), false when
    /// the process should end as Ctrl-C normally ends it.
    /// </summary>
    public bool Press()
    {
        if (_inReply && !_requested)
        {
            _requested = true;
            return true;
        }
        return false;
    }
}
