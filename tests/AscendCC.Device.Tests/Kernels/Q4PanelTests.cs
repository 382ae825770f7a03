using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using static AscendCC.Device.Tests.Kernels.QuantizedLinearTests;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// linear with Q4_0 and Q4_K weights in panels of sixteen rows (<see cref="ElementType.Q4_0Panels"/>,
/// <see cref="ElementType.Q4_KPanels"/>). The test
/// lays the panels out itself from the documented rule (panel p's block b, group h: strip 2p's 32 bytes
/// of group h, then strip 2p + 1's; the block's scales: strip 2p's eight, then 2p + 1's) from the strip form <see cref="QuantizedLinearTests.BlockReference"/>
/// writes, and holds the kernel to the same exact integer reference and TorchSharp bound as strips —
/// and to the strips' bits: the block sums are the same exact integers, scaled and added in the same order.
/// Q4_K's panels likewise, their records merged by the documented rule, against <see cref="Q4_KLinearTests.K4Reference"/>.
/// </summary>
[Category(KernelTestData.Category)]
[TestFixture]
public sealed class Q4PanelTests : IDisposable
{
    private readonly AiCoreGrid _twoCores = new(2);
    private readonly AiCoreGrid _oneCore = new(1);

    /// <summary>NUnit disposes the fixture after its last test.</summary>
    public void Dispose()
    {
        _twoCores.Dispose();
        _oneCore.Dispose();
    }

    private static Int8DotIsa[] SupportedIsas() => [.. Enum.GetValues<Int8DotIsa>().Where(Int8Dot.IsSupported)];

    /// <summary>Each shape [m, k, n] with and without a bias.</summary>
    private static IEnumerable<TestCaseData> Cases(int[][] shapes) =>
        shapes.SelectMany(s => WithAndWithoutBias.Select(withBias =>
            new TestCaseData(s[0], s[1], s[2], withBias).SetArgDisplayNames($"{s[0]}x{s[1]}x{s[2]}", withBias ? "bias" : "no bias")));

    private static readonly bool[] WithAndWithoutBias = [false, true];

    private static IEnumerable<TestCaseData> Shapes()
    {
        // Every token count of the GEMV (1..8, a loop each), the GEMM past eight (packing from panels);
        // one panel, panels fewer than cores, several per work block (n = 2064: 129 panels); k of one
        // block, of a scale-plane line's worth plus one (288), and past the GEMM's 256-deep slice (800).
        int[][] shapes =
        [
            [1, 32, 16], [1, 768, 2064], [2, 96, 48], [3, 288, 16], [4, 64, 144], [5, 32, 32], [6, 128, 160], [7, 800, 48], [8, 96, 2064],
            [9, 96, 32], [13, 288, 64], [33, 64, 16], [127, 256, 144], [3, 0, 16],
        ];
        return Cases(shapes);
    }

    [TestCaseSource(nameof(Shapes))]
    public void PanelsMatchTheExactIntegerReferenceTorchAndTheStripsBits(int m, int k, int n, bool withBias)
    {
        float[] x = KernelTestData.Normal(m * k, seed: (m * 11) + k);
        float[] w = KernelTestData.Normal(n * k, seed: n + (7 * k), std: 0.05f);
        float[] bias = withBias ? KernelTestData.Normal(n, seed: n + 2) : [];
        byte[] strips = BlockReference.QuantizeMatrix(ElementType.Q4_0, w, n, k);
        byte[] panels = Panels(strips, n, k);
        (double[] expected, double[] bound) = BlockReference.Linear(ElementType.Q4_0, x, strips, bias, m, k, n);
        (double[] torch, double[] activationBound) = TorchLinear(BlockReference.Dequantize(ElementType.Q4_0, strips, n, k), x, bias, m, k, n);

        foreach (Int8DotIsa isa in SupportedIsas())
        {
            foreach (AiCoreGrid grid in new[] { _twoCores, _oneCore })
            {
                string what = $"{isa} on {grid.CoreCount} cores";
                float[] y = Enumerable.Repeat(float.NaN, m * n).ToArray();
                LinearKernel.Linear(grid, x, panels, ElementType.Q4_0Panels, bias, y, m, k, n, Gemm.DefaultIsa, isa);
                AssertWithin(y, expected, bound, what + " vs the exact integer reference");
                AssertWithin(y, torch, [.. bound.Zip(activationBound, (a, b) => a + b)], what + " vs torch on the dequantized weights");
                float[] fromStrips = new float[m * n];
                LinearKernel.Linear(grid, x, strips, ElementType.Q4_0, bias, fromStrips, m, k, n, Gemm.DefaultIsa, isa);
                Assert.That(y, Is.EqualTo(fromStrips), what + ": the strips' bits");
            }
        }
    }

    private static IEnumerable<TestCaseData> KShapes()
    {
        // As Shapes, in whole super-blocks of 256 along k.
        int[][] shapes =
        [
            [1, 256, 16], [1, 768, 144], [2, 512, 48], [3, 256, 16], [4, 1280, 32], [5, 256, 16], [6, 256, 160], [7, 256, 64], [8, 512, 2064],
            [9, 256, 32], [13, 1280, 48], [33, 512, 16], [3, 0, 16],
        ];
        return Cases(shapes);
    }

    [TestCaseSource(nameof(KShapes))]
    public void Q4_KPanelsMatchTheExactIntegerReferenceTorchAndTheStripsBits(int m, int k, int n, bool withBias)
    {
        float[] x = KernelTestData.Normal(m * k, seed: (m * 13) + k);
        float[] bias = withBias ? KernelTestData.Normal(n, seed: n + 3) : [];
        byte[] gguf = Q4_KLinearTests.K4Reference.RandomBlocks(n, k, seed: n + (5 * k));
        byte[] strips = QuantizedWeightLayout.Q4_KFromGguf(gguf, n, k);
        byte[] panels = KPanels(strips, n, k);
        Assert.That(QuantizedWeightLayout.Q4_KPanelsFromQ4_K(strips, n, k), Is.EqualTo(panels), "the layout API writes the documented panels");
        (double[] expected, double[] bound) = Q4_KLinearTests.K4Reference.Linear(x, gguf, bias, m, k, n);
        (double[] torch, double[] activationBound) = TorchLinear([.. Q4_KLinearTests.K4Reference.Dequantize(gguf, n, k).Select(w => (double)w)], x, bias, m, k, n);

        foreach (Int8DotIsa isa in SupportedIsas())
        {
            foreach (AiCoreGrid grid in new[] { _twoCores, _oneCore })
            {
                string what = $"{isa} on {grid.CoreCount} cores";
                float[] y = Enumerable.Repeat(float.NaN, m * n).ToArray();
                LinearKernel.Linear(grid, x, panels, ElementType.Q4_KPanels, bias, y, m, k, n, Gemm.DefaultIsa, isa);
                AssertWithin(y, expected, bound, what + " vs the exact integer reference");
                AssertWithin(y, torch, [.. bound.Zip(activationBound, (a, b) => a + b)], what + " vs torch on the dequantized weights");
                float[] fromStrips = new float[m * n];
                LinearKernel.Linear(grid, x, strips, ElementType.Q4_K, bias, fromStrips, m, k, n, Gemm.DefaultIsa, isa);
                Assert.That(y, Is.EqualTo(fromStrips), what + ": the strips' bits");
            }
        }
    }

    [TestCase(1, 64, 64, 32, 32)]
    [TestCase(4, 288, 96, 16, 0)]
    [TestCase(8, 96, 2048, 256, 256)]
    [TestCase(12, 96, 64, 32, 32)]
    public void FusedPanelsGiveEachWeightTheStripsBits(int m, int k, int n0, int n1, int n2)
    {
        float[] x = KernelTestData.Normal(m * k, seed: 31 + m);
        int[] ns = [n0, n1, n2];
        byte[][] strips = [.. ns.Select((n, i) => BlockReference.QuantizeMatrix(ElementType.Q4_0, KernelTestData.Normal(n * k, seed: 40 + i, std: 0.05f), n, k))];
        byte[][] panels = [.. strips.Select((s, i) => Panels(s, ns[i], k))];
        foreach (Int8DotIsa isa in SupportedIsas())
        {
            float[][] y = [.. ns.Select(n => Enumerable.Repeat(float.NaN, m * n).ToArray())];
            LinearKernel.LinearFused(_twoCores, x, ElementType.Q4_0Panels, m, k, panels[0], y[0], n0, panels[1], y[1], n1, panels[2], y[2], n2, Gemm.DefaultIsa, isa);
            for (int i = 0; i < 3; i++)
            {
                float[] alone = new float[m * ns[i]];
                LinearKernel.Linear(_oneCore, x, strips[i], ElementType.Q4_0, [], alone, m, k, ns[i], Gemm.DefaultIsa, isa);
                Assert.That(y[i], Is.EqualTo(alone), $"{isa}, part {i}");
            }
        }
    }

    [TestCase(1, 256, 64, 32, 32)]
    [TestCase(5, 512, 2048, 256, 0)]
    [TestCase(8, 256, 96, 16, 48)]
    [TestCase(12, 256, 64, 32, 32)]
    public void FusedQ4_KPanelsGiveEachWeightTheStripsBits(int m, int k, int n0, int n1, int n2)
    {
        float[] x = KernelTestData.Normal(m * k, seed: 71 + m);
        int[] ns = [n0, n1, n2];
        byte[][] strips = [.. ns.Select((n, i) => QuantizedWeightLayout.Q4_KFromGguf(Q4_KLinearTests.K4Reference.RandomBlocks(n, k, seed: 80 + i), n, k))];
        byte[][] panels = [.. strips.Select((s, i) => KPanels(s, ns[i], k))];
        foreach (Int8DotIsa isa in SupportedIsas())
        {
            float[][] y = [.. ns.Select(n => Enumerable.Repeat(float.NaN, m * n).ToArray())];
            LinearKernel.LinearFused(_twoCores, x, ElementType.Q4_KPanels, m, k, panels[0], y[0], n0, panels[1], y[1], n1, panels[2], y[2], n2, Gemm.DefaultIsa, isa);
            for (int i = 0; i < 3; i++)
            {
                float[] alone = new float[m * ns[i]];
                LinearKernel.Linear(_oneCore, x, strips[i], ElementType.Q4_K, [], alone, m, k, ns[i], Gemm.DefaultIsa, isa);
                Assert.That(y[i], Is.EqualTo(alone), $"{isa}, part {i}");
            }
        }
    }

    /// <summary>A sequence's outputs do not change when others share its batch: each of eight tokens gets the bits it gets alone.</summary>
    [Test]
    public void PanelsGiveEveryTokenOfABatchTheBitsOfOneToken()
    {
        const int m = 8, k = 288, n = 96;
        float[] x = KernelTestData.Normal(m * k, seed: 51);
        byte[] panels = Panels(BlockReference.QuantizeMatrix(ElementType.Q4_0, KernelTestData.Normal(n * k, seed: 52, std: 0.05f), n, k), n, k);
        float[] bias = KernelTestData.Normal(n, seed: 53);
        float[] batch = new float[m * n];
        LinearKernel.Linear(_twoCores, x, panels, ElementType.Q4_0Panels, bias, batch, m, k, n);
        for (int t = 0; t < m; t++)
        {
            float[] one = new float[n];
            LinearKernel.Linear(_oneCore, x.AsSpan(t * k, k), panels, ElementType.Q4_0Panels, bias, one, 1, k, n);
            Assert.That(batch.AsSpan(t * n, n).ToArray(), Is.EqualTo(one), $"token {t}");
        }
    }

    [Test]
    public void TheLayoutApiWritesTheDocumentedPanelsAndRefusesWhatIsNotWholePanels()
    {
        const int n = 48, k = 96;
        byte[] strips = BlockReference.QuantizeMatrix(ElementType.Q4_0, KernelTestData.Normal(n * k, seed: 61), n, k);
        Assert.That(QuantizedWeightLayout.Q4_0PanelsFromQ4_0(strips, n, k), Is.EqualTo(Panels(strips, n, k)));

        var rows = Assert.Throws<ArgumentException>(() => QuantizedWeightLayout.Q4_0PanelsFromQ4_0(new byte[24 * 3 * 18], 24, k));
        Assert.That(rows!.Message, Does.Contain("24 rows").And.Contain("whole panels of 16"));
        var size = Assert.Throws<ArgumentException>(() => QuantizedWeightLayout.Q4_0PanelsFromQ4_0(strips.AsSpan(1).ToArray(), n, k));
        Assert.That(size!.Message, Does.Contain($"[{n}, {k}] Q4_0 matrix"));
        var kernel = Assert.Throws<ArgumentException>(() => LinearKernel.Linear(_twoCores, new float[k], new byte[24 * 3 * 18], ElementType.Q4_0Panels, [], new float[24], 1, k, 24));
        Assert.That(kernel!.Message, Does.Contain("24 rows").And.Contain("whole panels of 16"));
        var table = Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.EmbeddingGather(new byte[n * 3 * 18], ElementType.Q4_0Panels, [1], new float[k], n, k));
        Assert.That(table!.Message, Does.Contain("Q4_0Panels is a matrix layout"));
        var kRows = Assert.Throws<ArgumentException>(() => QuantizedWeightLayout.Q4_KPanelsFromQ4_K(new byte[QuantizedWeightLayout.Q4_KMatrixBytes(24, 256)], 24, 256));
        Assert.That(kRows!.Message, Does.Contain("24 rows").And.Contain("whole panels of 16"));
        var kTable = Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.EmbeddingGather(new byte[QuantizedWeightLayout.Q4_KMatrixBytes(16, 256)], ElementType.Q4_KPanels, [1], new float[256], 16, 256));
        Assert.That(kTable!.Message, Does.Contain("Q4_KPanels is a matrix layout"));
    }

    /// <summary>
    /// The documented panel form of a Q4_K strip-form matrix: the nibbles paired as Q4_0's, and per panel
    /// and super-block one 384-byte record merged from the two strips' 192-byte ones lane by lane:
    /// d f32[16], dmin f32[16], sc u8[8 blocks][16 rows], m u8[8][16].
    /// </summary>
    private static byte[] KPanels(byte[] strips, int rows, int cols)
    {
        int blocks = cols / 32, supers = cols / 256, quantPlane = rows * blocks * 16;
        byte[] panels = new byte[strips.Length];
        for (int p = 0; p < rows / 16; p++)
        {
            for (int half = 0; half < 2; half++)
            {
                int strip = (2 * p) + half;
                for (int b = 0; b < blocks; b++)
                {
                    for (int h = 0; h < 4; h++)
                    {
                        strips.AsSpan((((strip * blocks) + b) * 128) + (32 * h), 32).CopyTo(panels.AsSpan((((p * blocks) + b) * 256) + (64 * h) + (32 * half)));
                    }
                }
                for (int sb = 0; sb < supers; sb++)
                {
                    int from = quantPlane + (((strip * supers) + sb) * 192), to = quantPlane + (((p * supers) + sb) * 384);
                    strips.AsSpan(from, 32).CopyTo(panels.AsSpan(to + (32 * half)));
                    strips.AsSpan(from + 32, 32).CopyTo(panels.AsSpan(to + 64 + (32 * half)));
                    for (int j = 0; j < 8; j++)
                    {
                        strips.AsSpan(from + 64 + (8 * j), 8).CopyTo(panels.AsSpan(to + 128 + (16 * j) + (8 * half)));
                        strips.AsSpan(from + 128 + (8 * j), 8).CopyTo(panels.AsSpan(to + 256 + (16 * j) + (8 * half)));
                    }
                }
            }
        }
        return panels;
    }

    /// <summary>
    /// The documented panel form of a Q4_0 strip-form matrix: each pair of strips' blocks interleaved 32
    /// bytes at a time, and in the scale plane each pair's eight f16 scales of a block side by side.
    /// </summary>
    private static byte[] Panels(byte[] strips, int rows, int cols)
    {
        int blocks = cols / 32, scalePlane = rows * blocks * 16;
        byte[] panels = new byte[strips.Length];
        for (int p = 0; p < rows / 16; p++)
        {
            for (int b = 0; b < blocks; b++)
            {
                for (int half = 0; half < 2; half++)
                {
                    int strip = (2 * p) + half;
                    for (int h = 0; h < 4; h++)
                    {
                        strips.AsSpan((((strip * blocks) + b) * 128) + (32 * h), 32).CopyTo(panels.AsSpan((((p * blocks) + b) * 256) + (64 * h) + (32 * half)));
                    }
                    strips.AsSpan(scalePlane + (((strip * blocks) + b) * 16), 16).CopyTo(panels.AsSpan(scalePlane + (((p * blocks) + b) * 32) + (16 * half)));
                }
            }
        }
        return panels;
    }
}
