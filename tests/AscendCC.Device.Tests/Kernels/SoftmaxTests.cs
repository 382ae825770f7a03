using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// Row softmax against torch.nn.functional.softmax. Both subtract the row max and exponentiate in float32;
/// they differ by exp's few ulp and the summation order, so rtol 1e-5 (rows up to 2048 long accumulate
/// ~√n ulp of sum error) with atol 1e-9 for the tiny tail probabilities.
/// </summary>
[Category(KernelTestData.Category)]
public class SoftmaxTests
{
    [TestCase(1, 1)]
    [TestCase(1, 3)]
    [TestCase(3, 17)]
    [TestCase(5, 67)]
    [TestCase(67, 1023)]
    [TestCase(300, 512)]
    [TestCase(2048, 2048)]
    public void MatchesTorch(int rows, int cols)
    {
        float[] x = Normal(rows * cols, rows * 31 + cols, 4f);
        using var expected = nn.functional.softmax(tensor(x, [rows, cols]), -1);
        var y = new float[x.Length];
        SoftmaxKernels.Softmax(AiCoreGrid.Shared, x, y, rows, cols);
        AssertClose(y, ToFloats(expected), 1e-9, 1e-5, $"softmax [{rows}x{cols}]");
        SoftmaxKernels.Softmax(x, x, rows, cols);
        AssertClose(x, ToFloats(expected), 1e-9, 1e-5, $"softmax in place [{rows}x{cols}]");
    }

    [Test]
    public void LargeLogitsDoNotOverflow()
    {
        // exp(1000) overflows float32: a softmax that skipped the max subtraction would give NaN.
        float[] x = Normal(3 * 33, 7);
        for (int i = 0; i < x.Length; i++)
        {
            x[i] += i < 33 ? 1000f : i < 66 ? -1000f : 88f;
        }
        using var expected = nn.functional.softmax(tensor(x, [3, 33]), -1);
        var y = new float[x.Length];
        SoftmaxKernels.Softmax(x, y, 3, 33);
        AssertClose(y, ToFloats(expected), 1e-9, 1e-5, "softmax of large logits");
    }

    [Test]
    public void WrongLengthNamesTheOperand()
    {
        var ex = Assert.Throws<ArgumentException>(() => SoftmaxKernels.Softmax(new float[12], new float[11], 3, 4));
        Assert.That(ex!.ParamName, Is.EqualTo("y"));
        Assert.That(ex.Message, Does.Contain("12").And.Contain("11"));
    }
}
