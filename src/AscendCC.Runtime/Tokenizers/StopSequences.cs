using System.Text;

namespace AscendCC.Runtime.Tokenizers;

/// <summary>
/// Finds the first of a caller's stop strings (OpenAI's and ollama's <c>stop</c>, llama-cli's
/// <c>-r</c>) in a reply that arrives piece by piece (from <see cref="TextStreamDecoder"/>), wherever
/// token boundaries fall: text that could still be the start of a stop string is held back until the
/// next piece decides, and the stop string itself is never returned.
/// </summary>
public sealed class StopSequences
{
    private readonly string[] _stops;
    private readonly int _longest;
    private readonly StringBuilder _text = new();
    private int _shown;

    /// <summary>Watches for <paramref name="stops"/>.</summary>
    /// <param name="stops">The stop strings; empty ones are ignored.</param>
    public StopSequences(IEnumerable<string> stops)
    {
        ArgumentNullException.ThrowIfNull(stops);
        _stops = stops.Where(s => s.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
        _longest = _stops.Length == 0 ? 0 : _stops.Max(s => s.Length);
    }

    /// <summary>True once a stop string appeared: the reply ends there.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Where in the reply's text the stop string starts (valid once <see cref="Stopped"/>).</summary>
    public int StopAt { get; private set; }

    /// <summary>Length of the reply's text so far, stop string included.</summary>
    public int Length => _text.Length;

    /// <summary>Adds the next piece of the reply and returns the text that can be shown now.</summary>
    public string Push(string piece)
    {
        ArgumentNullException.ThrowIfNull(piece);
        if (Stopped)
        {
            return "";
        }
        _text.Append(piece);
        if (_stops.Length == 0)
        {
            return Show(_text.Length);
        }
        // A match can start at most longest - 1 characters before the text not yet shown.
        int from = Math.Max(0, _shown - (_longest - 1));
        string text = _text.ToString();
        int at = -1;
        foreach (string stop in _stops)
        {
            int i = text.IndexOf(stop, from, StringComparison.Ordinal);
            if (i >= 0 && (at < 0 || i < at))
            {
                at = i;
            }
        }
        if (at >= 0)
        {
            Stopped = true;
            StopAt = at;
            return Show(Math.Max(at, _shown));
        }
        return Show(text.Length - HeldBack(text));
    }

    /// <summary>The held-back text at the end of the reply, when no stop string completed it.</summary>
    public string Flush() => Stopped ? "" : Show(_text.Length);

    /// <summary>The longest end of <paramref name="text"/> that begins some stop string (and is not all of it).</summary>
    private int HeldBack(string text)
    {
        int keep = 0;
        foreach (string stop in _stops)
        {
            for (int k = Math.Min(stop.Length - 1, text.Length - _shown); k > keep; k--)
            {
                if (text.AsSpan(text.Length - k).SequenceEqual(stop.AsSpan(0, k)))
                {
                    keep = k;
                    break;
                }
            }
        }
        return keep;
    }

    private string Show(int upTo)
    {
        string piece = _text.ToString(_shown, upTo - _shown);
        _shown = upTo;
        return piece;
    }
}
