using AscendCC.Device.Kernels;
using NUnit.Framework;
using TorchSharp;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// The repetition penalties and min-p against TorchSharp: the penalties as llama.cpp defines them,
/// written with gather / where / scatter over the distinct recent tokens and their counts; min-p as a
/// mask of softmax(logits) ≥ min_p × max. Exact: both do the same float32 operations per logit.
/// </summary>
[Category(KernelTestData.Category)]
public class SamplingPenaltiesTests
{
    [TestCase(67, 1.3f, 0f, 0f, 16)]
    [TestCase(67, 0.7f, 0f, 0f, 16)]
    [TestCase(67, 1f, 0.5f, 0f, 40)]
    [TestCase(67, 1f, 0f, 0.8f, 40)]
    [TestCase(32000, 1.1f, 0.2f, 0.3f, 64)]
    [TestCase(32000, 1.5f, 0f, 0f, 2048)]
    public void PenaltiesMatchTorch(int vocab, float repeat, float frequency, float presence, int window)
    {
        float[] logits = Normal(vocab, vocab + window, 3f);
        // A window with repeats (drawn from a small range) and ids at both ends of the vocabulary.
        var rng = new Random(window);
        int[] recent = [.. Enumerable.Range(0, window).Select(_ => rng.Next(Math.Min(vocab, 50))), 0, vocab - 1, 0];

        int[] distinct = [.. recent.Distinct()];
        long[] counts = [.. distinct.Select(t => (long)recent.Count(r => r == t))];
        using var t = tensor(logits);
        using var ids = tensor(distinct.Select(i => (long)i).ToArray());
        using var picked = t.gather(0, ids);
        using var penalised = where(picked <= 0f, picked * repeat, picked / repeat) - ((tensor(counts).to(float32) * frequency) + presence);
        using var expected = t.clone().scatter_(0, ids, penalised);

        float[] actual = (float[])logits.Clone();
        SamplingPenalties.Apply(actual, recent, repeat, frequency, presence);
        Assert.That(actual, Is.EqualTo(expected.data<float>().ToArray()));
        Assert.That(actual.Where((v, i) => v != logits[i]).Count(), Is.EqualTo(distinct.Length), "each distinct recent token changed once, nothing else");
    }

    [Test]
    public void OffPenaltiesAndAnEmptyWindowChangeNothing()
    {
        float[] logits = Normal(100, 3, 2f);
        float[] actual = (float[])logits.Clone();
        SamplingPenalties.Apply(actual, [1, 2, 3, 3], 1f, 0f, 0f);
        SamplingPenalties.Apply(actual, [], 1.5f, 1f, 1f);
        Assert.That(actual, Is.EqualTo(logits));
    }

    [Test]
    public void ATokenOutsideTheVocabularyIsIgnored()
    {
        float[] logits = [1f, -1f, 2f];
        SamplingPenalties.Apply(logits, [-1, 3, int.MaxValue, 1], 2f, 0f, 0f);
        Assert.That(logits, Is.EqualTo(new[] { 1f, -2f, 2f }));
    }

    [TestCase(67, 0.05f)]
    [TestCase(67, 0.5f)]
    [TestCase(32000, 0.1f)]
    [TestCase(32000, 1f)]
    public void MinPMatchesTorch(int vocab, float minP)
    {
        float[] logits = Normal(vocab, vocab * 3, 3f);
        using var t = tensor(logits);
        using var p = t.softmax(0);
        using var keep = p >= (p.max() * minP);
        using var expected = t.masked_fill(keep.logical_not(), float.NegativeInfinity);

        float[] actual = (float[])logits.Clone();
        SamplingPenalties.ApplyMinP(actual, minP);
        Assert.That(actual, Is.EqualTo(expected.data<float>().ToArray()));
        Assert.That(actual.Count(float.IsFinite), Is.GreaterThanOrEqualTo(1), "the most likely token always stays");
    }

    [Test]
    public void MinPZeroKeepsEveryToken()
    {
        float[] logits = Normal(50, 9, 3f);
        float[] actual = (float[])logits.Clone();
        SamplingPenalties.ApplyMinP(actual, 0f);
        Assert.That(actual, Is.EqualTo(logits));
    }

    [Test]
    public void InvalidSettingsAreRejectedByName()
    {
        float[] logits = [1f, 2f];
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => SamplingPenalties.Apply(logits, [0], 0f, 0f, 0f))!.ParamName, Is.EqualTo("repeatPenalty"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => SamplingPenalties.Apply(logits, [0], float.PositiveInfinity, 0f, 0f))!.ParamName, Is.EqualTo("repeatPenalty"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => SamplingPenalties.Apply(logits, [0], 1f, float.NaN, 0f))!.ParamName, Is.EqualTo("frequencyPenalty"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => SamplingPenalties.Apply(logits, [0], 1f, 0f, float.NegativeInfinity))!.ParamName, Is.EqualTo("presencePenalty"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => SamplingPenalties.ApplyMinP(logits, 1.5f))!.ParamName, Is.EqualTo("minP"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => SamplingPenalties.ApplyMinP(logits, -0.1f))!.ParamName, Is.EqualTo("minP"));
    }
}
