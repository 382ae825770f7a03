using System.Buffers.Binary;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// linear with Q4_K weights. The weights are random GGUF Q4_K super-blocks written by the test (every
/// 6-bit scale and min, f16 d and dmin of both signs' magnitudes, every nibble), packed by ggml's rule
/// (the inverse of get_scale_min_k4), and reach the device through the host's converter
/// (<see cref="QuantizedWeightLayout.Q4_KFromGguf"/>). The reference reads the GGUF blocks the test
/// wrote, not the device's layout: w = d·sc·q − dmin·m per block of 32, activations quantized by the
/// documented rule, and y = Σ_b d_x·(d·sc·Σ q·q_x − dmin·m·Σ q_x) in float64 with exact integer sums.
/// Past the integers the kernel rounds per block the scale d·sc·d_x once, the min term −d_x·Σq_x once,
/// and two fused multiply-adds, so |ours − ref| ≤ (2·nb + 6)·u·Σ_b |d_x|·(|d·sc|·Σ|q·q_x| + |dmin·m|·|Σq_x|)
/// + u·|bias| (Higham's γ_n, as in <see cref="QuantizedLinearTests"/>). TorchSharp's float64 linear of
/// the unquantized x with the dequantized weights then checks the meaning, within the activations'
/// half step per element on top.
/// </summary>
[Category(KernelTestData.Category)]
[TestFixture]
public sealed unsafe class Q4_KLinearTests : IDisposable
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

    private static IEnumerable<TestCaseData> Shapes()
    {
        // m ≤ 8: the strip GEMV, every token count of it (each has its own sum in registers; 130 and 69
        // rows give a work block several strips, so 4-bit strips also go in pairs); m > 8: the
        // VNNI GEMM (or the strip kernel). Rows that fill whole strips
        // (8, 16), that pad the last strip (1, 7, 9, 37), whose padded strip is alone in a 16-column GEMM
        // panel (9, 37: 5 strips) or shares it (21: 3 strips); k of one super-block, two, and past the
        // GEMM's 256-deep slices (1280 = 5 slices).
        int[][] shapes =
        [
            [1, 256, 1], [1, 768, 130], [2, 512, 37], [3, 256, 7], [4, 1280, 16], [5, 256, 9], [6, 256, 130], [7, 256, 69], [8, 512, 21],
            [9, 256, 37], [13, 1280, 40], [33, 512, 8], [20, 768, 17], [3, 0, 5],
        ];
        foreach (int[] s in shapes)
        {
            foreach (bool withBias in new[] { false, true })
            {
                yield return new TestCaseData(s[0], s[1], s[2], withBias).SetArgDisplayNames($"{s[0]}x{s[1]}x{s[2]}", withBias ? "bias" : "no bias");
            }
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void LinearMatchesTheExactIntegerReferenceAndTorch(int m, int k, int n, bool withBias)
    {
        float[] x = KernelTestData.Normal(m * k, seed: (m * 7) + k);
        float[] bias = withBias ? KernelTestData.Normal(n, seed: n + 1) : [];
        byte[] gguf = K4Reference.RandomBlocks(n, k, seed: n + (3 * k));
        byte[] matrix = QuantizedWeightLayout.Q4_KFromGguf(gguf, n, k);
        Assert.That(matrix, Has.Length.EqualTo(ElementTypes.MatrixBytes(ElementType.Q4_K, n, k)));
        (double[] expected, double[] bound) = K4Reference.Linear(x, gguf, bias, m, k, n);
        (double[] torch, double[] activationBound) = TorchLinear(x, gguf, bias, m, k, n);

        foreach (Int8DotIsa isa in SupportedIsas())
        {
            foreach (AiCoreGrid grid in new[] { _twoCores, _oneCore })
            {
                float[] y = Enumerable.Repeat(float.NaN, m * n).ToArray();
                LinearKernel.Linear(grid, x, matrix, ElementType.Q4_K, bias, y, m, k, n, Gemm.DefaultIsa, isa);
                string what = $"{isa} on {grid.CoreCount} cores";
                AssertWithin(y, expected, bound, what + " vs the exact integer reference");
                AssertWithin(y, torch, [.. bound.Zip(activationBound, (a, b) => a + b)], what + " vs torch on the dequantized weights");
            }
        }
    }

    /// <summary>The GEMV's and the GEMM's steps per (token, row) are the same, mins included: a token's outputs do not depend on its batch or its prompt.</summary>
    [TestCase(37)]
    [TestCase(21)]
    [TestCase(64)]
    public void DecodeBatchAndPrefillGiveTheSameBits(int n)
    {
        if (!Int8Dot.IsSupported(Int8DotIsa.AvxVnni))
        {
            Assert.Ignore("The quantized GEMM runs on AVX-VNNI only; this machine has none.");
        }
        const int m = 12, k = 1280;
        float[] x = KernelTestData.Normal(m * k, seed: 23);
        byte[] matrix = QuantizedWeightLayout.Q4_KFromGguf(K4Reference.RandomBlocks(n, k, seed: 24), n, k);
        float[] bias = KernelTestData.Normal(n, seed: 25);
        float[] prefill = new float[m * n], batch = new float[8 * n];
        LinearKernel.Linear(_twoCores, x, matrix, ElementType.Q4_K, bias, prefill, m, k, n);
        LinearKernel.Linear(_twoCores, x.AsSpan(0, 8 * k), matrix, ElementType.Q4_K, bias, batch, 8, k, n);
        for (int t = 0; t < m; t++)
        {
            float[] alone = new float[n];
            LinearKernel.Linear(_twoCores, x.AsSpan(t * k, k), matrix, ElementType.Q4_K, bias, alone, 1, k, n);
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

    [TestCase(1, 768, 260)]
    [TestCase(9, 256, 19)]
    public void EveryInt8FormGivesTheSameBits(int m, int k, int n)
    {
        float[] x = KernelTestData.Normal(m * k, seed: 5);
        byte[] matrix = QuantizedWeightLayout.Q4_KFromGguf(K4Reference.RandomBlocks(n, k, seed: 6), n, k);
        float[]? first = null;
        foreach (Int8DotIsa isa in SupportedIsas().Where(i => !QuantizedLinear.UsesGemm(m, i)))
        {
            float[] y = new float[m * n];
            LinearKernel.Linear(_twoCores, x, matrix, ElementType.Q4_K, [], y, m, k, n, Gemm.DefaultIsa, isa);
            first ??= y;
            Assert.That(y.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(first.Select(BitConverter.SingleToInt32Bits)), isa.ToString());
        }
        Assert.That(first, Is.Not.Null);
    }

    [TestCase(1, 256, 40, 8, 8)]
    [TestCase(4, 512, 37, 5, 0)]
    [TestCase(11, 256, 16, 9, 9)]
    public void LinearFusedEqualsEachLinear(int m, int k, int n0, int n1, int n2)
    {
        float[] x = KernelTestData.Normal(m * k, seed: 21 + m);
        int[] ns = [n0, n1, n2];
        byte[][] w = [.. ns.Select((n, i) => QuantizedWeightLayout.Q4_KFromGguf(K4Reference.RandomBlocks(n, k, seed: 30 + i), n, k))];
        foreach (Int8DotIsa isa in SupportedIsas())
        {
            float[][] y = [.. ns.Select(n => Enumerable.Repeat(float.NaN, m * n).ToArray())];
            LinearKernel.LinearFused(_twoCores, x, ElementType.Q4_K, m, k, w[0], y[0], n0, w[1], y[1], n1, w[2], y[2], n2, Gemm.DefaultIsa, isa);
            for (int i = 0; i < 3; i++)
            {
                float[] single = new float[m * ns[i]];
                LinearKernel.Linear(_twoCores, x, w[i], ElementType.Q4_K, [], single, m, k, ns[i], Gemm.DefaultIsa, isa);
                Assert.That(y[i], Is.EqualTo(single), $"{isa} part {i}");
            }
        }
    }

    [Test]
    public void EmbeddingRowsAreGgmlsDequantizedRows()
    {
        // Two whole strips and a padded one.
        const int vocab = 21, dim = 512;
        byte[] gguf = K4Reference.RandomBlocks(vocab, dim, seed: 4);
        byte[] matrix = QuantizedWeightLayout.Q4_KFromGguf(gguf, vocab, dim);
        float[] dequantized = K4Reference.Dequantize(gguf, vocab, dim);
        int[] ids = [3, 0, 20, 7, 8, 16, 3];
        float[] y = new float[ids.Length * dim];
        Embedding.EmbeddingGather(matrix, ElementType.Q4_K, ids, y, vocab, dim);
        for (int t = 0; t < ids.Length; t++)
        {
            Assert.That(y.AsSpan(t * dim, dim).ToArray(), Is.EqualTo(dequantized.AsSpan(ids[t] * dim, dim).ToArray()), $"token {t} (row {ids[t]})");
        }
    }

    [Test]
    public void AWidthThatIsNotWholeSuperBlocksIsRefusedNamingItAndWhatToDo()
    {
        const int m = 1, k = 96, n = 2;
        var ex = Assert.Throws<ArgumentException>(() =>
            LinearKernel.Linear(_twoCores, new float[m * k], new byte[4096], ElementType.Q4_K, [], new float[m * n], m, k, n));
        Assert.That(ex!.Message, Does.Contain("rows of 96 weights").And.Contain("super-blocks of 256").And.Contain("Q8_0, Q4_0, F16 or BF16"));
        var layout = Assert.Throws<ArgumentException>(() => QuantizedWeightLayout.Q4_KFromGguf(new byte[144], 1, 96));
        Assert.That(layout!.Message, Does.Contain("super-blocks of 256"));
    }

    [Test]
    public void MisSizedBlocksAndWeightsAreRefused()
    {
        const int rows = 9, cols = 256;
        byte[] gguf = K4Reference.RandomBlocks(rows, cols, seed: 9);
        var ex = Assert.Throws<ArgumentException>(() => QuantizedWeightLayout.Q4_KFromGguf(gguf.AsSpan(1).ToArray(), rows, cols));
        Assert.That(ex!.Message, Does.Contain($"[{rows}, {cols}] Q4_K matrix").And.Contain("whole data"));
        // Two strips (the second padded), each 8 blocks of 128 quant bytes and one 192-byte record.
        long bytes = ElementTypes.MatrixBytes(ElementType.Q4_K, rows, cols);
        Assert.That(bytes, Is.EqualTo(2 * ((8 * 128) + 192)));
        Assert.Throws<ArgumentException>(() =>
            LinearKernel.Linear(_twoCores, new float[cols], new byte[bytes - 1], ElementType.Q4_K, [], new float[rows], 1, cols, rows));
    }

    private static (double[] Expected, double[] Bound) TorchLinear(float[] x, byte[] gguf, float[] bias, int m, int k, int n) =>
        QuantizedLinearTests.TorchLinear([.. K4Reference.Dequantize(gguf, n, k).Select(w => (double)w)], x, bias, m, k, n);

    private static void AssertWithin(float[] actual, double[] expected, double[] bound, string what) => QuantizedLinearTests.AssertWithin(actual, expected, bound, what);

    /// <summary>GGUF Q4_K as ggml defines block_q4_K, written and read by the test itself.</summary>
    internal static class K4Reference
    {
        private const int BlockBytes = 144;

        /// <summary>
        /// Random super-blocks: d and dmin f16 of magnitude about 2⁻⁹ (dmin sometimes 0, sometimes
        /// negative, as ggml can write), every sc and m in 0..63 (with 0 and 63 forced in places),
        /// random nibbles; the 12 scale bytes packed as get_scale_min_k4 reads them.
        /// </summary>
        public static byte[] RandomBlocks(int rows, int cols, int seed)
        {
            var rng = new Random(seed);
            int supers = cols / 256;
            byte[] gguf = new byte[rows * supers * BlockBytes];
            for (int s = 0; s < rows * supers; s++)
            {
                Span<byte> block = gguf.AsSpan(s * BlockBytes, BlockBytes);
                BinaryPrimitives.WriteHalfLittleEndian(block, (Half)((0.5 + rng.NextDouble()) / 512));
                double dmin = s % 5 == 0 ? 0 : (s % 7 == 0 ? -1 : 1) * (0.5 + rng.NextDouble()) / 256;
                BinaryPrimitives.WriteHalfLittleEndian(block[2..], (Half)dmin);
                int[] sc = new int[8], mn = new int[8];
                for (int j = 0; j < 8; j++)
                {
                    sc[j] = j == s % 8 ? 63 : rng.Next(64);
                    mn[j] = j == (s + 3) % 8 ? 0 : j == (s + 5) % 8 ? 63 : rng.Next(64);
                }
                Span<byte> packed = block.Slice(4, 12);
                for (int j = 0; j < 4; j++)
                {
                    packed[j] = (byte)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
                    packed[j + 4] = (byte)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
                    packed[j + 8] = (byte)((sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4));
                }
                rng.NextBytes(block[16..]);
            }
            return gguf;
        }

        /// <summary>Block j's (scale, min) of a super-block's packed bytes: ggml's get_scale_min_k4.</summary>
        private static (int Scale, int Min) ScaleMin(ReadOnlySpan<byte> q, int j) => j < 4
            ? (q[j] & 63, q[j + 4] & 63)
            : ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4));

        /// <summary>Element i of a super-block's 256 as (q, block): block j = i / 32 is the low (even j) or high (odd j) nibbles of bytes 32·(j/2)..+31.</summary>
        private static int Q(ReadOnlySpan<byte> block, int i) => (block[16 + (32 * (i / 64)) + (i % 32)] >> (4 * ((i / 32) % 2))) & 0x0F;

        private static (double D, double Min) Scales(ReadOnlySpan<byte> block, int j)
        {
            (int sc, int m) = ScaleMin(block.Slice(4, 12), j);
            return ((double)BinaryPrimitives.ReadHalfLittleEndian(block) * sc, (double)BinaryPrimitives.ReadHalfLittleEndian(block[2..]) * m);
        }

        /// <summary>ggml's dequantize_row_q4_K, in f32 as it rounds: (d·sc)·q − (dmin·m).</summary>
        public static float[] Dequantize(byte[] gguf, int rows, int cols)
        {
            float[] w = new float[rows * cols];
            for (int r = 0; r < rows; r++)
            {
                for (int i = 0; i < cols; i++)
                {
                    ReadOnlySpan<byte> block = gguf.AsSpan((((r * cols) + i) / 256) * BlockBytes, BlockBytes);
                    (int sc, int m) = ScaleMin(block.Slice(4, 12), (i % 256) / 32);
                    float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block) * sc, dm = (float)BinaryPrimitives.ReadHalfLittleEndian(block[2..]) * m;
                    w[(r * cols) + i] = (d * Q(block, i % 256)) - dm;
                }
            }
            return w;
        }

        /// <summary>y = Σ_b d_x·(d·sc·Σ q·q_x − dmin·m·Σ q_x) (+ bias) in float64 with exact integer sums, and the bound of the class comment.</summary>
        public static (double[] Y, double[] Bound) Linear(float[] x, byte[] gguf, float[] bias, int m, int k, int n)
        {
            (sbyte[] qx, float[] dx) = QuantizedLinearTests.BlockReference.QuantizeActivations(x, m, k);
            int blocks = k / 32;
            double[] y = new double[m * n], bound = new double[m * n];
            for (int t = 0; t < m; t++)
            {
                for (int j = 0; j < n; j++)
                {
                    double sum = 0, magnitude = 0;
                    for (int b = 0; b < blocks; b++)
                    {
                        ReadOnlySpan<byte> block = gguf.AsSpan((((j * k) + (b * 32)) / 256) * BlockBytes, BlockBytes);
                        (double d, double min) = Scales(block, b % 8);
                        long dot = 0, absDot = 0, xsum = 0;
                        for (int i = b * 32; i < (b + 1) * 32; i++)
                        {
                            int p = Q(block, i % 256) * qx[(t * k) + i];
                            dot += p;
                            absDot += Math.Abs(p);
                            xsum += qx[(t * k) + i];
                        }
                        double xd = dx[(t * blocks) + b];
                        sum += xd * ((d * dot) - (min * xsum));
                        magnitude += Math.Abs(xd) * ((Math.Abs(d) * absDot) + (Math.Abs(min) * Math.Abs(xsum)));
                    }
                    double b0 = bias.Length > 0 ? bias[j] : 0;
                    y[(t * n) + j] = sum + b0;
                    bound[(t * n) + j] = (((2 * blocks) + 6) * U * magnitude) + (U * Math.Abs(sum + b0));
                }
            }
            return (y, bound);
        }
    }
}
