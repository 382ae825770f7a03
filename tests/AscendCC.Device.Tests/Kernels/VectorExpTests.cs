using System.Runtime.Intrinsics;
using AscendCC.Device.Kernels;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// The float exponential the softmax and SiLU kernels use, against double-precision <see cref="Math.Exp"/>
/// rounded to float: within 1 ulp everywhere e^x is a normal float, 0 and +∞ beyond the range as IEEE
/// float arithmetic gives them, and the special values of a score row (−∞ for a masked key).
/// </summary>
[Category(KernelTestData.Category)]
public class VectorExpTests
{
    [SetUp]
    public void RequireAvx512()
    {
        if (!VectorExp.IsSupported)
        {
            Assert.Ignore("VectorExp needs AVX-512F; this machine's kernels use CoreLib's exponential instead.");
        }
    }

    [Test]
    public void EveryFloatInTheNormalRangeIsWithinOneUlp()
    {
        // Every 97th float from −87.3 (e^x ≈ 2^−126) to 88.7 (just below float's largest): ~21 million values,
        // all exponents and mantissa patterns; plus every float in [−1, 1] near 0 where r is tiny.
        float worst = 0f, at = 0f;
        var lanes = new float[16];
        void Check(float x0, float x1, int step)
        {
            int b0 = BitConverter.SingleToInt32Bits(x0), b1 = BitConverter.SingleToInt32Bits(x1);
            // Walk the bit patterns of one sign at a time (for negatives, larger bits are more negative).
            int lo = Math.Min(b0, b1), hi = Math.Max(b0, b1);
            for (int b = lo; b <= hi; b += 16 * step)
            {
                for (int i = 0; i < 16; i++)
                {
                    lanes[i] = BitConverter.Int32BitsToSingle(Math.Min(hi, b + (i * step)));
                }
                float[] y = new float[16];
                VectorExp.Exp(Vector512.Create(lanes)).CopyTo(y);
                for (int i = 0; i < 16; i++)
                {
                    float expected = (float)Math.Exp(lanes[i]);
                    float ulps = Math.Abs(BitConverter.SingleToInt32Bits(y[i]) - BitConverter.SingleToInt32Bits(expected));
                    if (ulps > worst)
                    {
                        worst = ulps;
                        at = lanes[i];
                    }
                }
            }
        }
        Check(-87.3f, -0f, 97);
        Check(0f, 88.7f, 97);
        Check(-1e-3f, -0f, 1);
        Check(0f, 1e-3f, 1);
        Assert.That(worst, Is.LessThanOrEqualTo(1f), $"worst error {worst} ulp at x = {at:R}");
    }

    [Test]
    public void SpecialValuesAndTheEdgesOfTheRange()
    {
        float[] x = [float.NegativeInfinity, float.PositiveInfinity, float.NaN, -1000f, 1000f, 88.8f, 89.5f, -104f, -110f, 0f, -0f, -88f, -100f, -103f, float.MinValue, float.MaxValue];
        float[] y = new float[16];
        VectorExp.Exp(Vector512.Create(x)).CopyTo(y);
        Assert.Multiple(() =>
        {
            Assert.That(y[0], Is.EqualTo(0f), "e^−∞ (a masked key's weight)");
            Assert.That(y[1], Is.EqualTo(float.PositiveInfinity), "e^+∞");
            Assert.That(float.IsNaN(y[2]), Is.True, "e^NaN");
            Assert.That(y[3], Is.EqualTo(0f), "e^−1000");
            Assert.That(y[4], Is.EqualTo(float.PositiveInfinity), "e^1000");
            Assert.That(y[5], Is.EqualTo(float.PositiveInfinity), "e^88.8 overflows float");
            Assert.That(y[6], Is.EqualTo(float.PositiveInfinity), "e^89.5");
            Assert.That(y[7], Is.EqualTo(0f), "e^−104 is below the smallest denormal");
            Assert.That(y[8], Is.EqualTo(0f), "e^−110");
            Assert.That(y[9], Is.EqualTo(1f), "e^0");
            Assert.That(y[10], Is.EqualTo(1f), "e^−0");
            // Denormal results: within a few units of the smallest denormal's spacing.
            for (int i = 11; i <= 13; i++)
            {
                float expected = (float)Math.Exp(x[i]);
                Assert.That(Math.Abs(BitConverter.SingleToInt32Bits(y[i]) - BitConverter.SingleToInt32Bits(expected)), Is.LessThanOrEqualTo(2), $"e^{x[i]} (denormal range): {y[i]:R} against {expected:R}");
            }
            Assert.That(y[14], Is.EqualTo(0f), "e^float.MinValue");
            Assert.That(y[15], Is.EqualTo(float.PositiveInfinity), "e^float.MaxValue");
        });
    }
}
