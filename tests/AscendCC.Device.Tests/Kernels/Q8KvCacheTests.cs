using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// The KV cache in Q8_0Rows (llama.cpp's q8_0 with an f32 scale). The write must be llama.cpp's
/// quantize_row_q8_0_ref — d = max|x|/127, q = round(x·(1/d)) half away from zero — which torch computes
/// here independently, block by block. Attention over the cache must be attention over its dequantized
/// values q·d: the product is the only rounding and the rest is the f32 kernel's arithmetic in its order,
/// so the output equals the f32 kernel's over the dequantized cache bit for bit, and sits within the f32
/// tolerance of torch's float64 attention over those values.
/// </summary>
[Category(KernelTestData.Category)]
public class Q8KvCacheTests
{
    private const ElementType Q8 = ElementType.Q8_0Rows;

    [Test]
    public void WriteQuantizesAsLlamaCppsQ8_0()
    {
        const int nKvHeads = 3, headDim = 96, maxSeq = 20, seq = 7, start = 5;
        int kvDim = nKvHeads * headDim;
        // Rows of very different scales, an all-zero block, a block with one spike, and a block of evenly spaced values (ties near x·(1/d) = ±63.5).
        float[] k = Normal(seq * kvDim, 1, std: 3f), v = Normal(seq * kvDim, 2, std: 1e-3f);
        Array.Clear(k, 0, 32);
        Array.Clear(k, 32, 32);
        k[40] = -1000f;
        for (int j = 0; j < 32; j++)
        {
            k[64 + j] = (j - 16) * 0.25f;
            // max|x| 127 makes d exactly 1, so these half-integers are exact ties: half away from zero, not to even.
            k[96 + j] = j == 0 ? 127f : (j % 2 == 0 ? 1 : -1) * (j + 0.5f);
        }
        QuantizedKvCacheChecks.WriteMatchesTheReference(Q8, 32, k, v, nKvHeads, headDim, maxSeq, seq, start, x =>
        {
            // Per block: amax, d = amax / 127 and q = round-half-away(x · (1 / d)) in float32, then rounded in float64.
            var d = x.abs().amax([-1], keepdim: true) / 127f;
            var id = where(d.ne(0), 1f / d, zeros_like(d));
            var y = (x * id).to_type(ScalarType.Float64);
            var q = (y.sign() * (y.abs() + 0.5).floor()).to_type(ScalarType.Int8).permute(1, 0, 2, 3).contiguous();
            return (q.data<sbyte>().ToArray().Select(b => (byte)b).ToArray(), ToFloats(d.permute(1, 0, 2, 3).contiguous()));
        });
    }

    /// <summary>
    /// The AVX-512 write (the path on this machine) gives the scalar loop's bytes, ties, zero blocks, spikes and
    /// non-finite blocks included — so the scalar path, which machines without AVX-512 take, is checked in-process too.
    /// </summary>
    [Test]
    public unsafe void TheVectorWriteGivesTheScalarLoopsBytes()
    {
        float[] values = Normal(64 * 32, 21, std: 4f);
        Array.Clear(values, 0, 32);
        for (int j = 0; j < 32; j++)
        {
            values[32 + j] = j == 0 ? -127f : (j % 2 == 0 ? 1 : -1) * (j + 0.5f);
            values[64 + j] = (j - 16) * 0.25f;
        }
        values[100] = 3e38f;
        values[130] = 1e-39f;
        values[160] = float.PositiveInfinity;
        values[200] = float.NaN;
        values[230] = float.NegativeInfinity;
        // One block's worth of guard bytes after each row: neither write may go past its count.
        var vector = new byte[(values.Length / 32 * KvCache.Q8BlockBytes) + KvCache.Q8BlockBytes];
        var scalar = new byte[vector.Length];
        vector.AsSpan(vector.Length - KvCache.Q8BlockBytes).Fill(0xA5);
        scalar.AsSpan(scalar.Length - KvCache.Q8BlockBytes).Fill(0xA5);
        fixed (float* x = values)
        fixed (byte* v = vector, s = scalar)
        {
            KvCache.QuantizeRow(x, v, values.Length);
            KvCache.QuantizeRowScalar(x, s, values.Length);
        }
        for (int b = 0; b < values.Length / 32; b++)
        {
            int at = b * KvCache.Q8BlockBytes;
            Assert.That(vector.AsSpan(at, 32).ToArray(), Is.EqualTo(scalar.AsSpan(at, 32).ToArray()), $"block {b}'s q");
            float dv = BitConverter.ToSingle(vector, at + 32), ds = BitConverter.ToSingle(scalar, at + 32);
            // A NaN scale is a NaN scale: its sign and payload carry nothing.
            Assert.That(float.IsNaN(ds) ? float.IsNaN(dv) : BitConverter.SingleToInt32Bits(dv) == BitConverter.SingleToInt32Bits(ds), $"block {b}'s d: {dv} against {ds}");
        }
        Assert.That(vector.AsSpan(vector.Length - KvCache.Q8BlockBytes).ToArray(), Has.All.EqualTo((byte)0xA5), "nothing written past the row (vector)");
        Assert.That(scalar.AsSpan(scalar.Length - KvCache.Q8BlockBytes).ToArray(), Has.All.EqualTo((byte)0xA5), "nothing written past the row (scalar)");
        Assert.That(BitConverter.ToSingle(scalar, (2 * KvCache.Q8BlockBytes) - 4), Is.EqualTo(1f), "the tie block's d is exactly 1");
        Assert.That(scalar.AsSpan(KvCache.Q8BlockBytes, 32).ToArray().Select(b => (sbyte)b).Skip(1).Take(4), Is.EqualTo(new sbyte[] { -2, 3, -4, 5 }), "ties away from zero: -1.5, 2.5, -3.5, 4.5");
    }

    [Test]
    public void ABlockHoldingAnInfinityOrNaNReadsBackNonFiniteNotAsNumbers() =>
        QuantizedKvCacheChecks.NonFiniteBlocksReadBackNonFinite(Q8, Dequantize);

    [TestCaseSource(typeof(QuantizedKvCacheChecks), nameof(QuantizedKvCacheChecks.AttentionShapes), new object[] { "Q8_0 cache" })]
    public void AttentionOverAQ8CacheIsAttentionOverItsDequantizedValues(int seq, int startPos, int nHeads, int nKvHeads, int headDim, int window) =>
        QuantizedKvCacheChecks.AttentionIsAttentionOverItsDequantizedValues(Q8, 32, Dequantize, seq, startPos, nHeads, nKvHeads, headDim, window);

    [Test]
    public unsafe void TheReaderLoadsEveryValueAsQTimesDInEachWidth()
    {
        const int headDim = 128, positions = 3;
        var cache = new byte[KvCache.Bytes(Q8, (long)positions * headDim)];
        KvCache.KvCacheWrite(Normal(positions * headDim, 9, std: 5f), Normal(positions * headDim, 10), cache, new byte[cache.Length], Q8, positions, 0, 1, headDim, positions);
        float[] expected = Dequantize(cache);
        (float[] by16, float[] by8, float[] by1) = QuantizedKvCacheChecks.ReadEveryWidth<KvCache.Q8_0RowReader>(cache, positions, headDim);
        // Bytes(i) is where element i's q lies, inside a block as at its start (the prefetches use offsets inside blocks).
        for (int i = 0; i < expected.Length; i++)
        {
            long at = KvCache.Bytes(Q8, i);
            Assert.That((long)KvCache.Q8_0RowReader.Bytes(i), Is.EqualTo(at), $"reader offset of element {i}");
            float d = BitConverter.ToSingle(cache, (i / 32 * KvCache.Q8BlockBytes) + 32);
            Assert.That((sbyte)cache[at] * d, Is.EqualTo(expected[i]), $"element {i} at byte {at}");
        }
        Assert.That(by16, Is.EqualTo(expected), "Load16");
        Assert.That(by8, Is.EqualTo(expected), "Load8");
        Assert.That(by1, Is.EqualTo(expected), "Load");
    }

    [Test]
    public void RowsThatAreNotWholeBlocksAreRefused() => QuantizedKvCacheChecks.RowsThatAreNotWholeBlocksAreRefused(Q8);

    /// <summary>Every value of a head-major cache (maxSeq·headDim values a head, whole blocks) as q·d.</summary>
    private static float[] Dequantize(byte[] cache)
    {
        int blocks = cache.Length / KvCache.Q8BlockBytes;
        var values = new float[blocks * KvCache.Q8Block];
        for (int b = 0; b < blocks; b++)
        {
            float d = BitConverter.ToSingle(cache, (b * KvCache.Q8BlockBytes) + KvCache.Q8Block);
            for (int j = 0; j < KvCache.Q8Block; j++)
            {
                values[(b * KvCache.Q8Block) + j] = (sbyte)cache[(b * KvCache.Q8BlockBytes) + j] * d;
            }
        }
        return values;
    }
}
