using System.Runtime.InteropServices;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// The KV cache in F16 and BF16. The write's rounding must be torch's <c>.to(float16)</c> /
/// <c>.to(bfloat16)</c> (round to nearest even, fp16 overflow to infinity, fp16 subnormals) value for
/// value, ties and edges included. Attention over a half cache must be attention over the widened
/// values: widening is exact and everything after it is the f32 kernel's arithmetic in the same order,
/// so the output equals the f32 kernel's over the widened cache bit for bit, and so sits within the f32
/// test's tolerance (atol 2e-5 / rtol 1e-4, see <see cref="AttentionTests"/>) of torch's float64
/// scaled_dot_product_attention over those same rounded values. Positions outside what a launch may
/// read hold the type's NaN, as in the f32 tests.
/// </summary>
[Category(KernelTestData.Category)]
public class HalfKvCacheTests
{
    private static readonly ElementType[] HalfTypes = [ElementType.F16, ElementType.BF16];

    [TestCase((int)ElementType.F16, TestName = "{m}(F16)")]
    [TestCase((int)ElementType.BF16, TestName = "{m}(BF16)")]
    public void WriteRoundsAsTorchToHalf(int typeCode)
    {
        var type = (ElementType)typeCode;
        float[] values = RoundingProbe(type);
        const int nKvHeads = 1, maxSeq = 1;
        int headDim = values.Length;
        var kCache = new byte[headDim * 2];
        var vCache = new byte[headDim * 2];
        float[] negated = values.Select(x => -x).ToArray();
        KvCache.KvCacheWrite(values, negated, kCache, vCache, type, 1, 0, nKvHeads, headDim, maxSeq);

        using var scope = NewDisposeScope();
        ScalarType torchType = type == ElementType.F16 ? ScalarType.Float16 : ScalarType.BFloat16;
        float[] expectedK = ToFloats(tensor(values).to_type(torchType));
        float[] expectedV = ToFloats(tensor(negated).to_type(torchType));
        AssertSameValues(Widen(kCache, type), expectedK, values, $"{type} keys");
        AssertSameValues(Widen(vCache, type), expectedV, negated, $"{type} values");
    }

    [TestCase((int)ElementType.F16, TestName = "{m}(F16)")]
    [TestCase((int)ElementType.BF16, TestName = "{m}(BF16)")]
    public void WriteRoundsNormalRowsAsTorchAtEveryPosition(int typeCode)
    {
        var type = (ElementType)typeCode;
        const int nKvHeads = 3, headDim = 80, maxSeq = 50, prefill = 37;
        int kvDim = nKvHeads * headDim;
        float[] k = Normal(prefill * kvDim, 11, std: 3f);
        float[] v = Normal(prefill * kvDim, 12, std: 0.01f);
        float[] kStep = Normal(kvDim, 13, std: 100f);
        float[] vStep = Normal(kvDim, 14);
        int bytes = nKvHeads * maxSeq * headDim * 2;
        byte[] kCache = Enumerable.Repeat((byte)0xFF, bytes).ToArray();
        byte[] vCache = Enumerable.Repeat((byte)0xFF, bytes).ToArray();
        KvCache.KvCacheWrite(k, v, kCache, vCache, type, prefill, 0, nKvHeads, headDim, maxSeq);
        KvCache.KvCacheWrite(kStep, vStep, kCache, vCache, type, 1, prefill, nKvHeads, headDim, maxSeq);

        using var scope = NewDisposeScope();
        ScalarType torchType = type == ElementType.F16 ? ScalarType.Float16 : ScalarType.BFloat16;
        Tensor Rows(float[] a, float[] b) => cat([tensor(a, [prefill, nKvHeads, headDim]), tensor(b, [1, nKvHeads, headDim])], 0).permute(1, 0, 2).to_type(torchType);
        var kWritten = tensor(Widen(kCache, type), [nKvHeads, maxSeq, headDim]);
        var vWritten = tensor(Widen(vCache, type), [nKvHeads, maxSeq, headDim]);
        Assert.That(ToFloats(kWritten.narrow(1, 0, prefill + 1)), Is.EqualTo(ToFloats(Rows(k, kStep))));
        Assert.That(ToFloats(vWritten.narrow(1, 0, prefill + 1)), Is.EqualTo(ToFloats(Rows(v, vStep))));
        // 0xFFFF is a NaN in both types: untouched positions stay so.
        Assert.That(ToFloats(kWritten.narrow(1, prefill + 1, maxSeq - prefill - 1)), Is.All.NaN);
    }

    // seq, startPos, nHeads, nKvHeads, headDim, window
    [TestCase(1, 0, 4, 4, 64, 0, TestName = "Half cache: first token")]
    [TestCase(1, 511, 8, 8, 64, 0, TestName = "Half cache: decode at context 512")]
    [TestCase(1, 300, 8, 1, 128, 0, TestName = "Half cache: decode, GQA 8, headDim 128")]
    [TestCase(1, 200, 4, 2, 80, 0, TestName = "Half cache: decode, headDim 80")]
    [TestCase(1, 511, 32, 4, 64, 0, TestName = "Half cache: decode at 512, 32 heads on 4 KV heads (heads of a group share a block)")]
    [TestCase(1, 300, 32, 4, 64, 100, TestName = "Half cache: decode, 32 heads on 4 KV heads, window 100")]
    [TestCase(1, 300, 32, 8, 64, 0, TestName = "Half cache: decode, 32 heads on 8 KV heads (four heads a block)")]
    [TestCase(1, 300, 16, 8, 128, 0, TestName = "Half cache: decode, 16 heads on 8 KV heads, headDim 128 (32-key tiles)")]
    [TestCase(3, 17, 4, 2, 8, 0, TestName = "Half cache: three tokens after 17, headDim 8")]
    [TestCase(17, 5, 8, 2, 64, 0, TestName = "Half cache: 17 tokens after 5, GQA 4")]
    [TestCase(33, 60, 6, 3, 80, 0, TestName = "Half cache: 33 tokens after 60, headDim 80")]
    [TestCase(67, 100, 8, 4, 128, 0, TestName = "Half cache: 67 tokens after 100, headDim 128")]
    [TestCase(300, 0, 8, 1, 64, 40, TestName = "Half cache: window 40, prefill 300, GQA 8")]
    [TestCase(1, 300, 8, 1, 128, 5, TestName = "Half cache: window 5, decode, headDim 128")]
    public void AttentionOverAHalfCacheIsAttentionOverItsWidenedValues(int seq, int startPos, int nHeads, int nKvHeads, int headDim, int window)
    {
        foreach (ElementType type in HalfTypes)
        {
            int ctx = startPos + seq;
            int maxSeq = ctx + 13;
            int unseen = window > 0 ? Math.Max(0, startPos - window + 1) : 0;
            float scale = 1f / MathF.Sqrt(headDim);
            float[] q = Normal(seq * nHeads * headDim, seq + 3 * headDim + nHeads);
            byte[] kCache = HalfCache(type, nKvHeads, maxSeq, headDim, unseen, ctx, 7 * seq + startPos);
            byte[] vCache = HalfCache(type, nKvHeads, maxSeq, headDim, unseen, ctx, 5 * seq + startPos + 1);
            AttentionTests.AssertIsAttentionOverWidenedValues(q, kCache, vCache, type, Widen(kCache, type), Widen(vCache, type),
                seq, startPos, nHeads, nKvHeads, headDim, maxSeq, scale, window);
        }
    }

    /// <summary>
    /// Decode steps over a half cache (the write, then attention over every key so far) allocate nothing.
    /// Measured process-wide, since attention runs on the AI Cores' threads; a core allocates its scratch
    /// the first time it runs attention, which a warm-up cannot force on every core, and other threads of
    /// the test process allocate now and then, so of ten windows of 20 steps one must allocate nothing (an
    /// allocating hot loop would allocate in all of them).
    /// </summary>
    [TestCase((int)ElementType.F16, TestName = "Half cache decode allocates nothing (F16)")]
    [TestCase((int)ElementType.BF16, TestName = "Half cache decode allocates nothing (BF16)")]
    public void DecodeStepsAllocateNothing(int typeCode)
    {
        var type = (ElementType)typeCode;
        const int nHeads = 8, nKvHeads = 4, headDim = 64, maxSeq = 512, prefill = 100;
        int kvDim = nKvHeads * headDim;
        float[] kRows = Normal(prefill * kvDim, 1), vRows = Normal(prefill * kvDim, 2);
        float[] q = Normal(prefill * nHeads * headDim, 3), output = new float[q.Length];
        var kCache = new byte[nKvHeads * maxSeq * headDim * 2];
        var vCache = new byte[kCache.Length];
        KvCache.KvCacheWrite(kRows, vRows, kCache, vCache, type, prefill, 0, nKvHeads, headDim, maxSeq);
        // Warm-up: a prefill (the tiled path) and decode steps (the single-row path) on every core.
        Attention.CausalAttention(AiCoreGrid.Shared, q, kCache, vCache, type, output, prefill, 0, nHeads, nKvHeads, headDim, maxSeq, 0.125f);
        float[] kStep = kRows[..kvDim], vStep = vRows[..kvDim], qStep = q[..(nHeads * headDim)], oStep = new float[nHeads * headDim];
        void Step(int pos)
        {
            KvCache.KvCacheWrite(kStep, vStep, kCache, vCache, type, 1, pos, nKvHeads, headDim, maxSeq);
            Attention.CausalAttention(AiCoreGrid.Shared, qStep, kCache, vCache, type, oStep, 1, pos, nHeads, nKvHeads, headDim, maxSeq, 0.125f);
        }
        for (int pos = prefill; pos < prefill + 20; pos++)
        {
            Step(pos);
        }
        // Earlier fixtures' torch tensors are finalized on another thread, which allocates: let that finish first.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var windows = new List<long>();
        for (int window = 0, pos = prefill + 20; window < 10 && !windows.Contains(0); window++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int end = pos + 20; pos < end; pos++)
            {
                Step(pos);
            }
            windows.Add(GC.GetTotalAllocatedBytes(precise: true) - before);
        }
        Assert.That(windows, Does.Contain(0L), $"bytes allocated by each window of 20 decode steps: {string.Join(", ", windows)}");
    }

    [Test]
    public void CacheSizedForF32IsRefusedForAHalfType()
    {
        var cache = new byte[2 * 16 * 8 * 4];
        var ex = Assert.Throws<ArgumentException>(() =>
            KvCache.KvCacheWrite(new float[2 * 8], new float[2 * 8], cache, cache, ElementType.BF16, 1, 0, 2, 8, 16));
        Assert.That(ex!.ParamName, Is.EqualTo("kCache"));
    }

    [TestCase((int)ElementType.Q8_0, TestName = "{m}(Q8_0)")]
    [TestCase((int)ElementType.Q4_0, TestName = "{m}(Q4_0)")]
    public void BlockFormatsAreNotCacheTypes(int typeCode)
    {
        var type = (ElementType)typeCode;
        var cache = new byte[2 * 16 * 8];
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            Attention.CausalAttention(AiCoreGrid.Shared, new float[4 * 8], cache, cache, type, new float[4 * 8], 1, 0, 4, 2, 8, 16, 1f));
        Assert.That(ex!.ParamName, Is.EqualTo("cacheType"));
    }

    // Ties, ulp edges, the fp16 range's ends (65504 max, 65520 the first value to round to infinity),
    // fp16 subnormals and their ties, zeros, infinities, NaN, and normal values; 1000+ entries so the
    // vector loops and the scalar tail both run.
    private static float[] RoundingProbe(ElementType type)
    {
        var values = new List<float> { 0f, -0f, 1f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, float.MaxValue, float.Epsilon };
        values.AddRange([65504f, 65519.99f, 65520f, 65536f, 1e6f, 6.1035156e-5f, 6.0975552e-5f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 8.940697e-8f, 1e-7f, 1e-9f]);
        var random = new Random(5);
        int mantissaDrop = type == ElementType.F16 ? 13 : 16;
        for (int i = 0; i < 256; i++)
        {
            // A random float whose dropped bits are exactly half (a tie), half ± 1, or zero.
            uint bits = (uint)random.Next() & ~((1u << mantissaDrop) - 1);
            bits = (bits & 0x807F_FFFF) | ((uint)random.Next(100, 150) << 23);
            uint half = 1u << (mantissaDrop - 1);
            values.Add(BitConverter.UInt32BitsToSingle(bits | half));
            values.Add(BitConverter.UInt32BitsToSingle(bits | (half - 1)));
            values.Add(BitConverter.UInt32BitsToSingle(bits | (half + 1)));
            values.Add(BitConverter.UInt32BitsToSingle(bits));
        }
        values.AddRange(Normal(1000 - values.Count % 16 + 7, 3, std: 50f));
        return values.ToArray();
    }

    private static void AssertSameValues(float[] actual, float[] expected, float[] inputs, string what)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            bool same = float.IsNaN(expected[i]) ? float.IsNaN(actual[i])
                : BitConverter.SingleToUInt32Bits(actual[i]) == BitConverter.SingleToUInt32Bits(expected[i]);
            Assert.That(same, $"{what}: element {i}, input {inputs[i]:R} (0x{BitConverter.SingleToUInt32Bits(inputs[i]):x8}) became {actual[i]:R}, torch gives {expected[i]:R}");
        }
    }

    private static byte[] HalfCache(ElementType type, int nKvHeads, int maxSeq, int headDim, int first, int filled, int seed)
    {
        float[] values = Normal(nKvHeads * maxSeq * headDim, seed);
        var cache = new byte[values.Length * 2];
        // The cache is head-major: round the values in place with the write's scalar rounding (the
        // write's own rounding is checked against torch above).
        Span<ushort> h = MemoryMarshal.Cast<byte, ushort>(cache.AsSpan());
        for (int i = 0; i < values.Length; i++)
        {
            h[i] = type == ElementType.F16 ? HalfRounding.F16(BitConverter.SingleToUInt32Bits(values[i])) : HalfRounding.BF16(BitConverter.SingleToUInt32Bits(values[i]));
        }
        ushort nan = type == ElementType.F16 ? (ushort)0x7E00 : (ushort)0x7FC0;
        for (int head = 0; head < nKvHeads; head++)
        {
            h.Slice(head * maxSeq * headDim, first * headDim).Fill(nan);
            h.Slice((head * maxSeq + filled) * headDim, (maxSeq - filled) * headDim).Fill(nan);
        }
        return cache;
    }

    private static float[] Widen(byte[] cache, ElementType type)
    {
        ReadOnlySpan<ushort> h = MemoryMarshal.Cast<byte, ushort>(cache.AsSpan());
        var wide = new float[h.Length];
        for (int i = 0; i < h.Length; i++)
        {
            wide[i] = type == ElementType.F16 ? ElementTypes.F16ToSingle(h[i]) : ElementTypes.BF16ToSingle(h[i]);
        }
        return wide;
    }
}
