using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using TorchSharp;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// Activations against torch.nn.functional. Inputs are N(0, 3²), covering the saturated tails.
/// SiLU differs from torch's float32 result only through exp (≈1–2 ulp each side) and one division:
/// rtol 2e-6 (≈16 ulp), atol 1e-7 for results near 0. Both GELUs are checked against torch in float64,
/// because torch's float32 GELU cancels in 1 + erf / 1 + tanh for negative x (errors up to ~1e-6, and 0
/// where the true value is -1e-7) while ours does not. The erf form uses Abramowitz–Stegun's erfc
/// (|error| ≤ 1.5e-7), so |error| ≤ 0.5·|x|·1.5e-7 + rounding: atol 1e-6, rtol 2e-6. The tanh form has only
/// exp and division rounding: atol 1e-7, rtol 2e-6.
/// </summary>
[Category(KernelTestData.Category)]
public class ActivationsTests
{
    private static readonly int[] Sizes = [1, 3, 17, 67, 1023, 100_003];

    [TestCaseSource(nameof(Sizes))]
    public void ReluMatchesTorchExactly(int n)
    {
        float[] x = Normal(n, 10, 3f);
        using var expected = nn.functional.relu(tensor(x));
        var y = new float[n];
        Activations.Relu(AiCoreGrid.Shared, x, y);
        Assert.That(y, Is.EqualTo(ToFloats(expected)));
    }

    [TestCaseSource(nameof(Sizes))]
    public void SiluMatchesTorch(int n)
    {
        float[] x = Normal(n, 11, 3f);
        using var expected = nn.functional.silu(tensor(x));
        var y = new float[n];
        Activations.Silu(AiCoreGrid.Shared, x, y);
        AssertClose(y, ToFloats(expected), 1e-7, 2e-6, "silu");
        Activations.Silu(x, x);
        AssertClose(x, ToFloats(expected), 1e-7, 2e-6, "silu in place");
    }

    [TestCaseSource(nameof(Sizes))]
    public void GeluErfMatchesTorch(int n)
    {
        float[] x = Normal(n, 12, 3f);
        using var expected = nn.functional.gelu(tensor(x).to_type(ScalarType.Float64));
        var y = new float[n];
        Activations.Gelu(AiCoreGrid.Shared, x, y);
        AssertClose(y, ToFloats(expected), 1e-6, 2e-6, "gelu (erf)");
    }

    [TestCaseSource(nameof(Sizes))]
    public void GeluTanhMatchesTorch(int n)
    {
        float[] x = Normal(n, 13, 3f);
        using var expected = nn.functional.gelu(tensor(x).to_type(ScalarType.Float64), TorchSharp.Modules.GELU.Approximate.tanh);
        var y = new float[n];
        Activations.Gelu(x, y, approximateTanh: true);
        AssertClose(y, ToFloats(expected), 1e-7, 2e-6, "gelu (tanh)");
    }

    [TestCaseSource(nameof(Sizes))]
    public void SiluMulMatchesTorch(int n)
    {
        float[] gate = Normal(n, 14, 3f);
        float[] up = Normal(n, 15);
        using var expected = nn.functional.silu(tensor(gate)) * tensor(up);
        var y = new float[n];
        Activations.SiluMul(AiCoreGrid.Shared, gate, up, y);
        AssertClose(y, ToFloats(expected), 1e-7, 3e-6, "silu(gate) * up");
        Activations.SiluMul(gate, up, gate);
        AssertClose(gate, ToFloats(expected), 1e-7, 3e-6, "silu(gate) * up into gate");
    }

    [Test]
    public void ExtremeInputsSaturateWithoutNaN()
    {
        float[] x = [-1e4f, -100f, -30f, 0f, 30f, 100f, 1e4f];
        using var tx = tensor(x);
        using var tx64 = tx.to_type(ScalarType.Float64);
        var y = new float[x.Length];
        Activations.Silu(x, y);
        AssertClose(y, ToFloats(nn.functional.silu(tx)), 1e-7, 2e-6, "silu extremes");
        Activations.Gelu(x, y);
        AssertClose(y, ToFloats(nn.functional.gelu(tx64)), 1e-6, 2e-6, "gelu extremes");
        Activations.Gelu(x, y, approximateTanh: true);
        AssertClose(y, ToFloats(nn.functional.gelu(tx64, TorchSharp.Modules.GELU.Approximate.tanh)), 1e-7, 2e-6, "gelu tanh extremes");
    }
}
