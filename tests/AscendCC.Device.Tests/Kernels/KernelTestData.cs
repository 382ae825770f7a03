using NUnit.Framework;
using TorchSharp;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>Seeded inputs and an element-wise closeness check that names the worst element.</summary>
internal static class KernelTestData
{
    /// <summary>
    /// The NUnit category of the kernel-against-TorchSharp fixtures, so a child process can re-run
    /// them on the portable paths (see PortableKernelPathTests).
    /// </summary>
    public const string Category = "Kernels";

    /// <summary>n samples of N(mean, std²) from a seeded generator (Box–Muller), so failures reproduce.</summary>
    public static float[] Normal(int n, int seed, float std = 1f, float mean = 0f)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1.0 - rng.NextDouble();
            double u2 = rng.NextDouble();
            x[i] = mean + std * (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
        }
        return x;
    }

    /// <summary>The tensor's elements as float32, in row-major order.</summary>
    public static float[] ToFloats(torch.Tensor t)
    {
        using var f = t.to_type(torch.ScalarType.Float32).contiguous();
        return f.data<float>().ToArray();
    }

    /// <summary>Asserts |actual - expected| ≤ atol + rtol·|expected| everywhere (NaN only where expected is NaN).</summary>
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), what + ": length");
        int failures = 0;
        int worst = -1;
        double worstExcess = double.NegativeInfinity;
        double maxAbs = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double a = actual[i];
            double e = expected[i];
            if (double.IsNaN(a) || double.IsNaN(e))
            {
                if (double.IsNaN(a) != double.IsNaN(e))
                {
                    failures++;
                    worst = i;
                    worstExcess = double.PositiveInfinity;
                }
                continue;
            }
            double err = Math.Abs(a - e);
            maxAbs = Math.Max(maxAbs, err);
            double excess = err - (atol + rtol * Math.Abs(e));
            if (excess > 0)
            {
                failures++;
            }
            if (excess > worstExcess)
            {
                worstExcess = excess;
                worst = i;
            }
        }
        Assert.That(failures, Is.Zero,
            $"{what}: {failures} of {actual.Length} elements outside atol={atol:g3}, rtol={rtol:g3}; max |err| {maxAbs:g3}; " +
            $"worst [{worst}] got {(worst >= 0 ? actual[worst] : float.NaN):r}, expected {(worst >= 0 ? expected[worst] : float.NaN):r}");
    }
}
