using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// <see cref="GgufQuantization.QuantizeQ4_K"/> on its own: what it writes dequantizes back near its
/// input, every value on the nearest level of its sub-block's stored grid; zeros stay zeros; sizes
/// that are not whole super-blocks are refused. (Its bytes against llama.cpp's: <see cref="Q4_KLlamaCppTests"/>.)
/// </summary>
public class Q4_KQuantizationTests
{
    private static ushort U16(byte[] x, int at) => (ushort)(x[at] | (x[at + 1] << 8));

    /// <summary>ggml's get_scale_min_k4, transcribed here: sub-block j's 6-bit scale and min from the 12 packed bytes at <paramref name="at"/>.</summary>
    private static (int Scale, int Min) ScaleMin(byte[] q, int at, int j) => j < 4
        ? (q[at + j] & 63, q[at + j + 4] & 63)
        : ((q[at + j + 4] & 0xF) | ((q[at + j - 4] >> 6) << 4), (q[at + j + 4] >> 4) | ((q[at + j] >> 6) << 4));

    /// <summary>Half an f16 ulp at <paramref name="h"/> (an f16 value): how far rounding to f16 moved it at most.</summary>
    private static double HalfUlp(float h) => Math.Max(Math.Abs(h) * Math.Pow(2, -11), Math.Pow(2, -25));

    private static float[] RandomInputs(int seed)
    {
        var rng = new Random(seed);
        var x = new List<float>();
        // Gaussian super-blocks of scales from 1e-3 to 10, with rare outliers.
        for (int b = 0; b < 48; b++)
        {
            double std = Math.Pow(10, rng.NextDouble() * 4 - 3);
            for (int i = 0; i < 256; i++)
            {
                double v = RandomLlamaCheckpoint.Gaussian(rng) * std;
                x.Add((float)(rng.Next(128) == 0 ? v * 6 : v));
            }
        }
        // Uniform super-blocks, one of each sign and one across zero.
        foreach ((double lo, double hi) in new[] { (0.1, 2.0), (-3.0, -0.5), (-1.0, 1.0) })
        {
            for (int i = 0; i < 256; i++)
            {
                x.Add((float)(lo + rng.NextDouble() * (hi - lo)));
            }
        }
        for (int k = 0; k < RandomLlamaCheckpoint.EdgeKinds; k++)
        {
            x.AddRange(RandomLlamaCheckpoint.EdgeSuperBlock(k, rng));
        }
        return x.ToArray();
    }

    [Test]
    public void QuantizeQ4_KRoundTripsWithinEachSubBlocksStep()
    {
        float[] x = RandomInputs(44);
        var q = new byte[x.Length / 256 * GgufTensorTypes.Q4_KBlockBytes];
        GgufQuantization.QuantizeQ4_K(x, q);
        var y = new float[x.Length];
        GgufQuantization.Dequantize(GgufTensorType.Q4_K, q, y);

        int steppedSubBlocks = 0, beyondOneStep = 0;
        double worst = 0;
        for (int b = 0; b < x.Length / 256; b++)
        {
            int at = b * GgufTensorTypes.Q4_KBlockBytes;
            float d = (float)BitConverter.UInt16BitsToHalf(U16(q, at));
            float dmin = (float)BitConverter.UInt16BitsToHalf(U16(q, at + 2));
            for (int j = 0; j < 8; j++)
            {
                (int sc, int m) = ScaleMin(q, at + 4, j);
                float step = d * sc, offset = dmin * m;
                for (int l = 0; l < 32; l++)
                {
                    int i = b * 256 + j * 32 + l;
                    // Element 32j + l sits in group j/2's byte l, low nibble for even j, high for odd.
                    int nibble = (q[at + 16 + (j / 2) * 32 + l] >> (j % 2 * 4)) & 0xF;
                    Assert.That(y[i], Is.EqualTo(step * nibble - offset), $"super-block {b}, sub-block {j}, element {l}: the dequantized value is its nibble on the stored grid");
                    if (step == 0)
                    {
                        // A step that rounds to zero leaves the sub-block at −dmin·m, its fitted min.
                        continue;
                    }
                    // Every value takes the grid level nearest it (ties either way): nothing in
                    // 0..15 is nearer than the nibble chosen, up to float rounding of x/step.
                    double error = Math.Abs(y[i] - (double)x[i]);
                    double slack = 1e-6 * (Math.Abs(x[i]) + Math.Abs(offset) + 16 * step);
                    for (int other = Math.Max(0, nibble - 1); other <= Math.Min(15, nibble + 1); other++)
                    {
                        Assert.That(error, Is.LessThanOrEqualTo(Math.Abs(step * (double)other - offset - x[i]) + slack),
                            $"super-block {b}, sub-block {j}, element {l} = {x[i]}: level {other} is nearer than the stored {nibble} (step {step}, offset {offset})");
                    }
                    // And the stored grid spans the sub-block: a value is at most one step off its level,
                    // plus how far rounding the sub-block's fitted scale and min to 6-bit multiples of
                    // the f16 d and dmin moves the grid (half a d per level over 15 levels, half a dmin).
                    double drift = 15 * (d / 2.0 + (sc + 1) * HalfUlp(d)) + dmin / 2.0 + (m + 1) * HalfUlp(dmin);
                    Assert.That(error, Is.LessThanOrEqualTo(step + drift + slack), $"super-block {b}, sub-block {j}, element {l} = {x[i]} → {y[i]} (step {step}, 6-bit drift {drift})");
                    worst = Math.Max(worst, error / (step + drift));
                    beyondOneStep += error > step ? 1 : 0;
                }
                steppedSubBlocks += step > 0 ? 1 : 0;
            }
        }
        TestContext.Out.WriteLine($"{steppedSubBlocks} of {x.Length / 32} sub-blocks with a nonzero step; worst error {worst:F3} of the bound; {beyondOneStep} values more than one step off (the 6-bit drift)");
        Assert.That(steppedSubBlocks, Is.GreaterThan(x.Length / 32 * 3 / 4), "most sub-blocks have a nonzero step (the check above is not vacuous)");
    }

    [Test]
    public void QuantizeQ4_KKeepsZerosConstantsAndOneSignedBlocks()
    {
        // Zeros, a positive constant, a negative constant, all positive, all negative.
        var rng = new Random(7);
        float[] x = [.. RandomLlamaCheckpoint.EdgeSuperBlock(0, rng), .. RandomLlamaCheckpoint.EdgeSuperBlock(1, rng), .. RandomLlamaCheckpoint.EdgeSuperBlock(2, rng),
            .. RandomLlamaCheckpoint.EdgeSuperBlock(3, rng), .. RandomLlamaCheckpoint.EdgeSuperBlock(4, rng)];
        var q = new byte[x.Length / 256 * GgufTensorTypes.Q4_KBlockBytes];
        GgufQuantization.QuantizeQ4_K(x, q);
        var y = new float[x.Length];
        GgufQuantization.Dequantize(GgufTensorType.Q4_K, q, y);
        Assert.Multiple(() =>
        {
            Assert.That(q.Take(GgufTensorTypes.Q4_KBlockBytes), Is.All.EqualTo((byte)0), "all-zero input: every byte zero");
            Assert.That(y.Take(256), Is.All.EqualTo(0f), "all-zero input dequantizes to zeros");
            // A constant is the top level of its grid (positive: min 0, 15 steps; negative: the min itself),
            // within the f16 rounding of d or dmin and the 6-bit scale.
            Assert.That(y.Skip(256).Take(256), Is.All.EqualTo(0.03f).Within(0.03 * 1e-3), "0.03 everywhere");
            Assert.That(y.Skip(512).Take(256), Is.All.EqualTo(-0.02f).Within(0.02 * 1e-3), "-0.02 everywhere");
            Assert.That(y.Skip(768).Take(256), Is.All.GreaterThan(0f), "one-signed positive stays positive");
            Assert.That(y.Skip(1024).Take(256), Is.All.LessThan(0f), "one-signed negative stays negative");
            for (int i = 768; i < 1280; i++)
            {
                // Within a step of a 16-level grid over at most 0.05.
                Assert.That(y[i], Is.EqualTo(x[i]).Within(0.05 / 15), $"element {i}");
            }
        });
    }

    [TestCase(255, 144)]
    [TestCase(256, 143)]
    [TestCase(256, 145)]
    [TestCase(512, 144)]
    [TestCase(0, 144)]
    [TestCase(288, 162)]
    public void QuantizeQ4_KRefusesWhatIsNotWholeSuperBlocks(int values, int bytes)
    {
        var e = Assert.Throws<ArgumentException>(() => GgufQuantization.QuantizeQ4_K(new float[values], new byte[bytes]));
        Assert.Multiple(() =>
        {
            Assert.That(e!.ParamName, Is.EqualTo("destination"));
            Assert.That(e.Message, Does.Contain($"{values} values").And.Contain($"{bytes} bytes").And.Contain("Q4_K"));
            Assert.That(e.Message, Does.Contain("pass a multiple of 256 values and 144 bytes per super-block"), "it says what to pass");
        });
    }

    [Test]
    public void QuantizeQ4_KOfNothingIsNothing() => Assert.DoesNotThrow(() => GgufQuantization.QuantizeQ4_K([], []));
}
