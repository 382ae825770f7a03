using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// Matrix kernels against TorchSharp on the CPU. References are computed by TorchSharp in float64 from
/// the very f32 inputs the kernel sees (half weights: rounded to bf16/f16 by TorchSharp, then widened),
/// so the only difference left is the kernel's own f32 rounding. Tolerance, per output element:
///   |ours − ref| ≤ 2·u·√k·Σ_p |a_ip·b_pj| + 1e-30,   u = 2^-24 (f32 unit roundoff).
/// Summation rounding errors are bounded by k·u·Σ|a·b| (Higham, worst case) and behave like a random
/// walk, √k·u·Σ|a·b|, in practice; the factor 2 leaves room for FMA/non-FMA and blocking differences
/// while a single wrong, missing or doubled term (≥ ~1e-2 for these inputs) is far outside it.
/// </summary>
[Category(KernelTestData.Category)]
[TestFixture]
public sealed class MatMulTests : IDisposable
{
    // Fixed core counts so results do not depend on the machine: two workers exercise the parallel
    // split and the atomic block hand-out, one core the inline path.
    private readonly AiCoreGrid _twoCores = new(2);
    private readonly AiCoreGrid _oneCore = new(1);

    /// <summary>NUnit disposes the fixture after its last test.</summary>
    public void Dispose()
    {
        _twoCores.Dispose();
        _oneCore.Dispose();
    }

    private static readonly GemmIsa[] Isas = Vector512Available() ? [GemmIsa.Vector512, GemmIsa.Vector256] : [GemmIsa.Vector256];

    private static bool Vector512Available() => System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated;

    private static IEnumerable<TestCaseData> MatMulShapes()
    {
        int[][] shapes =
        [
            [1, 1, 1], [7, 13, 5], [33, 65, 17], [127, 255, 129], [1, 768, 2048], [2048, 256, 256],
            [12, 256, 32], [25, 257, 97], [20, 600, 4130], [3, 0, 5],
        ];
        foreach (int[] s in shapes)
        {
            foreach (GemmIsa isa in Isas)
            {
                yield return new TestCaseData(s[0], s[1], s[2], isa.ToString()).SetArgDisplayNames($"{s[0]}x{s[1]}x{s[2]}", isa.ToString());
            }
        }
    }

    [TestCaseSource(nameof(MatMulShapes))]
    public void MatMulMatchesTorchMm(int m, int k, int n, string isaName)
    {
        GemmIsa isa = Enum.Parse<GemmIsa>(isaName);
        float[] a = RandomValues(m * k, seed: m * 31 + k);
        float[] b = RandomValues(k * n, seed: n * 17 + k);
        using var scope = NewDisposeScope();
        Tensor ta = tensor(a, m, k).to(float64);
        Tensor tb = tensor(b, k, n).to(float64);
        double[] expected = mm(ta, tb).data<double>().ToArray();
        double[] magnitude = mm(ta.abs(), tb.abs()).data<double>().ToArray();

        // The single-core schedule (one work unit per row block) only needs the smaller shapes.
        AiCoreGrid[] grids = (long)m * k * n <= 1L << 22 ? [_twoCores, _oneCore] : [_twoCores];
        foreach (AiCoreGrid grid in grids)
        {
            float[] c = new float[m * n];
            c.AsSpan().Fill(float.NaN);
            MatMulKernel.MatMul(grid, a, b, c, m, k, n, isa);
            AssertClose(c, expected, magnitude, k, $"grid of {grid.CoreCount}");
        }
    }

    [TestCase(3, 33, 65, 17, false)]
    [TestCase(3, 33, 65, 17, true)]
    [TestCase(16, 64, 64, 64, false)]
    [TestCase(16, 64, 64, 64, true)]
    [TestCase(2, 200, 300, 100, false)]
    [TestCase(2, 200, 300, 100, true)]
    [TestCase(5, 1, 7, 1, true)]
    public void BatchMatMulMatchesTorchBmm(int batch, int m, int k, int n, bool transposeB)
    {
        float[] a = RandomValues(batch * m * k, seed: 11);
        float[] b = RandomValues(batch * k * n, seed: 12);
        using var scope = NewDisposeScope();
        Tensor ta = tensor(a, batch, m, k).to(float64);
        Tensor tb = transposeB ? tensor(b, batch, n, k).to(float64).transpose(1, 2) : tensor(b, batch, k, n).to(float64);
        double[] expected = bmm(ta, tb).data<double>().ToArray();
        double[] magnitude = bmm(ta.abs(), tb.abs()).data<double>().ToArray();

        foreach (GemmIsa isa in Isas)
        {
            float[] c = new float[batch * m * n];
            c.AsSpan().Fill(float.NaN);
            MatMulKernel.BatchMatMul(_twoCores, a, b, c, batch, m, k, n, transposeB, isa);
            AssertClose(c, expected, magnitude, k, isa.ToString());
        }
    }

    private static IEnumerable<TestCaseData> LinearShapes()
    {
        // m ≤ 8 (LinearKernel.GemvMaxRows; a batched decode step) runs the streaming GEMV — eight
        // tokens, four, two and one at a time, so m = 5..8 take every path and their tails in k and n;
        // one token alone, and two, read row after row (tails in k: 45, 100, 1000) — and larger m the packed GEMM.
        int[][] shapes =
        [
            [1, 1, 1], [1, 768, 2048], [1, 45, 13], [1, 100, 37], [3, 13, 7], [4, 33, 65], [2, 1000, 37], [2, 45, 13], [4, 512, 36], [5, 13, 7],
            [6, 33, 9], [7, 100, 21], [8, 45, 13], [8, 768, 130], [9, 40, 12],
            [33, 65, 17], [127, 255, 129], [2048, 256, 256], [3, 0, 5],
        ];
        foreach (int[] s in shapes)
        {
            foreach (ElementType type in new[] { ElementType.F32, ElementType.BF16, ElementType.F16 })
            {
                foreach (bool withBias in new[] { false, true })
                {
                    yield return new TestCaseData(s[0], s[1], s[2], type.ToString(), withBias)
                        .SetArgDisplayNames($"{s[0]}x{s[1]}x{s[2]}", type.ToString(), withBias ? "bias" : "no bias");
                }
            }
        }
    }

    [TestCaseSource(nameof(LinearShapes))]
    public void LinearMatchesTorchLinear(int m, int k, int n, string wTypeName, bool withBias)
    {
        ElementType wType = Enum.Parse<ElementType>(wTypeName);
        float[] x = RandomValues(m * k, seed: m + 3 * k);
        float[] w = RandomValues(n * k, seed: n + 5 * k);
        float[] bias = withBias ? RandomValues(n, seed: n) : [];
        byte[] wBytes = Encode(w, wType);

        using var scope = NewDisposeScope();
        Tensor tx = tensor(x, m, k).to(float64);
        Tensor tw = tensor(w, n, k);
        tw = wType switch
        {
            ElementType.BF16 => tw.to(bfloat16).to(float32),
            ElementType.F16 => tw.to(float16).to(float32),
            _ => tw,
        };
        tw = tw.to(float64);
        Tensor? tb = withBias ? tensor(bias).to(float64) : null;
        double[] expected = nn.functional.linear(tx, tw, tb).data<double>().ToArray();
        double[] magnitude = nn.functional.linear(tx.abs(), tw.abs(), tb?.abs()).data<double>().ToArray();

        foreach (GemmIsa isa in Isas)
        {
            float[] y = new float[m * n];
            y.AsSpan().Fill(float.NaN);
            LinearKernel.Linear(_twoCores, x, wBytes, wType, bias, y, m, k, n, isa);
            AssertClose(y, expected, magnitude, k, isa.ToString());
        }
    }

    private static IEnumerable<TestCaseData> FusedShapes()
    {
        // (m, k, n0, n1, n2): decode (GEMV path, one launch) and prefill (GEMM per weight); q/k/v with
        // GQA-sized k/v, gate/up with no third part, odd row counts that straddle block boundaries.
        foreach (string t in new[] { "F32", "BF16", "F16" })
        {
            yield return new TestCaseData(1, 64, 64, 16, 16, t);
            yield return new TestCaseData(2, 96, 37, 5, 11, t);
            yield return new TestCaseData(4, 128, 172, 172, 0, t);
            yield return new TestCaseData(7, 80, 48, 24, 24, t);
            yield return new TestCaseData(8, 96, 40, 8, 9, t);
        }
    }

    [TestCaseSource(nameof(FusedShapes))]
    public void LinearFusedMatchesTorchLinearPerWeight(int m, int k, int n0, int n1, int n2, string wTypeName)
    {
        ElementType wType = Enum.Parse<ElementType>(wTypeName);
        float[] x = RandomValues(m * k, seed: 11 + m);
        int[] ns = [n0, n1, n2];
        float[][] w = [.. ns.Select((n, i) => RandomValues(n * k, seed: 100 + i + n))];
        byte[][] wBytes = [.. w.Select(v => Encode(v, wType))];

        using var scope = NewDisposeScope();
        Tensor tx = tensor(x, m, k).to(float64);
        var expected = new double[3][];
        var magnitude = new double[3][];
        for (int i = 0; i < 3; i++)
        {
            if (ns[i] == 0)
            {
                continue;
            }
            Tensor tw = tensor(w[i], ns[i], k);
            tw = wType switch
            {
                ElementType.BF16 => tw.to(bfloat16).to(float32),
                ElementType.F16 => tw.to(float16).to(float32),
                _ => tw,
            };
            tw = tw.to(float64);
            expected[i] = nn.functional.linear(tx, tw).data<double>().ToArray();
            magnitude[i] = nn.functional.linear(tx.abs(), tw.abs()).data<double>().ToArray();
        }

        foreach (GemmIsa isa in Isas)
        {
            float[][] y = [.. ns.Select(n => Enumerable.Repeat(float.NaN, m * n).ToArray())];
            LinearKernel.LinearFused(_twoCores, x, wType, m, k, wBytes[0], y[0], n0, wBytes[1], y[1], n1, wBytes[2], y[2], n2, isa);
            for (int i = 0; i < 3; i++)
            {
                if (ns[i] != 0)
                {
                    AssertClose(y[i], expected[i], magnitude[i], k, $"{isa} part {i}");
                }
            }
        }
    }

    private static IEnumerable<TestCaseData> PanelShapes()
    {
        // BF16Panels (rows in whole panels of 32): every token count of the panel GEMV (1..8), tails
        // of nothing (panels have none along k), and the GEMM beyond eight rows, whose packing reads
        // the panels directly; several panels per block and fewer panels than cores.
        int[][] shapes =
        [
            [1, 1, 32], [1, 768, 64], [2, 45, 32], [3, 100, 96], [4, 33, 64], [5, 13, 32], [6, 64, 160], [7, 100, 32],
            [8, 768, 128], [8, 45, 1024], [9, 40, 32], [33, 65, 64], [127, 255, 128], [300, 256, 96], [3, 0, 32],
        ];
        foreach (int[] s in shapes)
        {
            foreach (bool withBias in new[] { false, true })
            {
                yield return new TestCaseData(s[0], s[1], s[2], withBias).SetArgDisplayNames($"{s[0]}x{s[1]}x{s[2]}", withBias ? "bias" : "no bias");
            }
        }
    }

    [TestCaseSource(nameof(PanelShapes))]
    public void LinearWithPanelsMatchesTorchLinear(int m, int k, int n, bool withBias)
    {
        float[] x = RandomValues(m * k, seed: m + 3 * k);
        float[] w = RandomValues(n * k, seed: n + 5 * k);
        float[] bias = withBias ? RandomValues(n, seed: n) : [];
        byte[] panels = EncodePanels(w, n, k);

        using var scope = NewDisposeScope();
        Tensor tx = tensor(x, m, k).to(float64);
        Tensor tw = tensor(w, n, k).to(bfloat16).to(float64);
        Tensor? tb = withBias ? tensor(bias).to(float64) : null;
        double[] expected = nn.functional.linear(tx, tw, tb).data<double>().ToArray();
        double[] magnitude = nn.functional.linear(tx.abs(), tw.abs(), tb?.abs()).data<double>().ToArray();

        foreach (GemmIsa isa in Isas)
        {
            foreach (AiCoreGrid grid in new[] { _twoCores, _oneCore })
            {
                float[] y = new float[m * n];
                y.AsSpan().Fill(float.NaN);
                LinearKernel.Linear(grid, x, panels, ElementType.BF16Panels, bias, y, m, k, n, isa);
                AssertClose(y, expected, magnitude, k, $"{isa}, {grid.CoreCount} core(s)");
            }
        }
    }

    [TestCase(1, 64, 64, 32, 32)]
    [TestCase(4, 128, 96, 64, 0)]
    [TestCase(8, 96, 64, 32, 32)]
    [TestCase(12, 96, 64, 32, 32)]
    public void LinearFusedWithPanelsMatchesTorchLinearPerWeight(int m, int k, int n0, int n1, int n2)
    {
        float[] x = RandomValues(m * k, seed: 11 + m);
        int[] ns = [n0, n1, n2];
        float[][] w = [.. ns.Select((n, i) => RandomValues(n * k, seed: 100 + i + n))];
        byte[][] panels = [.. w.Select((v, i) => EncodePanels(v, ns[i], k))];

        using var scope = NewDisposeScope();
        Tensor tx = tensor(x, m, k).to(float64);
        float[][] y = [.. ns.Select(n => Enumerable.Repeat(float.NaN, m * n).ToArray())];
        LinearKernel.LinearFused(_twoCores, x, ElementType.BF16Panels, m, k, panels[0], y[0], n0, panels[1], y[1], n1, panels[2], y[2], n2);
        for (int i = 0; i < 3; i++)
        {
            if (ns[i] == 0)
            {
                continue;
            }
            Tensor tw = tensor(w[i], ns[i], k).to(bfloat16).to(float64);
            AssertClose(y[i], nn.functional.linear(tx, tw).data<double>().ToArray(), nn.functional.linear(tx.abs(), tw.abs()).data<double>().ToArray(), k, $"part {i}");
        }
    }

    /// <summary>
    /// A panel lane adds its products in input order whatever the number of tokens, so a sequence's
    /// outputs do not change when others share its batch: each of eight tokens gets the bits it gets alone.
    /// </summary>
    [Test]
    public void PanelsGiveEveryTokenOfABatchTheBitsOfOneToken()
    {
        const int m = 8, k = 300, n = 96;
        float[] x = RandomValues(m * k, seed: 21);
        byte[] panels = EncodePanels(RandomValues(n * k, seed: 22), n, k);
        float[] bias = RandomValues(n, seed: 23);
        float[] batch = new float[m * n];
        LinearKernel.Linear(_twoCores, x, panels, ElementType.BF16Panels, bias, batch, m, k, n);
        for (int t = 0; t < m; t++)
        {
            float[] one = new float[n];
            LinearKernel.Linear(_oneCore, x.AsSpan(t * k, k), panels, ElementType.BF16Panels, bias, one, 1, k, n);
            Assert.That(batch.AsSpan(t * n, n).ToArray(), Is.EqualTo(one), $"token {t}");
        }
    }

    [Test]
    public void PanelsRefuseRowsThatAreNotWholePanelsAndTablesThatAreNotRows()
    {
        var tooFew = Assert.Throws<ArgumentException>(() => LinearKernel.Linear(_twoCores, new float[8], new byte[2 * 8 * 40], ElementType.BF16Panels, [], new float[40], 1, 8, 40));
        Assert.That(tooFew!.Message, Does.Contain("whole panels of 32 rows").And.Contain("40 rows"));
        var table = Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.EmbeddingGather(new byte[2 * 32 * 8], ElementType.BF16Panels, [1], new float[8], 32, 8));
        Assert.That(table!.Message, Does.Contain("BF16Panels is a matrix layout"));
    }

    /// <summary>
    /// Two tokens read each row once for both (Dot1x2) with one token's arithmetic per token, so a
    /// sequence's logits do not change when a second one joins its batch: the same bits as two
    /// one-token calls, including the tail past the last 32 elements (k = 1000, 45).
    /// </summary>
    [TestCase("BF16", 1000, 37)]
    [TestCase("F16", 45, 13)]
    [TestCase("F32", 768, 130)]
    public void TwoTokensGiveEachTheBitsOfOneToken(string wTypeName, int k, int n)
    {
        ElementType wType = Enum.Parse<ElementType>(wTypeName);
        float[] x = RandomValues(2 * k, seed: 17);
        byte[] w = Encode(RandomValues(n * k, seed: 18), wType);
        float[] bias = RandomValues(n, seed: 19);
        float[] two = new float[2 * n], first = new float[n], second = new float[n];
        LinearKernel.Linear(_twoCores, x, w, wType, bias, two, 2, k, n);
        LinearKernel.Linear(_twoCores, x.AsSpan(0, k), w, wType, bias, first, 1, k, n);
        LinearKernel.Linear(_oneCore, x.AsSpan(k, k), w, wType, bias, second, 1, k, n);
        Assert.That(two.AsSpan(0, n).ToArray(), Is.EqualTo(first), "the first token");
        Assert.That(two.AsSpan(n, n).ToArray(), Is.EqualTo(second), "the second token");
    }

    [Test]
    public void PublicEntryPointsUseTheDefaultGeometry()
    {
        const int m = 9, k = 40, n = 70;
        float[] a = RandomValues(m * k, seed: 1);
        float[] b = RandomValues(k * n, seed: 2);
        using var scope = NewDisposeScope();
        Tensor ta = tensor(a, m, k).to(float64);
        Tensor tb = tensor(b, k, n).to(float64);
        double[] expected = mm(ta, tb).data<double>().ToArray();
        double[] magnitude = mm(ta.abs(), tb.abs()).data<double>().ToArray();

        float[] c = new float[m * n];
        MatMulKernel.MatMul(AiCoreGrid.Shared, a, b, c, m, k, n);
        AssertClose(c, expected, magnitude, k, "MatMul");

        float[] batched = new float[m * n];
        MatMulKernel.BatchMatMul(AiCoreGrid.Shared, a, b, batched, 1, m, k, n, transposeB: false);
        AssertClose(batched, expected, magnitude, k, "BatchMatMul");

        float[] wt = tb.t().contiguous().to(float32).data<float>().ToArray();
        float[] y = new float[m * n];
        LinearKernel.Linear(AiCoreGrid.Shared, a, MemoryMarshal.AsBytes(wt.AsSpan()), ElementType.F32, [], y, m, k, n);
        AssertClose(y, expected, magnitude, k, "Linear");
    }

    [Test]
    public void MismatchedLengthsThrowNamingTheOperand()
    {
        float[] a = new float[6], b = new float[12], c = new float[8];
        var ex = Assert.Throws<ArgumentException>(() => MatMulKernel.MatMul(_twoCores, a.AsSpan(0, 5), b, c, 2, 3, 4));
        Assert.That(ex!.ParamName, Is.EqualTo("a"));
        Assert.That(ex.Message, Does.Contain("length 5").And.Contain("expected 6"));

        ex = Assert.Throws<ArgumentException>(() => MatMulKernel.MatMul(_twoCores, a, b, c.AsSpan(0, 7), 2, 3, 4));
        Assert.That(ex!.ParamName, Is.EqualTo("c"));

        ex = Assert.Throws<ArgumentException>(() => MatMulKernel.BatchMatMul(_twoCores, a, b, c, 2, 1, 3, 4, transposeB: true));
        Assert.That(ex!.ParamName, Is.EqualTo("b"));
        Assert.That(ex.Message, Does.Contain("length 12").And.Contain("expected 24"));

        byte[] w = new byte[4 * 3 * 2];
        ex = Assert.Throws<ArgumentException>(() => LinearKernel.Linear(_twoCores, a, w, ElementType.F32, [], c, 2, 3, 4));
        Assert.That(ex!.ParamName, Is.EqualTo("w"));
        Assert.That(ex.Message, Does.Contain("length 24").And.Contain("expected 48"));

        ex = Assert.Throws<ArgumentException>(() => LinearKernel.Linear(_twoCores, a, w, ElementType.BF16, new float[3], c, 2, 3, 4));
        Assert.That(ex!.ParamName, Is.EqualTo("bias"));
    }

    [Test]
    public void OutputOverlappingAnInputThrows()
    {
        float[] buffer = new float[16];
        var ex = Assert.Throws<ArgumentException>(() =>
            MatMulKernel.MatMul(_twoCores, buffer.AsSpan(0, 4), buffer.AsSpan(4, 4), buffer.AsSpan(2, 4), 2, 2, 2));
        Assert.That(ex!.ParamName, Is.EqualTo("a"));
    }

    [TestCase("BF16")]
    [TestCase("F16")]
    public void VectorWeightWideningMatchesScalarForEveryBitPattern(string typeName)
    {
        ElementType type = Enum.Parse<ElementType>(typeName);
        // Every one of the 65536 encodings, including subnormals, ±inf and NaNs, goes through the
        // vector path (the tail of 0 elements leaves nothing to the scalar loop).
        ushort[] bits = new ushort[65536];
        for (int i = 0; i < bits.Length; i++)
        {
            bits[i] = (ushort)i;
        }
        float[] widened = new float[bits.Length];
        unsafe
        {
            fixed (ushort* src = bits)
            fixed (float* dst = widened)
            {
                WeightConversion.ToSingle(src, type, dst, bits.Length);
            }
        }
        AssertWidened(bits, widened, type, "512-bit");
        // The 256-bit form (machines without AVX-512, and the GEMV's 256-bit path) on every encoding too.
        float[] narrow = new float[bits.Length];
        for (int i = 0; i < bits.Length; i += 8)
        {
            Vector256<uint> h = Vector256.Create((uint)bits[i], bits[i + 1], bits[i + 2], bits[i + 3], bits[i + 4], bits[i + 5], bits[i + 6], bits[i + 7]);
            (type == ElementType.BF16 ? WeightConversion.BF16ToSingle(h) : WeightConversion.F16ToSingle(h)).CopyTo(narrow, i);
        }
        AssertWidened(bits, narrow, type, "256-bit");
        // The weight readers' own loads, which the GEMV and attention inline (F16's sign-extends).
        float[] loaded = new float[bits.Length];
        unsafe
        {
            fixed (ushort* src = bits)
            {
                for (int i = 0; i < bits.Length; i += 16)
                {
                    (type == ElementType.BF16 ? LinearKernel.BF16Weights.Load16((byte*)src, i) : LinearKernel.F16Weights.Load16((byte*)src, i)).CopyTo(loaded, i);
                }
            }
        }
        AssertWidened(bits, loaded, type, "weight reader");
    }

    private static void AssertWidened(ushort[] bits, float[] widened, ElementType type, string form)
    {
        for (int i = 0; i < bits.Length; i++)
        {
            float expected = type == ElementType.BF16 ? ElementTypes.BF16ToSingle(bits[i]) : ElementTypes.F16ToSingle(bits[i]);
            if (float.IsNaN(expected))
            {
                Assert.That(float.IsNaN(widened[i]), $"{form}: 0x{i:X4} should widen to NaN");
            }
            else if (BitConverter.SingleToUInt32Bits(widened[i]) != BitConverter.SingleToUInt32Bits(expected))
            {
                Assert.Fail($"{form}: 0x{i:X4} widened to {widened[i]:R}, expected {expected:R}");
            }
        }
    }

    private static void AssertClose(float[] actual, double[] expected, double[] magnitude, int k, string context)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), context);
        double u = Math.ScaleB(1.0, -24);
        double factor = 2 * u * Math.Sqrt(Math.Max(k, 1));
        for (int i = 0; i < actual.Length; i++)
        {
            double tolerance = factor * magnitude[i] + 1e-30;
            double error = Math.Abs(actual[i] - expected[i]);
            if (!(error <= tolerance))
            {
                Assert.Fail($"{context}: element {i} is {actual[i]:R}, reference {expected[i]:R} (|error| {error:E3} > tolerance {tolerance:E3})");
            }
        }
    }

    private static float[] RandomValues(int count, int seed)
    {
        var random = new Random(seed);
        float[] values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)(random.NextDouble() * 2 - 1);
        }
        return values;
    }

    /// <summary>A row-major [n, k] matrix rounded to bf16 and laid out in panels of 32 rows.</summary>
    private static byte[] EncodePanels(float[] values, int n, int k)
    {
        ushort[] rows = MemoryMarshal.Cast<byte, ushort>(Encode(values, ElementType.BF16)).ToArray();
        ushort[] panels = new ushort[rows.Length];
        PanelGemv.FromRows(rows, panels, n, k);
        return MemoryMarshal.AsBytes(panels.AsSpan()).ToArray();
    }

    private static byte[] Encode(float[] values, ElementType type)
    {
        if (type == ElementType.F32)
        {
            return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        }
        ushort[] bits = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            bits[i] = type == ElementType.BF16 ? ElementTypes.SingleToBF16(values[i]) : ElementTypes.SingleToF16(values[i]);
        }
        return MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
    }
}
