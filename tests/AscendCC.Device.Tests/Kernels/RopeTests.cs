using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using TorchSharp;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// Both RoPE conventions against TorchSharp transcriptions (Meta's view_as_complex pairing and Hugging
/// Face's rotate_half). The frequencies are llama2.c's float32 1/powf(theta, 2i/d), handed to torch so the
/// comparison isolates the rotation: torch then forms pos·freq and cos/sin in float32 as the kernel does,
/// leaving only cos/sin implementation differences (≈1 ulp of results ≤ 1) times |x| ≤ ~5: atol 2e-6, rtol 1e-5.
/// A second test pins the interleaved form bit for bit to llama2.c's scalar loop.
/// </summary>
[Category(KernelTestData.Category)]
public class RopeTests
{
    private const float Theta = 10000f;

    [TestCase(1, 1, 8, 0)]
    [TestCase(1, 8, 64, 511)]
    [TestCase(3, 4, 8, 17)]
    [TestCase(17, 2, 128, 1000)]
    [TestCase(300, 8, 64, 0)]
    [TestCase(67, 12, 64, 1981)]
    [TestCase(2048, 12, 64, 0)]
    public void InterleavedMatchesTorch(int seq, int heads, int headDim, int startPos)
    {
        float[] x = Normal(seq * heads * headDim, seq * 7 + headDim);
        int[] positions = Enumerable.Range(startPos, seq).ToArray();
        float[] expected = TorchRope(x, seq, heads, headDim, positions, interleaved: true);
        Rope.RopeInterleaved(AiCoreGrid.Shared, x, seq, heads, headDim, startPos, Theta);
        AssertClose(x, expected, 2e-6, 1e-5, "rope interleaved");
    }

    [TestCase(1, 1, 8, 0)]
    [TestCase(1, 8, 64, 511)]
    [TestCase(3, 4, 8, 17)]
    [TestCase(17, 2, 128, 1000)]
    [TestCase(300, 8, 64, 0)]
    [TestCase(67, 12, 64, 1981)]
    [TestCase(2048, 12, 64, 0)]
    public void HalfMatchesTorch(int seq, int heads, int headDim, int startPos)
    {
        float[] x = Normal(seq * heads * headDim, seq * 11 + headDim);
        int[] positions = Enumerable.Range(startPos, seq).ToArray();
        float[] expected = TorchRope(x, seq, heads, headDim, positions, interleaved: false);
        Rope.RopeHalf(AiCoreGrid.Shared, x, seq, heads, headDim, startPos, Theta);
        AssertClose(x, expected, 2e-6, 1e-5, "rope rotate_half");
    }

    [Test]
    public void ExplicitPositionsMatchTorch()
    {
        int[] positions = [5, 0, 2047, 7, 7];
        const int heads = 3;
        const int headDim = 32;
        float[] x = Normal(positions.Length * heads * headDim, 99);
        float[] y = (float[])x.Clone();
        float[] expectedInterleaved = TorchRope(x, positions.Length, heads, headDim, positions, interleaved: true);
        float[] expectedHalf = TorchRope(x, positions.Length, heads, headDim, positions, interleaved: false);
        Rope.RopeInterleaved(x, positions.Length, heads, headDim, positions, Theta);
        Rope.RopeHalf(y, positions.Length, heads, headDim, positions, Theta);
        AssertClose(x, expectedInterleaved, 2e-6, 1e-5, "rope interleaved at explicit positions");
        AssertClose(y, expectedHalf, 2e-6, 1e-5, "rope rotate_half at explicit positions");
    }

    /// <summary>
    /// rotate_half with the angles from the process's table (<see cref="RopeAngles"/>, positions below
    /// 8192) and formed in the launch (past it) gives the scalar formula's bits either way: explicit positions
    /// in any order, a table grown by a later, larger position, and two thetas whose tables must not mix.
    /// </summary>
    [TestCase(10000f)]
    [TestCase(500000f)]
    public void RotateHalfEqualsTheScalarFormulaExactlyInsideAndPastTheAngleTable(float theta)
    {
        const int heads = 3, headDim = 64, half = headDim / 2;
        foreach (int[] positions in new[] { new[] { 3, 0, 200 }, new[] { 8191, 3, 9000, 0, 600, RopeAngles.MaxPositions } })
        {
            float[] x = Normal(positions.Length * heads * headDim, positions.Length + (int)theta);
            float[] expected = (float[])x.Clone();
            for (int s = 0; s < positions.Length; s++)
            {
                for (int h = 0; h < heads; h++)
                {
                    int at = (s * heads + h) * headDim;
                    for (int i = 0; i < half; i++)
                    {
                        float freq = 1.0f / MathF.Pow(theta, (2 * i) / (float)headDim);
                        float val = positions[s] * freq;
                        float c = MathF.Cos(val), sn = MathF.Sin(val);
                        float a = expected[at + i], b = expected[at + half + i];
                        expected[at + i] = a * c - b * sn;
                        expected[at + half + i] = b * c + a * sn;
                    }
                }
            }
            Rope.RopeHalf(x, positions.Length, heads, headDim, positions, theta);
            Assert.That(x, Is.EqualTo(expected), $"positions {string.Join(", ", positions)}");
        }
    }

    [TestCase(8)]
    [TestCase(64)]
    [TestCase(128)]
    public void InterleavedEqualsLlama2cScalarLoopExactly(int headDim)
    {
        const int heads = 4;
        const int seq = 9;
        const int startPos = 1234;
        float[] x = Normal(seq * heads * headDim, headDim);
        float[] expected = (float[])x.Clone();
        int dim = heads * headDim;
        for (int s = 0; s < seq; s++)
        {
            int pos = startPos + s;
            // llama2.c run.c, forward(): the RoPE loop over one query row.
            for (int i = 0; i < dim; i += 2)
            {
                int headOffset = i % headDim;
                float freq = 1.0f / MathF.Pow(Theta, headOffset / (float)headDim);
                float val = pos * freq;
                float fcr = MathF.Cos(val);
                float fci = MathF.Sin(val);
                float v0 = expected[s * dim + i];
                float v1 = expected[s * dim + i + 1];
                expected[s * dim + i] = v0 * fcr - v1 * fci;
                expected[s * dim + i + 1] = v0 * fci + v1 * fcr;
            }
        }
        Rope.RopeInterleaved(x, seq, heads, headDim, startPos, Theta);
        Assert.That(x, Is.EqualTo(expected));
    }

    [Test]
    public void OddHeadDimIsRejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Rope.RopeHalf(new float[6], 1, 2, 3, 0, Theta));
        Assert.That(ex!.ParamName, Is.EqualTo("headDim"));
    }

    private static float[] BaseFrequencies(int headDim, float theta = Theta)
    {
        var freq = new float[headDim / 2];
        for (int i = 0; i < freq.Length; i++)
        {
            freq[i] = 1.0f / MathF.Pow(theta, (2 * i) / (float)headDim);
        }
        return freq;
    }

    // transformers' _compute_linear_scaling_rope_parameters / _compute_llama3_parameters, in float32 as it
    // computes them, from the same base frequencies the kernel starts from.
    private static float[] TransformersScaled(float[] baseFreq, RopeFrequencyScaling scaling)
    {
        using var scope = NewDisposeScope();
        var invFreq = tensor(baseFreq);
        double factor = scaling.Factor;
        if (scaling.Kind == RopeScalingKind.Linear)
        {
            return ToFloats(invFreq / factor);
        }
        double low = scaling.LowFreqFactor, high = scaling.HighFreqFactor, old = scaling.OriginalMaxPositions;
        var wavelen = 2 * Math.PI / invFreq;
        var llama = where(wavelen.gt(old / low), invFreq / factor, invFreq);
        var smooth = (old / wavelen - low) / (high - low);
        var smoothed = (1 - smooth) * llama / factor + smooth * llama;
        var medium = wavelen.lt(old / high).logical_not().logical_and(wavelen.gt(old / low).logical_not());
        return ToFloats(where(medium, smoothed, llama));
    }

    private static IEnumerable<TestCaseData> Scalings()
    {
        // Llama 3.1 (theta 500000, head_dim 128): all three bands are populated.
        // kind (1 linear, 2 llama3), factor, low, high, original context, head_dim, theta
        yield return new TestCaseData(2, 8.0, 1.0, 4.0, 8192.0, 128, 500000f).SetName("llama3, Llama 3.1 parameters");
        yield return new TestCaseData(2, 32.0, 1.5, 6.0, 2048.0, 64, 10000f).SetName("llama3, other parameters");
        yield return new TestCaseData(1, 4.0, 0.0, 0.0, 0.0, 64, 10000f).SetName("linear 4");
        yield return new TestCaseData(1, 2.5, 0.0, 0.0, 0.0, 128, 500000f).SetName("linear 2.5");
    }

    [TestCaseSource(nameof(Scalings))]
    public void ScaledFrequenciesMatchTransformersFloat32(int kind, double factor, double low, double high, double original, int headDim, float theta)
    {
        var scaling = new RopeFrequencyScaling((RopeScalingKind)kind, factor, low, high, original);
        float[] baseFreq = BaseFrequencies(headDim, theta);
        float[] expected = TransformersScaled(baseFreq, scaling);
        float[] actual = baseFreq.Select(scaling.Apply).ToArray();
        // The kernel rounds a double result once; torch rounds each float32 step: a few ulp apart.
        AssertClose(actual, expected, 0, 1e-6, "scaled inv_freq");
        Assert.That(actual.Zip(baseFreq).Count(p => p.First != p.Second), Is.GreaterThan(headDim / 8), "the scaling should change most frequencies");
        if (scaling.Kind == RopeScalingKind.Llama3)
        {
            Assert.That(actual[0], Is.EqualTo(baseFreq[0]), "the highest frequency is kept");
            Assert.That(actual[^1], Is.EqualTo(baseFreq[^1] / (float)scaling.Factor).Within(1).Ulps, "the lowest frequency is divided by the factor");
        }
    }

    [TestCaseSource(nameof(Scalings))]
    public void ScaledRopeMatchesTorchWithTheScaledFrequencies(int kind, double factor, double low, double high, double original, int headDim, float theta)
    {
        var scaling = new RopeFrequencyScaling((RopeScalingKind)kind, factor, low, high, original);
        const int seq = 40, heads = 3, startPos = 700;
        float[] x = Normal(seq * heads * headDim, headDim + 5);
        float[] y = (float[])x.Clone();
        int[] positions = Enumerable.Range(startPos, seq).ToArray();
        float[] freq = TransformersScaled(BaseFrequencies(headDim, theta), scaling);
        float[] expectedHalf = TorchRope(x, seq, heads, headDim, positions, interleaved: false, freq);
        float[] expectedInterleaved = TorchRope(x, seq, heads, headDim, positions, interleaved: true, freq);
        Rope.RopeHalf(AiCoreGrid.Shared, x, seq, heads, headDim, startPos, theta, scaling);
        Rope.RopeInterleaved(AiCoreGrid.Shared, y, seq, heads, headDim, startPos, theta, scaling);
        // A few ulp of frequency times positions up to 740 moves an angle by up to ~1e-4 rad.
        AssertClose(x, expectedHalf, 5e-4, 1e-4, "scaled rope rotate_half");
        AssertClose(y, expectedInterleaved, 5e-4, 1e-4, "scaled rope interleaved");
    }

    [Test]
    public void InvalidScalingThrows()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Rope.RopeHalf(new float[8], 1, 1, 8, 0, Theta, RopeFrequencyScaling.Linear(0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Rope.RopeHalf(new float[8], 1, 1, 8, 0, Theta, RopeFrequencyScaling.Llama3(8, 4, 4, 8192)));
    }

    private static float[] TorchRope(float[] x, int seq, int heads, int headDim, int[] positions, bool interleaved, float[]? frequencies = null)
    {
        int half = headDim / 2;
        float[] freq = frequencies ?? BaseFrequencies(headDim);
        using var scope = NewDisposeScope();
        var pos = tensor(positions.Select(p => (float)p).ToArray(), [seq, 1L]);
        var angles = (pos * tensor(freq, [1L, half])).unsqueeze(1); // [seq, 1, half]
        var cos = angles.cos();
        var sin = angles.sin();
        var t = tensor(x, [seq, heads, headDim]);
        Tensor rotated;
        if (interleaved)
        {
            var pairs = t.view(seq, heads, half, 2);
            var x0 = pairs.select(-1, 0);
            var x1 = pairs.select(-1, 1);
            rotated = stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).reshape(seq, heads, headDim);
        }
        else
        {
            var x1 = t.narrow(-1, 0, half);
            var x2 = t.narrow(-1, half, half);
            var rotateHalf = cat([-x2, x1], -1);
            rotated = t * cat([cos, cos], -1) + rotateHalf * cat([sin, sin], -1);
        }
        return ToFloats(rotated);
    }
}
