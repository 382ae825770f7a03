using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using TorchSharp;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// RMSNorm against a TorchSharp transcription of Llama's (x · rsqrt(mean(x²) + eps) · w) in float32: the
/// statistic is a sum of up to 4096 terms in a different order, a few ulp apart, so rtol 1e-5 / atol 1e-6.
/// LayerNorm against torch.nn.functional.layer_norm in float64 (inputs rounded to float32 first), because
/// with mean-50 rows torch's own float32 statistics are off by ~1e-5 and would hide errors of ours.
/// </summary>
[Category(KernelTestData.Category)]
public class NormsTests
{
    [TestCase(1, 1)]
    [TestCase(1, 3)]
    [TestCase(3, 17)]
    [TestCase(5, 67)]
    [TestCase(2, 1023)]
    [TestCase(64, 4096)]
    [TestCase(2048, 768)]
    public void RmsNormMatchesLlamaFormula(int rows, int dim)
    {
        float[] x = Normal(rows * dim, dim, 2f);
        float[] w = Normal(dim, dim + 1, 0.5f, 1f);
        const float eps = 1e-5f;
        using var tx = tensor(x, [rows, dim]);
        using var expected = tx * rsqrt(tx.pow(2).mean([-1L], keepdim: true) + eps) * tensor(w);
        var y = new float[x.Length];
        Norms.RmsNorm(AiCoreGrid.Shared, x, w, y, rows, dim, eps);
        AssertClose(y, ToFloats(expected), 1e-6, 1e-5, $"rmsnorm [{rows}x{dim}]");
        Norms.RmsNorm(x, w, x, rows, dim, eps);
        AssertClose(x, ToFloats(expected), 1e-6, 1e-5, $"rmsnorm in place [{rows}x{dim}]");
    }

    [TestCase(1, 1)]
    [TestCase(3, 17)]
    [TestCase(5, 67)]
    [TestCase(2, 1023)]
    [TestCase(64, 4096)]
    [TestCase(2048, 768)]
    public void LayerNormMatchesTorch(int rows, int dim)
    {
        // A mean of 50 against a spread of 2 would wreck a one-pass E[x²] - E[x]² variance.
        float[] x = Normal(rows * dim, dim * 3, 2f, 50f);
        float[] w = Normal(dim, dim * 3 + 1, 0.5f, 1f);
        float[] b = Normal(dim, dim * 3 + 2, 0.5f);
        const float eps = 1e-5f;
        using var tx = tensor(x, [rows, dim]);
        using var scope = NewDisposeScope();
        var tx64 = tx.to_type(ScalarType.Float64);
        var expected = nn.functional.layer_norm(tx64, [dim], tensor(w).to_type(ScalarType.Float64), tensor(b).to_type(ScalarType.Float64), eps);
        var y = new float[x.Length];
        Norms.LayerNorm(AiCoreGrid.Shared, x, w, b, y, rows, dim, eps);
        // x - mean loses the low bits of x ≈ 50 (ulp 4e-6), scaled by 1/σ ≈ 0.5 and |w| ≲ 2.5.
        AssertClose(y, ToFloats(expected), 5e-6, 1e-5, $"layer_norm [{rows}x{dim}]");

        var plain = nn.functional.layer_norm(tx64, [dim], eps: eps);
        Norms.LayerNorm(x, default, default, y, rows, dim, eps);
        AssertClose(y, ToFloats(plain), 5e-6, 1e-5, $"layer_norm without affine [{rows}x{dim}]");
    }

    [Test]
    public void WrongWeightLengthNamesTheOperand()
    {
        var ex = Assert.Throws<ArgumentException>(() => Norms.RmsNorm(new float[8], new float[3], new float[8], 2, 4, 1e-5f));
        Assert.That(ex!.ParamName, Is.EqualTo("weight"));
    }
}
