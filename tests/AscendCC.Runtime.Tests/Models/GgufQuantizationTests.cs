using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// ggml's block formats against an independent transcription of ggml-quants.c written here (its own
/// f16 decoder, the C loops as written), on hand-made blocks at the edges of each format.
/// </summary>
public class GgufQuantizationTests
{
    // ---- transcription of ggml (ggml-quants.c), kept deliberately close to the C ----

    /// <summary>IEEE binary16 bits to float, by hand: sign, 5-bit exponent (bias 15), 10-bit mantissa, subnormals, inf/NaN.</summary>
    private static float Fp16ToFp32(ushort h)
    {
        int sign = h >> 15, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
        if (exp == 31 && mant != 0)
        {
            // NaN keeps its sign and payload (F16C's vcvtph2ps, which ggml uses on x86).
            return BitConverter.UInt32BitsToSingle((uint)(sign << 31) | 0x7F800000u | ((uint)mant << 13));
        }
        double v = exp == 0 ? mant * Math.Pow(2, -24)
            : exp == 31 ? (mant == 0 ? double.PositiveInfinity : double.NaN)
            : (1 + mant / 1024.0) * Math.Pow(2, exp - 15);
        return (float)(sign == 1 ? -v : v);
    }

    private static ushort U16(byte[] x, int at) => (ushort)(x[at] | (x[at + 1] << 8));

    private static float[] RefQ8_0(byte[] x)
    {
        int nb = x.Length / 34;
        var y = new float[nb * 32];
        for (int i = 0; i < nb; i++)
        {
            float d = Fp16ToFp32(U16(x, i * 34));
            for (int j = 0; j < 32; ++j)
            {
                y[i * 32 + j] = (sbyte)x[i * 34 + 2 + j] * d;
            }
        }
        return y;
    }

    private static float[] RefQ4_0(byte[] x)
    {
        int nb = x.Length / 18;
        var y = new float[nb * 32];
        for (int i = 0; i < nb; i++)
        {
            float d = Fp16ToFp32(U16(x, i * 18));
            for (int j = 0; j < 16; ++j)
            {
                int x0 = (x[i * 18 + 2 + j] & 0x0F) - 8;
                int x1 = (x[i * 18 + 2 + j] >> 4) - 8;
                y[i * 32 + j + 0] = x0 * d;
                y[i * 32 + j + 16] = x1 * d;
            }
        }
        return y;
    }

    private static void GetScaleMinK4(int j, byte[] q, int qAt, out byte d, out byte m)
    {
        if (j < 4)
        {
            d = (byte)(q[qAt + j] & 63);
            m = (byte)(q[qAt + j + 4] & 63);
        }
        else
        {
            d = (byte)((q[qAt + j + 4] & 0xF) | ((q[qAt + j - 4] >> 6) << 4));
            m = (byte)((q[qAt + j + 4] >> 4) | ((q[qAt + j - 0] >> 6) << 4));
        }
    }

    private static float[] RefQ4_K(byte[] x)
    {
        int nb = x.Length / 144;
        var y = new float[nb * 256];
        int yp = 0;
        for (int i = 0; i < nb; i++)
        {
            int b = i * 144;
            int q = b + 16;
            float d = Fp16ToFp32(U16(x, b));
            float min = Fp16ToFp32(U16(x, b + 2));
            int isc = 0;
            for (int j = 0; j < 256; j += 64)
            {
                GetScaleMinK4(isc + 0, x, b + 4, out byte sc, out byte m);
                float d1 = d * sc, m1 = min * m;
                GetScaleMinK4(isc + 1, x, b + 4, out sc, out m);
                float d2 = d * sc, m2 = min * m;
                for (int l = 0; l < 32; ++l) y[yp++] = d1 * (x[q + l] & 0xF) - m1;
                for (int l = 0; l < 32; ++l) y[yp++] = d2 * (x[q + l] >> 4) - m2;
                q += 32;
                isc += 2;
            }
        }
        return y;
    }

    // ggml's dequantize_row_q5_K, transcribed: block_q5_K is d, dmin, scales[12], qh[32], qs[128].
    private static float[] RefQ5_K(byte[] x)
    {
        int nb = x.Length / 176;
        var y = new float[nb * 256];
        int yp = 0;
        for (int i = 0; i < nb; i++)
        {
            int b = i * 176;
            int ql = b + 48, qh = b + 16;
            float d = Fp16ToFp32(U16(x, b));
            float min = Fp16ToFp32(U16(x, b + 2));
            int isc = 0;
            byte u1 = 1, u2 = 2;
            for (int j = 0; j < 256; j += 64)
            {
                GetScaleMinK4(isc + 0, x, b + 4, out byte sc, out byte m);
                float d1 = d * sc, m1 = min * m;
                GetScaleMinK4(isc + 1, x, b + 4, out sc, out m);
                float d2 = d * sc, m2 = min * m;
                for (int l = 0; l < 32; ++l) y[yp++] = d1 * ((x[ql + l] & 0xF) + ((x[qh + l] & u1) != 0 ? 16 : 0)) - m1;
                for (int l = 0; l < 32; ++l) y[yp++] = d2 * ((x[ql + l] >> 4) + ((x[qh + l] & u2) != 0 ? 16 : 0)) - m2;
                ql += 32;
                isc += 2;
                u1 <<= 2;
                u2 <<= 2;
            }
        }
        return y;
    }

    private static float[] RefQ6_K(byte[] x)
    {
        int nb = x.Length / 210;
        var y = new float[nb * 256];
        int yp = 0;
        for (int i = 0; i < nb; i++)
        {
            int b = i * 210;
            float d = Fp16ToFp32(U16(x, b + 208));
            int ql = b, qh = b + 128, sc = b + 192;
            for (int n = 0; n < 256; n += 128)
            {
                for (int l = 0; l < 32; ++l)
                {
                    int isc = l / 16;
                    sbyte q1 = (sbyte)(((x[ql + l + 0] & 0xF) | (((x[qh + l] >> 0) & 3) << 4)) - 32);
                    sbyte q2 = (sbyte)(((x[ql + l + 32] & 0xF) | (((x[qh + l] >> 2) & 3) << 4)) - 32);
                    sbyte q3 = (sbyte)(((x[ql + l + 0] >> 4) | (((x[qh + l] >> 4) & 3) << 4)) - 32);
                    sbyte q4 = (sbyte)(((x[ql + l + 32] >> 4) | (((x[qh + l] >> 6) & 3) << 4)) - 32);
                    y[yp + l + 0] = d * (sbyte)x[sc + isc + 0] * q1;
                    y[yp + l + 32] = d * (sbyte)x[sc + isc + 2] * q2;
                    y[yp + l + 64] = d * (sbyte)x[sc + isc + 4] * q3;
                    y[yp + l + 96] = d * (sbyte)x[sc + isc + 6] * q4;
                }
                yp += 128;
                ql += 64;
                qh += 32;
                sc += 8;
            }
        }
        return y;
    }

    // ---- hand-made blocks ----

    /// <summary>f16 scales at the edges: positive, negative, the smallest subnormal, the largest subnormal, zero, -0, the largest normal.</summary>
    private static readonly ushort[] Scales = [0x3C00, 0xBC00, 0x0001, 0x03FF, 0x0000, 0x8000, 0x7BFF, 0x2E66, 0xB0CD];

    private static byte[] Q8Blocks()
    {
        var rng = new Random(8);
        var bytes = new List<byte>();
        foreach (ushort s in Scales)
        {
            bytes.Add((byte)s);
            bytes.Add((byte)(s >> 8));
            for (int j = 0; j < 32; j++)
            {
                // The int8 extremes first, then random values.
                bytes.Add(j switch { 0 => 0x80, 1 => 0x7F, 2 => 0xFF, 3 => 0x00, 4 => 0x01, _ => (byte)rng.Next(256) });
            }
        }
        return bytes.ToArray();
    }

    private static byte[] Q4Blocks()
    {
        var rng = new Random(4);
        var bytes = new List<byte>();
        foreach (ushort s in Scales)
        {
            bytes.Add((byte)s);
            bytes.Add((byte)(s >> 8));
            for (int j = 0; j < 16; j++)
            {
                // Nibble boundaries: 0 and 15 (→ −8 and +7) in both halves, 8 (→ 0), then random.
                bytes.Add(j switch { 0 => 0x0F, 1 => 0xF0, 2 => 0x00, 3 => 0xFF, 4 => 0x88, 5 => 0x78, _ => (byte)rng.Next(256) });
            }
        }
        return bytes.ToArray();
    }

    private static byte[] RandomKBlocks(int blockBytes, int[] scaleOffsets, int seed)
    {
        var rng = new Random(seed);
        var bytes = new byte[Scales.Length * blockBytes];
        rng.NextBytes(bytes);
        for (int i = 0; i < Scales.Length; i++)
        {
            foreach (int at in scaleOffsets)
            {
                // Every f16 field of the block takes an edge scale in turn.
                ushort s = Scales[(i + at) % Scales.Length];
                bytes[i * blockBytes + at] = (byte)s;
                bytes[i * blockBytes + at + 1] = (byte)(s >> 8);
            }
        }
        // One block with every bit set and one with none: the 6-bit scales' and the high bits' extremes.
        Array.Fill(bytes, (byte)0xFF, 0, blockBytes);
        Array.Fill(bytes, (byte)0x00, blockBytes, blockBytes);
        return bytes;
    }

    private static float[] Dequantize(GgufTensorType type, byte[] blocks)
    {
        var y = new float[blocks.Length / GgufTensorTypes.BlockBytes(type) * GgufTensorTypes.BlockSize(type)];
        GgufQuantization.Dequantize(type, blocks, y);
        return y;
    }

    private static void AssertBitEqual(float[] actual, float[] expected)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length));
        for (int i = 0; i < actual.Length; i++)
        {
            // Bit equality: -0 vs +0 counts (ggml computes the same float operations); any NaN equals any NaN,
            // as propagated payloads are the hardware's choice, not ggml's.
            if (float.IsNaN(actual[i]) && float.IsNaN(expected[i]))
            {
                continue;
            }
            Assert.That(BitConverter.SingleToInt32Bits(actual[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(expected[i])), $"element {i}: {actual[i]} vs {expected[i]}");
        }
    }

    [Test]
    public void Q8_0MatchesGgml() => AssertBitEqual(Dequantize(GgufTensorType.Q8_0, Q8Blocks()), RefQ8_0(Q8Blocks()));

    [Test]
    public void Q4_0MatchesGgml() => AssertBitEqual(Dequantize(GgufTensorType.Q4_0, Q4Blocks()), RefQ4_0(Q4Blocks()));

    [Test]
    public void Q4_KMatchesGgml()
    {
        byte[] blocks = RandomKBlocks(144, [0, 2], 12);
        AssertBitEqual(Dequantize(GgufTensorType.Q4_K, blocks), RefQ4_K(blocks));
    }

    [Test]
    public void Q5_KMatchesGgml()
    {
        byte[] blocks = RandomKBlocks(176, [0, 2], 13);
        AssertBitEqual(Dequantize(GgufTensorType.Q5_K, blocks), RefQ5_K(blocks));
    }

    [Test]
    public void Q6_KMatchesGgml()
    {
        byte[] blocks = RandomKBlocks(210, [208], 14);
        AssertBitEqual(Dequantize(GgufTensorType.Q6_K, blocks), RefQ6_K(blocks));
    }

    [Test]
    public void HandPickedValuesOfTheFormats()
    {
        // Q4_0, d = 1: low nibble of byte 0 is element 0, its high nibble element 16.
        byte[] q4 = new byte[18];
        q4[1] = 0x3C;
        q4[2] = 0xF0;
        float[] y = Dequantize(GgufTensorType.Q4_0, q4);
        Assert.Multiple(() =>
        {
            Assert.That(y[0], Is.EqualTo(-8f));
            Assert.That(y[16], Is.EqualTo(7f));
            Assert.That(y[1], Is.EqualTo(-8f));
        });
        // Q8_0, d = -2: q = -128 gives +256; the smallest subnormal scale 2^-24 times 127.
        byte[] q8 = new byte[68];
        q8[1] = 0xC0;
        q8[2] = 0x80;
        q8[34] = 0x01;
        q8[36] = 0x7F;
        y = Dequantize(GgufTensorType.Q8_0, q8);
        Assert.Multiple(() =>
        {
            Assert.That(y[0], Is.EqualTo(256f));
            Assert.That(y[32], Is.EqualTo(127 * MathF.Pow(2, -24)));
        });
    }

    [Test]
    public void Q8_0QuantizationRoundTripsWithinHalfAStepAndMatchesGgmlsRounding()
    {
        var rng = new Random(80);
        var x = new float[32 * 64];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-6, 3)));
        }
        // Edges: an all-zero block, a block with one value, exact halves (round away from zero).
        Array.Clear(x, 0, 32);
        Array.Clear(x, 32, 32);
        x[40] = -3.5f;
        for (int j = 0; j < 32; j++)
        {
            x[64 + j] = (j - 16) * 127f / 16f / 2f;
        }
        var q = new byte[x.Length / 32 * 34];
        GgufQuantization.QuantizeQ8_0(x, q);
        float[] back = Dequantize(GgufTensorType.Q8_0, q);
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++)
            {
                amax = Math.Max(amax, Math.Abs(x[b * 32 + j]));
            }
            // ggml: d = amax/127 rounded to f16; q = roundf(x · (1/d)) with the f32 d.
            float d = amax / 127f;
            Assert.That(U16(q, b * 34), Is.EqualTo(BitConverter.HalfToUInt16Bits((Half)d)), $"block {b} scale");
            for (int j = 0; j < 32; j++)
            {
                int i = b * 32 + j;
                float expectedQ = d == 0 ? 0 : MathF.Round(x[i] * (1f / d), MidpointRounding.AwayFromZero);
                Assert.That((sbyte)q[b * 34 + 2 + j], Is.EqualTo((sbyte)expectedQ), $"element {i}");
                // Half a step (and an ulp of x/d), plus the f16 rounding of the scale over up to 127 steps:
                // relative 2^-11 for a normal f16, absolute 2^-25 once the scale is subnormal (below 2^-14).
                double scaleError = Math.Max(d * Math.Pow(2, -11), Math.Pow(2, -25));
                Assert.That(Math.Abs(back[i] - x[i]), Is.LessThanOrEqualTo(d * (0.5 + 1e-6) + 127 * scaleError), $"element {i}");
            }
        }
        Assert.That(back[40], Is.EqualTo(-3.5f).Within(3.5 / 127 * 0.6));
        Assert.That(back.Take(32), Is.All.EqualTo(0f));
    }

    [Test]
    public void DequantizeRefusesPartialBlocks()
    {
        var e = Assert.Throws<ArgumentException>(() => GgufQuantization.Dequantize(GgufTensorType.Q8_0, new byte[33], new float[32]));
        Assert.That(e!.Message, Does.Contain("Q8_0"));
    }

    [Test]
    public void QuantizedTensorsAreReadThroughTheFileAsTheirDequantizedValues()
    {
        using var temp = new TempFolder();
        string path = temp.File("q.gguf");
        byte[] q8 = Q8Blocks(), q4 = Q4Blocks(), q4k = RandomKBlocks(144, [0, 2], 1), q6k = RandomKBlocks(210, [208], 2), q5k = RandomKBlocks(176, [0, 2], 3);
        new GgufWriter()
            .AddRawTensor("a", [32, Scales.Length], GgufTensorType.Q8_0, q8)
            .AddRawTensor("b", [32, Scales.Length], GgufTensorType.Q4_0, q4)
            .AddRawTensor("c", [256, Scales.Length], GgufTensorType.Q4_K, q4k)
            .AddRawTensor("d", [256, Scales.Length], GgufTensorType.Q6_K, q6k)
            .AddRawTensor("e", [256, Scales.Length], GgufTensorType.Q5_K, q5k)
            .Write(path);
        using var file = GgufFile.Open(path);
        foreach (var (name, expected) in new[] { ("a", RefQ8_0(q8)), ("b", RefQ4_0(q4)), ("c", RefQ4_K(q4k)), ("d", RefQ6_K(q6k)), ("e", RefQ5_K(q5k)) })
        {
            GgufTensorInfo info = file.FindTensor(name)!;
            var y = new float[info.ElementCount];
            file.ReadFloat32(info, y);
            AssertBitEqual(y, expected);
            Assert.That(info.FileOffset % 32, Is.EqualTo(0));
        }
    }
}
