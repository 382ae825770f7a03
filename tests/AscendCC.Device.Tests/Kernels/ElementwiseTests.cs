using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// Add, Mul and Scale are single correctly rounded IEEE operations in both implementations, so they must
/// equal TorchSharp bit for bit. 100_003 elements exercise the grid split (above the parallel threshold)
/// with a ragged last block and a scalar tail.
/// </summary>
[Category(KernelTestData.Category)]
public class ElementwiseTests
{
    private static readonly int[] Sizes = [1, 3, 17, 67, 1023, 100_003];

    [TestCaseSource(nameof(Sizes))]
    public void AddMulScaleMatchTorchExactly(int n)
    {
        float[] a = Normal(n, 1);
        float[] b = Normal(n, 2);
        using var ta = tensor(a);
        using var tb = tensor(b);
        using var sum = ta + tb;
        using var product = ta * tb;
        using var scaled = ta * 0.37f;

        var y = new float[n];
        Elementwise.Add(a, b, y);
        Assert.That(y, Is.EqualTo(ToFloats(sum)), "Add");
        Elementwise.Mul(AiCoreGrid.Shared, a, b, y);
        Assert.That(y, Is.EqualTo(ToFloats(product)), "Mul (grid)");
        Elementwise.Scale(a, 0.37f, y);
        Assert.That(y, Is.EqualTo(ToFloats(scaled)), "Scale");
        Elementwise.Scale(AiCoreGrid.Shared, a, 0.37f, y);
        Assert.That(y, Is.EqualTo(ToFloats(scaled)), "Scale (grid)");
        Elementwise.Add(AiCoreGrid.Shared, a, b, y);
        Assert.That(y, Is.EqualTo(ToFloats(sum)), "Add (grid)");
    }

    [TestCaseSource(nameof(Sizes))]
    public void ResidualAddInPlaceAndAliasedOutputs(int n)
    {
        float[] x = Normal(n, 3);
        float[] r = Normal(n, 4);
        using var expected = tensor(x) + tensor(r);
        using var expectedProduct = expected * tensor(r);

        var h = (float[])x.Clone();
        Elementwise.AddInPlace(AiCoreGrid.Shared, h, r);
        Assert.That(h, Is.EqualTo(ToFloats(expected)), "AddInPlace");
        Elementwise.Mul(h, r, h);
        Assert.That(h, Is.EqualTo(ToFloats(expectedProduct)), "Mul with y aliasing a");
    }

    [Test]
    public void LengthMismatchNamesTheOperand()
    {
        var ex = Assert.Throws<ArgumentException>(() => Elementwise.Add(new float[4], new float[3], new float[4]));
        Assert.That(ex!.ParamName, Is.EqualTo("b"));
        Assert.That(ex.Message, Does.Contain("4").And.Contain("3"));
        ex = Assert.Throws<ArgumentException>(() => Elementwise.Scale(new float[4], 2f, new float[5]));
        Assert.That(ex!.ParamName, Is.EqualTo("y"));
    }

    [Test]
    public void ShiftedOverlapIsRejected()
    {
        var buffer = new float[20];
        var ex = Assert.Throws<ArgumentException>(() => Elementwise.Scale(buffer.AsSpan(0, 16), 2f, buffer.AsSpan(1, 16)));
        Assert.That(ex!.ParamName, Is.EqualTo("y"));
    }
}
