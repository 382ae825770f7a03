namespace AscendCC.Runtime.Tokenizers;

/// <summary>
/// Turns token ids into text one token at a time, as they are generated, so that the pieces printed
/// one after another read exactly as <see cref="TextTokenizer.Decode"/> of all the ids would.
/// </summary>
/// <remarks>
/// Decoding each token on its own does not do that: <see cref="TextTokenizer.Decode"/> removes the
/// leading space of the first piece (the encoder's dummy prefix), so words would run together, and a
/// character spread over several byte-fallback tokens would come out as replacement characters.
/// This decoder decodes each new token behind the token before it, returns only the text that token
/// added, and holds back an incomplete UTF-8 sequence until its last byte arrives.
/// </remarks>
/// <example>
/// <code>
/// var text = new TextStreamDecoder(tokenizer);
/// IReadOnlyList&lt;int&gt; prompt = tokenizer.Encode("Once upon a time");
/// Console.Write(text.Push(prompt));
/// foreach (int token in model.Generate(prompt, maxTokens: 60))
///     Console.Write(text.Push(token));
/// Console.WriteLine(text.Flush());
/// </code>
/// </example>
public sealed class TextStreamDecoder
{
    // Longest anchor kept: a long run of byte tokens is cut here rather than decoded again and again.
    private const int MaxAnchor = 32;

    private readonly TextTokenizer _tokenizer;
    private readonly List<int> _window = [];
    // Ids of _window before this index were emitted already: the last of them anchors the next decode.
    private int _pendingFrom;
    private string _anchorText = "";

    /// <summary>Creates a decoder that starts at the beginning of a text.</summary>
    public TextStreamDecoder(TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
    }

    /// <summary>
    /// Creates a decoder that continues after <paramref name="context"/> (for example the prompt, when
    /// only the generated text is to be printed); the context's own text is not returned.
    /// </summary>
    public TextStreamDecoder(TextTokenizer tokenizer, IEnumerable<int> context) : this(tokenizer)
    {
        ArgumentNullException.ThrowIfNull(context);
        Push(context);
        Flush();
    }

    /// <summary>Adds one token; returns the text it completes (empty while a UTF-8 character is incomplete).</summary>
    public string Push(int token)
    {
        _window.Add(token);
        string text = PendingText();
        // A trailing U+FFFD is what an unfinished multi-byte character decodes to; wait for the rest.
        return text.EndsWith('\uFFFD') ? "" : Emit(text);
    }

    /// <summary>Adds several tokens (a prompt, say); returns the text they complete.</summary>
    public string Push(IEnumerable<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var text = new System.Text.StringBuilder();
        foreach (int token in tokens)
        {
            text.Append(Push(token));
        }
        return text.ToString();
    }

    /// <summary>Returns whatever is held back (an incomplete character, as U+FFFD), for the end of the stream.</summary>
    public string Flush() => _window.Count > _pendingFrom ? Emit(PendingText()) : "";

    private string PendingText()
    {
        string all = _tokenizer.Decode(_window);
        // Decoding behind an anchor keeps the new pieces' leading spaces; the anchor's own text is cut off.
        return all.StartsWith(_anchorText, StringComparison.Ordinal) ? all[_anchorText.Length..] : all;
    }

    private string Emit(string text)
    {
        // Keep as the anchor the tail of the window from its last token that decodes cleanly on its
        // own: a lone byte-fallback byte or a special token is no anchor, as some decoders then drop
        // the next piece's leading space. The tail is short, so each step decodes a few ids, not the
        // whole stream.
        int start = Math.Max(0, _window.Count - MaxAnchor);
        for (int i = _window.Count - 1; i >= start; i--)
        {
            string alone = _tokenizer.Decode([_window[i]]);
            if (alone.Length > 0 && !alone.Contains('\uFFFD', StringComparison.Ordinal))
            {
                start = i;
                break;
            }
        }
        _window.RemoveRange(0, start);
        _pendingFrom = _window.Count;
        _anchorText = _tokenizer.Decode(_window);
        return text;
    }
}
