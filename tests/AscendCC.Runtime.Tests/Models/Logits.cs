using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>The comparison every reference test makes of two logit vectors.</summary>
internal static class Logits
{
    /// <summary>The tolerance the references are held to (independent float64 implementations, 6 decimals).</summary>
    public const double Tolerance = 1e-4;

    /// <summary>Same length, and no element further than <paramref name="tolerance"/> from the reference (a NaN always fails).</summary>
    public static void AssertClose(float[] actual, float[] expected, string where, double tolerance = Tolerance)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), where);
        double worst = 0;
        int at = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Math.Abs(actual[i] - expected[i]);
            if (!(d <= worst))
            {
                worst = d;
                at = i;
            }
        }
        Assert.That(worst, Is.LessThanOrEqualTo(tolerance), $"{where}: largest logit difference {worst:g3} at {at}");
    }
}
