using AscendCC.Runtime.Models;
using NUnit.Framework;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>Stop strings in a reply that arrives in pieces split anywhere.</summary>
public class StopSequencesTests
{
    private static (string Shown, StopSequences Stops) Feed(string[] stops, params string[] pieces)
    {
        var s = new StopSequences(stops);
        string shown = string.Concat(pieces.Select(s.Push)) + s.Flush();
        return (shown, s);
    }

    [Test]
    public void AStopStringSplitAcrossPiecesEndsTheReplyBeforeIt()
    {
        (string shown, StopSequences s) = Feed(["\nQ:"], "The answer is 4.", "\n", "Q", ": and", " more");
        Assert.That(shown, Is.EqualTo("The answer is 4."));
        Assert.That(s.Stopped, Is.True);
        Assert.That(s.StopAt, Is.EqualTo("The answer is 4.".Length));
    }

    [Test]
    public void TextThatOnlyBeganAStopStringIsShownOnceItDiverges()
    {
        var s = new StopSequences(["STOP"]);
        Assert.That(s.Push("go ST"), Is.EqualTo("go "), "\"ST\" may begin STOP: held back");
        Assert.That(s.Push("O"), Is.EqualTo(""));
        Assert.That(s.Push("P!"), Is.EqualTo(""), "completed: never shown");
        Assert.That(s.Stopped, Is.True);

        var t = new StopSequences(["STOP"]);
        Assert.That(t.Push("go ST") + t.Push("ART"), Is.EqualTo("go START"));
        Assert.That(t.Push(" ST") + t.Flush(), Is.EqualTo(" ST"), "the end of the reply releases what was held back");
        Assert.That(t.Stopped, Is.False);
    }

    [Test]
    public void TheEarliestOfSeveralStopsWinsAndEmptyOnesAreIgnored()
    {
        (string shown, StopSequences s) = Feed(["", "world", "lo w"], "hel", "lo world");
        Assert.That(shown, Is.EqualTo("hel"));
        Assert.That(s.StopAt, Is.EqualTo(3));
        (string all, StopSequences none) = Feed([], "no ", "stops");
        Assert.That((all, none.Stopped), Is.EqualTo(("no stops", false)));
    }

    [Test]
    public void AStopInsideOnePieceShowsTheTextBeforeItOnly()
    {
        (string shown, _) = Feed(["</s>"], "one two</s> three");
        Assert.That(shown, Is.EqualTo("one two"));
    }
}
