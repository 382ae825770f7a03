using AscendCC.Device.Kernels;
using NUnit.Framework;
using TorchSharp;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// Sampling: argmax and the filtered distribution against TorchSharp (softmax, topk, sort, cumsum), the
/// generator against an independent transcription of llama2.c's xorshift, determinism per seed, and a
/// seeded chi-square test of drawn frequencies against the distribution.
/// Distributions must agree within 1e-6 absolute: both are float32 softmaxes renormalised in float32.
/// </summary>
[Category(KernelTestData.Category)]
public class SamplingTests
{
    [Test]
    public void ArgmaxMatchesTorchIncludingFirstOfTies()
    {
        float[] ties = [1f, 5f, 3f, 5f, 5f, -2f];
        Assert.That(Sampling.Argmax(ties), Is.EqualTo(argmax(tensor(ties)).item<long>()).And.EqualTo(1));
        foreach (int n in new[] { 1, 3, 17, 1023, 32000 })
        {
            float[] logits = Normal(n, n, 3f);
            Assert.That(Sampling.Argmax(logits), Is.EqualTo(argmax(tensor(logits)).item<long>()), $"vocab {n}");
        }
    }

    [TestCase(67, 1.0f, 0, 1.0f)]
    [TestCase(67, 0.7f, 0, 1.0f)]
    [TestCase(67, 1.0f, 5, 1.0f)]
    [TestCase(67, 0.9f, 0, 0.8f)]
    [TestCase(67, 1.3f, 20, 0.6f)]
    [TestCase(3, 1.0f, 1, 1.0f)]
    [TestCase(32000, 0.8f, 40, 0.95f)]
    [TestCase(32000, 1.0f, 0, 0.9f)]
    [TestCase(32000, 0.6f, 0, 1.0f)]
    public void DistributionMatchesTorch(int vocab, float temperature, int topK, float topP)
    {
        float[] logits = Normal(vocab, vocab + topK, 3f);
        float[] expected = TorchDistribution(logits, temperature, topK, topP);
        var probs = new float[vocab];
        Sampling.SamplingDistribution(logits, temperature, topK, topP, probs);
        AssertClose(probs, expected, 1e-6, 0, $"distribution T={temperature} k={topK} p={topP}");
        Assert.That(probs.Count(p => p > 0), Is.EqualTo(expected.Count(p => p > 0)), "kept token count");
    }

    [Test]
    public void TemperatureZeroIsArgmaxAndLeavesTheGeneratorAlone()
    {
        float[] logits = Normal(1023, 5, 3f);
        ulong state = 42;
        Assert.That(Sampling.Sample(logits, 0f, 40, 0.9f, ref state), Is.EqualTo(argmax(tensor(logits)).item<long>()));
        Assert.That(state, Is.EqualTo(42UL));
        var probs = new float[logits.Length];
        Sampling.SamplingDistribution(logits, 0f, 0, 1f, probs);
        Assert.That(probs[Sampling.Argmax(logits)], Is.EqualTo(1f));
        Assert.That(probs.Sum(), Is.EqualTo(1f));
    }

    [Test]
    public void GeneratorMatchesLlama2c()
    {
        // Computed independently (Python big integers) from llama2.c's random_u32 / random_f32.
        ulong state = 42;
        Assert.That(Sampling.RandomU32(ref state), Is.EqualTo(1456360119u));
        Assert.That(Sampling.RandomU32(ref state), Is.EqualTo(3359763283u));
        state = 42;
        Assert.That(Sampling.RandomF32(ref state), Is.EqualTo(0.3390852212905884f));
    }

    [Test]
    public void SameSeedSameTokensDifferentSeedDifferentTokens()
    {
        float[] logits = Normal(32000, 77, 2f);
        int[] Draw(ulong seed)
        {
            var tokens = new int[64];
            for (int i = 0; i < tokens.Length; i++)
            {
                tokens[i] = Sampling.Sample(logits, 1.0f, 0, 0.95f, ref seed);
            }
            return tokens;
        }
        Assert.That(Draw(1234), Is.EqualTo(Draw(1234)));
        Assert.That(Draw(1234), Is.Not.EqualTo(Draw(1235)));
    }

    // Critical chi-square values at α = 0.001 for 1..15 degrees of freedom.
    private static readonly double[] ChiSquare999 = [10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91, 34.53, 36.12, 37.70];

    [TestCase(1.0f, 0, 1.0f)]
    [TestCase(0.8f, 8, 1.0f)]
    [TestCase(1.2f, 0, 0.85f)]
    [TestCase(1.0f, 10, 0.9f)]
    public void DrawnFrequenciesFollowTheDistribution(float temperature, int topK, float topP)
    {
        const int vocab = 16;
        const int draws = 4000;
        float[] logits = Normal(vocab, 2024, 1.2f);
        float[] expected = TorchDistribution(logits, temperature, topK, topP);
        var counts = new int[vocab];
        ulong state = 99;
        var scratch = new float[vocab];
        for (int i = 0; i < draws; i++)
        {
            counts[Sampling.Sample(logits, temperature, topK, topP, ref state, scratch)]++;
        }
        double chi2 = 0;
        int kept = 0;
        for (int t = 0; t < vocab; t++)
        {
            if (expected[t] == 0f)
            {
                Assert.That(counts[t], Is.Zero, $"token {t} was filtered out but drawn");
                continue;
            }
            kept++;
            double e = draws * (double)expected[t];
            chi2 += (counts[t] - e) * (counts[t] - e) / e;
        }
        Assume.That(kept, Is.GreaterThan(1), "a single kept token leaves nothing to test");
        Assert.That(chi2, Is.LessThan(ChiSquare999[kept - 2]), $"chi-square over {kept} tokens");
    }

    [Test]
    public void InvalidParametersAreRejected()
    {
        ulong state = 1;
        float[] logits = [1f, 2f];
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Sampling.Sample(logits, -1f, 0, 1f, ref state))!.ParamName, Is.EqualTo("temperature"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Sampling.Sample(logits, 1f, -1, 1f, ref state))!.ParamName, Is.EqualTo("topK"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => Sampling.Sample(logits, 1f, 0, 0f, ref state))!.ParamName, Is.EqualTo("topP"));
        Assert.That(Assert.Throws<ArgumentException>(() => Sampling.SamplingDistribution(logits, 1f, 0, 1f, new float[3]))!.ParamName, Is.EqualTo("probs"));
    }

    /// <summary>softmax(logits / T) → topk, renormalise → sort, cumsum, keep through the first cum ≥ topP, renormalise.</summary>
    private static float[] TorchDistribution(float[] logits, float temperature, int topK, float topP)
    {
        using var scope = NewDisposeScope();
        int n = logits.Length;
        var p = nn.functional.softmax(tensor(logits) / temperature, 0);
        Tensor values;
        Tensor indices;
        if (topK > 0 && topK < n)
        {
            (values, indices) = p.topk(topK);
            values = values / values.sum();
        }
        else
        {
            (values, indices) = p.sort(descending: true);
        }
        if (topP < 1f)
        {
            var reached = values.cumsum(0).ge(topP).nonzero();
            long keep = reached.shape[0] > 0 ? reached[0][0].item<long>() + 1 : values.shape[0];
            values = values.narrow(0, 0, keep);
            indices = indices.narrow(0, 0, keep);
            values = values / values.sum();
        }
        var full = zeros(n);
        full.scatter_(0, indices, values);
        return ToFloats(full);
    }
}
