using System.Buffers.Binary;
using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// linear with Q8_0 and Q4_0 weights. The reference is the kernel's own arithmetic done exactly: weights
/// quantized by the test as llama.cpp's quantize_row_q8_0_ref / quantize_row_q4_0_ref do, activations quantized by the
/// rule the kernel documents (d = max|x|/127 in f32, q = round half to even of x·(1/d)), and
/// y = Σ_b d_w·d_x·(Σ q_w·q_x) in float64 with exact integer block sums. Everything the kernel
/// does past the integers is f32 rounding of a sum of nb = k/32 scaled block sums: each block's
/// scale d_w·d_x is rounded once, each lane accumulates at most nb fused multiply-adds, and at most
/// three more additions join the lanes, so (Higham's γ_n bound)
///   |ours − ref| ≤ (nb + 6)·u·Σ_b |d_w·d_x|·Σ_i |q_w·q_x| + u·|bias|,   u = 2^-24,
/// a worst case that still sits orders of magnitude below one wrong product of one block.
/// TorchSharp then checks the meaning: its float64 linear of the unquantized x with the
/// dequantized weights differs from ours only by the activations' rounding, at most half a step
/// d_x per element (plus the bound above).
/// </summary>
[Category(KernelTestData.Category)]
[TestFixture]
public sealed unsafe class QuantizedLinearTests : IDisposable
{
    private const double U = 1.0 / (1 << 24);
    private readonly AiCoreGrid _twoCores = new(2);
    private readonly AiCoreGrid _oneCore = new(1);

    /// <summary>NUnit disposes the fixture after its last test.</summary>
    public void Dispose()
    {
        _twoCores.Dispose();
        _oneCore.Dispose();
    }

    private static Int8DotIsa[] SupportedIsas() => [.. Enum.GetValues<Int8DotIsa>().Where(Int8Dot.IsSupported)];

    private static readonly ElementType[] Formats = [ElementType.Q8_0, ElementType.Q4_0];

    private static IEnumerable<TestCaseData> Shapes()
    {
        // m ≤ 8: the strip GEMV, every token count of it (each has its own sum in registers; 130 rows give
        // a work block several strips, so 4-bit strips also go in pairs); m > 8: the
        // VNNI GEMM (AvxVnni) or the strip kernel. Row counts that
        // are not multiples of the 8-row strip (tail rows), of the 6-row or 16-column GEMM tile or the
        // 4096-column slice, and (27, 45) whose last whole strip shares a 16-column GEMM panel with
        // tail rows; k of one block, of a scale group of 8 blocks plus one (288), and past the GEMM's
        // 256-deep slice (800 = 3 slices + 32).
        int[][] shapes =
        [
            [1, 32, 1], [1, 768, 2048], [2, 96, 37], [3, 288, 7], [4, 64, 130], [5, 32, 17], [6, 128, 130], [7, 800, 33], [8, 96, 21],
            [13, 288, 4099], [33, 64, 16], [127, 256, 129], [3, 0, 5], [9, 96, 27], [20, 288, 45],
        ];
        foreach (ElementType format in Formats)
        {
            foreach (int[] s in shapes)
            {
                foreach (bool withBias in new[] { false, true })
                {
                    yield return new TestCaseData(format.ToString(), s[0], s[1], s[2], withBias).SetArgDisplayNames(format.ToString(), $"{s[0]}x{s[1]}x{s[2]}", withBias ? "bias" : "no bias");
                }
            }
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void LinearMatchesTheExactIntegerReferenceAndTorch(string formatName, int m, int k, int n, bool withBias)
    {
        ElementType format = Enum.Parse<ElementType>(formatName);
        float[] x = KernelTestData.Normal(m * k, seed: (m * 7) + k);
        float[] w = Weights(n * k, seed: n + (3 * k));
        float[] bias = withBias ? KernelTestData.Normal(n, seed: n + 1) : [];
        byte[] matrix = BlockReference.QuantizeMatrix(format, w, n, k);
        (double[] expected, double[] bound) = BlockReference.Linear(format, x, matrix, bias, m, k, n);
        (double[] torch, double[] activationBound) = TorchLinear(format, x, matrix, bias, m, k, n);

        foreach (Int8DotIsa isa in SupportedIsas())
        {
            foreach (AiCoreGrid grid in (long)m * k * n <= 1L << 20 ? new[] { _twoCores, _oneCore } : [_twoCores])
            {
                float[] y = Enumerable.Repeat(float.NaN, m * n).ToArray();
                LinearKernel.Linear(grid, x, matrix, format, bias, y, m, k, n, Gemm.DefaultIsa, isa);
                string what = $"{isa} on {grid.CoreCount} cores";
                AssertWithin(y, expected, bound, what + " vs the exact integer reference");
                AssertWithin(y, torch, [.. bound.Zip(activationBound, (a, b) => a + b)], what + " vs torch on the dequantized weights");
            }
        }
    }

    /// <summary>
    /// Every int8 form returns the same integer lanes and the float work after them is one code path,
    /// so the forms' outputs are the same bits wherever they run the same kernel (the strip kernel;
    /// only AvxVnni has the prefill GEMM, which is held to the reference above instead).
    /// </summary>
    [TestCase("Q8_0", 1, 768, 260)]
    [TestCase("Q8_0", 4, 288, 37)]
    [TestCase("Q8_0", 9, 96, 19)]
    [TestCase("Q4_0", 1, 768, 260)]
    [TestCase("Q4_0", 9, 96, 19)]
    public void EveryInt8FormGivesTheSameBits(string formatName, int m, int k, int n)
    {
        ElementType format = Enum.Parse<ElementType>(formatName);
        float[] x = KernelTestData.Normal(m * k, seed: 5);
        byte[] matrix = BlockReference.QuantizeMatrix(format, Weights(n * k, seed: 6), n, k);
        float[]? first = null;
        Int8DotIsa firstIsa = default;
        foreach (Int8DotIsa isa in SupportedIsas().Where(i => !QuantizedLinear.UsesGemm(m, i)))
        {
            float[] y = new float[m * n];
            LinearKernel.Linear(_twoCores, x, matrix, format, [], y, m, k, n, Gemm.DefaultIsa, isa);
            if (first is null)
            {
                (first, firstIsa) = (y, isa);
                continue;
            }
            for (int i = 0; i < y.Length; i++)
            {
                Assert.That(BitConverter.SingleToInt32Bits(y[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(first[i])),
                    $"element {i}: {isa} gave {y[i]:r}, {firstIsa} {first[i]:r}");
            }
        }
        Assert.That(first, Is.Not.Null);
    }

    /// <summary>
    /// On AVX-512BW the 4-bit GEMV adds a block's eight vpmaddubsw pair sums in int16 before widening
    /// them. At the extremes — every nibble 15 against activations of +127 or −127 — a lane's sum is
    /// ±8·2·15·127 = ±30480, just inside int16: every form must still give the exact integer
    /// reference's result there, and the same bits as the others. Four strips: two pairs per work block
    /// on one core, one pair each on two.
    /// </summary>
    [TestCase(1.0f)]
    [TestCase(-1.0f)]
    public void FourBitExtremesStayExactInEveryForm(float value)
    {
        const int m = 8, k = 256, n = 32, blockBytes = 18;
        byte[] gguf = new byte[n * (k / 32) * blockBytes];
        for (int block = 0; block < n * (k / 32); block++)
        {
            BitConverter.TryWriteBytes(gguf.AsSpan(block * blockBytes), (Half)1.0f);
            gguf.AsSpan((block * blockBytes) + 2, 16).Fill(0xFF);
        }
        byte[] matrix = BlockReference.Layout(ElementType.Q4_0, gguf, n, k);
        float[] x = Enumerable.Repeat(value, m * k).ToArray();
        (double[] expected, double[] bound) = BlockReference.Linear(ElementType.Q4_0, x, matrix, [], m, k, n);
        Assert.That(expected, Is.All.EqualTo(value * 7 * 32 * (k / 32)).Within(1e-3), "q = 15 − 8 = 7 against x quantized to ±127 with d = 1/127");
        float[]? first = null;
        foreach (Int8DotIsa isa in SupportedIsas())
        {
            foreach (AiCoreGrid grid in new[] { _twoCores, _oneCore })
            {
                float[] y = new float[m * n];
                LinearKernel.Linear(grid, x, matrix, ElementType.Q4_0, [], y, m, k, n, Gemm.DefaultIsa, isa);
                AssertWithin(y, expected, bound, $"{isa} on {grid.CoreCount} cores");
                first ??= y;
                Assert.That(y, Is.EqualTo(first), $"{isa} on {grid.CoreCount} cores: the same bits as the first form");
            }
        }
    }

    /// <summary>
    /// The block dot products are exact integers in every form, including the format's extremes: a
    /// weight of −128 (which llama.cpp's quantizer never writes but its block_q8_0 can hold, and
    /// which the sign trick must not negate) against activations of ±127.
    /// </summary>
    [Test]
    public void EveryInt8FormSumsBlocksExactly()
    {
        var rng = new Random(3);
        sbyte[] w = new sbyte[32], x = new sbyte[32];
        for (int trial = 0; trial < 2000; trial++)
        {
            for (int i = 0; i < 32; i++)
            {
                w[i] = trial switch
                {
                    0 => -128,
                    1 => 127,
                    2 => 0,
                    _ => (sbyte)rng.Next(-128, 128),
                };
                x[i] = trial switch
                {
                    0 => (sbyte)(i % 2 == 0 ? 127 : -127),
                    1 => -127,
                    _ => (sbyte)rng.Next(-127, 128),
                };
            }
            int exact = 0;
            for (int i = 0; i < 32; i++)
            {
                exact += w[i] * x[i];
            }
            var wv = System.Runtime.Intrinsics.Vector256.Create(w);
            var xv = System.Runtime.Intrinsics.Vector256.Create(x);
            foreach (Int8DotIsa isa in SupportedIsas())
            {
                int sum = isa switch
                {
                    Int8DotIsa.AvxVnni => Int8Dot.BlockSum<Int8Dot.AvxVnniDot>(wv, xv),
                    Int8DotIsa.Avx2 => Int8Dot.BlockSum<Int8Dot.Avx2Dot>(wv, xv),
                    _ => Int8Dot.BlockSum<Int8Dot.PortableDot>(wv, xv),
                };
                Assert.That(sum, Is.EqualTo(exact), $"{isa}, trial {trial}");
            }
        }
    }

    /// <summary>
    /// The strip kernel's products: unsigned weights up to 255 (Q8_0's q + 128) against activations of
    /// ±127, from a starting value, are exact in every form — vpmaddubsw's int16 pair sums would
    /// saturate at 2·255·127 if the AVX2 form took u whole.
    /// </summary>
    [Test]
    public void EveryInt8FormSumsUnsignedProductsExactly()
    {
        var rng = new Random(12);
        for (int trial = 0; trial < 200; trial++)
        {
            byte[] u = new byte[32];
            sbyte[] x = new sbyte[32];
            int[] init = new int[8];
            for (int i = 0; i < 32; i++)
            {
                u[i] = trial switch { 0 => 255, 1 => 128, 2 => 0, _ => (byte)rng.Next(256) };
                x[i] = trial switch { 0 => 127, 1 => -127, _ => (sbyte)rng.Next(-127, 128) };
            }
            for (int lane = 0; lane < 8; lane++)
            {
                init[lane] = rng.Next(-100000, 100000);
            }
            var uv = System.Runtime.Intrinsics.Vector256.Create(u);
            var xv = System.Runtime.Intrinsics.Vector256.Create(x);
            var iv = System.Runtime.Intrinsics.Vector256.Create(init);
            foreach (Int8DotIsa isa in SupportedIsas())
            {
                var lanes = isa switch
                {
                    Int8DotIsa.AvxVnni => Int8Dot.UnsignedLanes<Int8Dot.AvxVnniDot>(iv, uv, xv),
                    Int8DotIsa.Avx2 => Int8Dot.UnsignedLanes<Int8Dot.Avx2Dot>(iv, uv, xv),
                    _ => Int8Dot.UnsignedLanes<Int8Dot.PortableDot>(iv, uv, xv),
                };
                for (int lane = 0; lane < 8; lane++)
                {
                    int exact = init[lane];
                    for (int i = 4 * lane; i < (4 * lane) + 4; i++)
                    {
                        exact += u[i] * x[i];
                    }
                    Assert.That(lanes.GetElement(lane), Is.EqualTo(exact), $"{isa}, trial {trial}, lane {lane}");
                }
            }
        }
    }

    /// <summary>
    /// The layout the host gets from <see cref="QuantizedWeightLayout"/> is the documented one (the
    /// test's own, which the kernels are held to above): two whole strips and three tail rows.
    /// </summary>
    [TestCase("Q8_0")]
    [TestCase("Q4_0")]
    public void TheHostsLayoutIsTheDocumentedOne(string formatName)
    {
        ElementType format = Enum.Parse<ElementType>(formatName);
        const int rows = 19, cols = 96;
        byte[] gguf = BlockReference.GgufBlocks(format, Weights(rows * cols, seed: 17), rows, cols);
        byte[] device = format == ElementType.Q8_0 ? QuantizedWeightLayout.Q8_0FromGguf(gguf, rows, cols) : QuantizedWeightLayout.Q4_0FromGguf(gguf, rows, cols);
        Assert.That(device, Is.EqualTo(BlockReference.Layout(format, gguf, rows, cols)));
        Assert.That(device, Has.Length.EqualTo(gguf.Length), "the size is GGUF's");
        var ex = Assert.Throws<ArgumentException>(() => QuantizedWeightLayout.Q8_0FromGguf(gguf.AsSpan(1).ToArray(), rows, cols));
        Assert.That(ex!.Message, Does.Contain($"[{rows}, {cols}] Q8_0 matrix").And.Contain("whole data"));
    }

    /// <summary>
    /// Every (token, row) sum takes the same steps in the strip GEMV (any m ≤ 8) and the VNNI GEMM
    /// (prefill): the exact block sum, converted, times d_w·d_x, accumulated in block order. So a
    /// token's logits do not depend on whether it was decoded alone, in a batch, or in a prompt.
    /// </summary>
    [TestCase("Q8_0", 37)]
    [TestCase("Q4_0", 37)]
    [TestCase("Q4_0", 64)]
    [TestCase("Q8_0", 27)]
    public void DecodeBatchAndPrefillGiveTheSameBits(string formatName, int n)
    {
        if (!Int8Dot.IsSupported(Int8DotIsa.AvxVnni))
        {
            Assert.Ignore("The quantized GEMM runs on AVX-VNNI only; this machine has none.");
        }
        ElementType format = Enum.Parse<ElementType>(formatName);
        const int m = 12, k = 800;
        float[] x = KernelTestData.Normal(m * k, seed: 23);
        byte[] matrix = BlockReference.QuantizeMatrix(format, Weights(n * k, seed: 24), n, k);
        float[] bias = KernelTestData.Normal(n, seed: 25);
        float[] prefill = new float[m * n], batch = new float[8 * n];
        LinearKernel.Linear(_twoCores, x, matrix, format, bias, prefill, m, k, n);
        LinearKernel.Linear(_twoCores, x.AsSpan(0, 8 * k), matrix, format, bias, batch, 8, k, n);
        for (int t = 0; t < m; t++)
        {
            float[] alone = new float[n];
            LinearKernel.Linear(_twoCores, x.AsSpan(t * k, k), matrix, format, bias, alone, 1, k, n);
            for (int j = 0; j < n; j++)
            {
                Assert.That(BitConverter.SingleToInt32Bits(prefill[(t * n) + j]), Is.EqualTo(BitConverter.SingleToInt32Bits(alone[j])), $"token {t} row {j}: prefill vs alone");
                if (t < 8)
                {
                    Assert.That(BitConverter.SingleToInt32Bits(batch[(t * n) + j]), Is.EqualTo(BitConverter.SingleToInt32Bits(alone[j])), $"token {t} row {j}: batch vs alone");
                }
            }
        }
    }

    [Test]
    public void ActivationsAreQuantizedByTheDocumentedRule()
    {
        const int rows = 3, k = 96;
        float[] x = KernelTestData.Normal(rows * k, seed: 8, std: 3f);
        // A zero block (d = 0, all q = 0), exact ties (2.5 steps rounds to 2, 3.5 to 4), and -max.
        Array.Clear(x, 32, 32);
        x[64] = 127f;
        x[65] = 2.5f;
        x[66] = 3.5f;
        x[67] = -127f;
        sbyte[] q = new sbyte[rows * k], qOffset = new sbyte[rows * k];
        float[] d = new float[rows * k / 32], dOffset = new float[rows * k / 32];
        fixed (float* px = x, pd = d, pdo = dOffset)
        fixed (sbyte* pq = q, pqo = qOffset)
        {
            Q8_0Activations.QuantizeRows(px, k, 0, rows, pq, pd, offsetBinary: false);
            Q8_0Activations.QuantizeRows(px, k, 0, rows, pqo, pdo, offsetBinary: true);
        }
        (sbyte[] expectedQ, float[] expectedD) = BlockReference.QuantizeActivations(x, rows, k);
        Assert.That(d, Is.EqualTo(expectedD));
        Assert.That(q, Is.EqualTo(expectedQ));
        Assert.That(dOffset, Is.EqualTo(expectedD));
        Assert.That(qOffset.Select(v => (byte)v), Is.EqualTo(expectedQ.Select(v => (byte)(v + 128))), "offset binary is q + 128");
        Assert.That(q.Skip(64).Take(4), Is.EqualTo(new sbyte[] { 127, 2, 4, -127 }), "ties round to even; ±max to ±127");
        Assert.That(q.Skip(32).Take(32), Is.All.EqualTo(0));
        Assert.That(d[1], Is.Zero);
    }

    private static IEnumerable<TestCaseData> FusedShapes()
    {
        foreach (string format in new[] { "Q8_0", "Q4_0" })
        {
            yield return new TestCaseData(format, 1, 64, 64, 16, 16);
            yield return new TestCaseData(format, 2, 96, 37, 5, 11);
            yield return new TestCaseData(format, 4, 128, 172, 172, 0);
            yield return new TestCaseData(format, 7, 96, 48, 24, 24);
        }
    }

    /// <summary>The fused launch runs the same per-weight kernel over one quantized x: each part equals its own linear bit for bit.</summary>
    [TestCaseSource(nameof(FusedShapes))]
    public void LinearFusedEqualsEachLinear(string formatName, int m, int k, int n0, int n1, int n2)
    {
        ElementType format = Enum.Parse<ElementType>(formatName);
        float[] x = KernelTestData.Normal(m * k, seed: 21 + m);
        int[] ns = [n0, n1, n2];
        byte[][] w = [.. ns.Select((n, i) => BlockReference.QuantizeMatrix(format, Weights(n * k, seed: 30 + i), n, k))];
        foreach (Int8DotIsa isa in SupportedIsas())
        {
            float[][] y = [.. ns.Select(n => Enumerable.Repeat(float.NaN, m * n).ToArray())];
            LinearKernel.LinearFused(_twoCores, x, format, m, k, w[0], y[0], n0, w[1], y[1], n1, w[2], y[2], n2, Gemm.DefaultIsa, isa);
            for (int i = 0; i < 3; i++)
            {
                float[] single = new float[m * ns[i]];
                LinearKernel.Linear(_twoCores, x, w[i], format, [], single, m, k, ns[i], Gemm.DefaultIsa, isa);
                Assert.That(y[i], Is.EqualTo(single), $"{isa} part {i}");
            }
        }
    }

    [TestCase("Q8_0")]
    [TestCase("Q4_0")]
    public void AWidthThatIsNotWholeBlocksIsRefusedNamingItAndWhatToDo(string formatName)
    {
        ElementType format = Enum.Parse<ElementType>(formatName);
        const int m = 1, k = 48, n = 2;
        var ex = Assert.Throws<ArgumentException>(() =>
            LinearKernel.Linear(_twoCores, new float[m * k], new byte[n * k * 2], format, [], new float[m * n], m, k, n));
        Assert.That(ex!.Message, Does.Contain($"the {format} weight has rows of 48 weights").And.Contain("blocks of 32").And.Contain("F32, F16 or BF16"));
        Assert.Throws<ArgumentException>(() => ElementTypes.MatrixBytes(format, n, k));
    }

    [TestCase("Q8_0", 32)]
    [TestCase("Q4_0", 16)]
    public void MisSizedWeightsAreRefused(string formatName, int quantBytesPerBlock)
    {
        ElementType format = Enum.Parse<ElementType>(formatName);
        const int m = 1, k = 64, n = 3;
        long bytes = ElementTypes.MatrixBytes(format, n, k);
        Assert.That(bytes, Is.EqualTo((n * 2 * quantBytesPerBlock) + (n * 2 * 2)), "the quant plane and two bytes a block");
        var ex = Assert.Throws<ArgumentException>(() =>
            LinearKernel.Linear(_twoCores, new float[m * k], new byte[bytes - 1], format, [], new float[m * n], m, k, n));
        Assert.That(ex!.ParamName, Is.EqualTo("w"));
    }

    [TestCase("Q8_0")]
    [TestCase("Q4_0")]
    public void EmbeddingRowsOfABlockQuantizedTableAreTheDequantizedRows(string formatName)
    {
        ElementType format = Enum.Parse<ElementType>(formatName);
        // A whole strip of eight rows and five tail rows.
        const int vocab = 13, dim = 64;
        float[] table = Weights(vocab * dim, seed: 4);
        byte[] matrix = BlockReference.QuantizeMatrix(format, table, vocab, dim);
        double[] dequantized = BlockReference.Dequantize(format, matrix, vocab, dim);
        int[] ids = [3, 0, 12, 7, 8, 3];
        float[] y = new float[ids.Length * dim];
        Embedding.EmbeddingGather(matrix, format, ids, y, vocab, dim);
        for (int t = 0; t < ids.Length; t++)
        {
            for (int i = 0; i < dim; i++)
            {
                Assert.That(y[(t * dim) + i], Is.EqualTo((float)dequantized[(ids[t] * dim) + i]), $"token {t} element {i}");
            }
        }
    }

    /// <summary>Weights with a trained layer's spread: mostly small, with the odd outlier per block.</summary>
    private static float[] Weights(int count, int seed)
    {
        float[] w = KernelTestData.Normal(count, seed, std: 0.05f);
        for (int i = 0; i < count; i += 97)
        {
            w[i] *= 8f;
        }
        return w;
    }

    private static (double[] Expected, double[] Bound) TorchLinear(ElementType format, float[] x, byte[] matrix, float[] bias, int m, int k, int n) =>
        TorchLinear(BlockReference.Dequantize(format, matrix, n, k), x, bias, m, k, n);

    /// <summary>
    /// TorchSharp's float64 linear of the unquantized x with <paramref name="dequantized"/> weights
    /// [n, k], and how far the kernel may be from it by the activations' rounding alone.
    /// </summary>
    internal static (double[] Expected, double[] Bound) TorchLinear(double[] dequantized, float[] x, float[] bias, int m, int k, int n)
    {
        using var scope = NewDisposeScope();
        Tensor tx = tensor(x, m, k).to(float64);
        Tensor tw = tensor(dequantized, n, k);
        Tensor? tb = bias.Length > 0 ? tensor(bias).to(float64) : null;
        double[] expected = nn.functional.linear(tx, tw, tb).data<double>().ToArray();
        // The activations' rounding: |x − d_x·q_x| ≤ d_x·(1/2 + 2^-16) (the half step, and x·(1/d)
        // rounded twice in f32 before it is rounded to an integer), times |w| summed per block.
        (_, float[] dx) = BlockReference.QuantizeActivations(x, m, k);
        double[] bound = new double[m * n];
        for (int t = 0; t < m; t++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int b = 0; b < k / 32; b++)
                {
                    double absW = 0;
                    for (int i = b * 32; i < (b + 1) * 32; i++)
                    {
                        absW += Math.Abs(dequantized[((long)j * k) + i]);
                    }
                    sum += dx[(t * (k / 32)) + b] * (0.5 + Math.Pow(2, -16)) * absW;
                }
                bound[(t * n) + j] = sum;
            }
        }
        return (expected, bound);
    }

    internal static void AssertWithin(float[] actual, double[] expected, double[] bound, string what)
    {
        int worst = -1;
        double worstRatio = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]);
            double ratio = double.IsNaN(actual[i]) ? double.PositiveInfinity : err / (bound[i] + 1e-30);
            if (ratio > worstRatio)
            {
                (worstRatio, worst) = (ratio, i);
            }
        }
        Assert.That(worstRatio, Is.LessThanOrEqualTo(1.0),
            $"{what}: element {worst} is {actual[Math.Max(worst, 0)]:r}, expected {expected[Math.Max(worst, 0)]:r} ± {bound[Math.Max(worst, 0)]:g3}");
    }

    /// <summary>
    /// The test's own block formats: llama.cpp's reference rounding into GGUF blocks, and the device's
    /// layout written out from its documented rule (<see cref="BlockMatrix{TFormat}"/>): rows in strips
    /// of eight, a strip block holding its eight rows' quants four elements at a time (Q8_0 as q + 128;
    /// Q4_0 as GGUF's bytes), the rows past the last whole strip in GGUF's row form; then the scales,
    /// eight per strip block, then the tail rows'.
    /// </summary>
    internal static class BlockReference
    {
        private static int QuantBytes(ElementType format) => format == ElementType.Q4_0 ? 16 : 32;

        /// <summary>
        /// Per row, GGUF blocks: quantize_row_q8_0_ref (d = amax/127 stored f16, q = roundf(x·(1/d)),
        /// halves away from zero) or quantize_row_q4_0_ref (d = −max/8 of the signed value of largest
        /// magnitude, n = min(15, (int)(x·(1/d) + 8.5)), byte j = n_j | n_{j+16} &lt;&lt; 4): d, then the quants.
        /// </summary>
        public static byte[] GgufBlocks(ElementType format, float[] w, int rows, int cols)
        {
            int blocks = cols / 32, blockBytes = 2 + QuantBytes(format);
            byte[] gguf = new byte[rows * blocks * blockBytes];
            for (int r = 0; r < rows; r++)
            {
                for (int b = 0; b < blocks; b++)
                {
                    ReadOnlySpan<float> v = w.AsSpan((r * cols) + (b * 32), 32);
                    Span<byte> block = gguf.AsSpan(((r * blocks) + b) * blockBytes, blockBytes);
                    float amax = 0, max = 0;
                    foreach (float value in v)
                    {
                        if (amax < MathF.Abs(value))
                        {
                            (amax, max) = (MathF.Abs(value), value);
                        }
                    }
                    float d = format == ElementType.Q4_0 ? max / -8f : amax / 127f;
                    float id = d != 0 ? 1f / d : 0f;
                    BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
                    for (int i = 0; i < 32; i++)
                    {
                        if (format == ElementType.Q4_0)
                        {
                            int nibble = Math.Min(15, (int)((v[i] * id) + 8.5f));
                            block[2 + (i % 16)] |= (byte)(i < 16 ? nibble : nibble << 4);
                        }
                        else
                        {
                            block[2 + i] = unchecked((byte)(sbyte)MathF.Round(v[i] * id, MidpointRounding.AwayFromZero));
                        }
                    }
                }
            }
            return gguf;
        }

        /// <summary>Quantized as <see cref="GgufBlocks"/> and laid out as the device keeps it.</summary>
        public static byte[] QuantizeMatrix(ElementType format, float[] w, int rows, int cols) => Layout(format, GgufBlocks(format, w, rows, cols), rows, cols);

        /// <summary>GGUF blocks in the device's layout, by the documented rule.</summary>
        public static byte[] Layout(ElementType format, byte[] gguf, int rows, int cols)
        {
            int blocks = cols / 32, quantBytes = QuantBytes(format), blockBytes = 2 + quantBytes;
            byte[] matrix = new byte[rows * blocks * blockBytes];
            for (int r = 0; r < rows; r++)
            {
                for (int b = 0; b < blocks; b++)
                {
                    ReadOnlySpan<byte> block = gguf.AsSpan(((r * blocks) + b) * blockBytes, blockBytes);
                    (int quants, int scale, int stripRow) = Locate(format, rows, cols, r, b);
                    block[..2].CopyTo(matrix.AsSpan(scale));
                    for (int j = 0; j < quantBytes; j++)
                    {
                        if (stripRow < 0)
                        {
                            matrix[quants + j] = block[2 + j];
                        }
                        else if (format == ElementType.Q4_0)
                        {
                            matrix[quants + (j / 4 * 32) + (stripRow * 4) + (j % 4)] = block[2 + j];
                        }
                        else
                        {
                            matrix[quants + (j / 4 * 32) + (stripRow * 4) + (j % 4)] = (byte)(block[2 + j] ^ 0x80);
                        }
                    }
                }
            }
            return matrix;
        }

        /// <summary>Byte offsets of row r's block b: its quants (a strip block's start, or the row-form block), its scale, and its row in the strip (−1 in row form).</summary>
        private static (int Quants, int Scale, int StripRow) Locate(ElementType format, int rows, int cols, int r, int b)
        {
            int blocks = cols / 32, quantBytes = QuantBytes(format), stripped = rows / 8 * 8, scales = rows * blocks * quantBytes;
            if (r < stripped)
            {
                int stripBlock = ((r / 8) * blocks) + b;
                return (stripBlock * 8 * quantBytes, scales + (((stripBlock * 8) + (r % 8)) * 2), r % 8);
            }
            int tailBlock = ((r - stripped) * blocks) + b;
            return ((stripped * blocks * quantBytes) + (tailBlock * quantBytes), scales + (((stripped * blocks) + tailBlock) * 2), -1);
        }

        public static int Quant(ElementType format, byte[] matrix, int rows, int cols, int r, int i)
        {
            (int quants, _, int stripRow) = Locate(format, rows, cols, r, i / 32);
            int e = i % 32;
            if (format == ElementType.Q4_0)
            {
                int j = e % 16;
                byte packed = stripRow < 0 ? matrix[quants + j] : matrix[quants + (j / 4 * 32) + (stripRow * 4) + (j % 4)];
                return (e < 16 ? packed & 0x0F : packed >> 4) - 8;
            }
            return stripRow < 0 ? (sbyte)matrix[quants + e] : (sbyte)(matrix[quants + (e / 4 * 32) + (stripRow * 4) + (e % 4)] ^ 0x80);
        }

        public static double[] Dequantize(ElementType format, byte[] matrix, int rows, int cols)
        {
            double[] w = new double[rows * cols];
            for (int r = 0; r < rows; r++)
            {
                for (int i = 0; i < cols; i++)
                {
                    w[(r * cols) + i] = Quant(format, matrix, rows, cols, r, i) * Scale(format, matrix, rows, cols, r, i / 32);
                }
            }
            return w;
        }

        public static (sbyte[] Q, float[] D) QuantizeActivations(float[] x, int rows, int k)
        {
            sbyte[] q = new sbyte[rows * k];
            float[] d = new float[rows * k / 32];
            for (int b = 0; b < d.Length; b++)
            {
                float amax = 0;
                for (int i = 0; i < 32; i++)
                {
                    amax = MathF.Max(amax, MathF.Abs(x[(b * 32) + i]));
                }
                d[b] = amax / 127f;
                float id = d[b] != 0 ? 1f / d[b] : 0f;
                for (int i = 0; i < 32; i++)
                {
                    q[(b * 32) + i] = (sbyte)MathF.Round(x[(b * 32) + i] * id, MidpointRounding.ToEven);
                }
            }
            return (q, d);
        }

        /// <summary>y = Σ_b d_w·d_x·(exact Σ q_w·q_x) (+ bias) in float64, and the f32 rounding bound of the class comment.</summary>
        public static (double[] Y, double[] Bound) Linear(ElementType format, float[] x, byte[] matrix, float[] bias, int m, int k, int n)
        {
            (sbyte[] qx, float[] dx) = QuantizeActivations(x, m, k);
            int blocks = k / 32;
            double[] y = new double[m * n], bound = new double[m * n];
            for (int t = 0; t < m; t++)
            {
                for (int j = 0; j < n; j++)
                {
                    double sum = 0, magnitude = 0;
                    for (int b = 0; b < blocks; b++)
                    {
                        long dot = 0, absDot = 0;
                        for (int i = b * 32; i < (b + 1) * 32; i++)
                        {
                            int p = Quant(format, matrix, n, k, j, i) * qx[(t * k) + i];
                            dot += p;
                            absDot += Math.Abs(p);
                        }
                        double scale = Scale(format, matrix, n, k, j, b) * dx[(t * blocks) + b];
                        sum += scale * dot;
                        magnitude += Math.Abs(scale) * absDot;
                    }
                    double b0 = bias.Length > 0 ? bias[j] : 0;
                    y[(t * n) + j] = sum + b0;
                    bound[(t * n) + j] = ((blocks + 6) * U * magnitude) + (U * Math.Abs(sum + b0));
                }
            }
            return (y, bound);
        }

        private static double Scale(ElementType format, byte[] matrix, int rows, int cols, int r, int b) =>
            (double)BinaryPrimitives.ReadHalfLittleEndian(matrix.AsSpan(Locate(format, rows, cols, r, b).Scale));
    }
}
