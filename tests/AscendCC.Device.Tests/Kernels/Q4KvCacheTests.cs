using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// The KV cache in Q4_0Rows (llama.cpp's q4_0 with an f32 scale). The write must be llama.cpp's
/// quantize_row_q4_0_ref — max the first value of largest magnitude, d = max/−8, n = min(15,
/// trunc(x·(1/d) + 8.5)), value j low and value 16 + j high in byte j — which torch computes here
/// independently, block by block. Attention over the cache must be attention over its dequantized values
/// (n − 8)·d, bit for bit the f32 kernel's over them, and within the f32 tolerance of torch's float64
/// attention over them.
/// </summary>
[Category(KernelTestData.Category)]
public class Q4KvCacheTests
{
    private const ElementType Q4 = ElementType.Q4_0Rows;

    [Test]
    public void WriteQuantizesAsLlamaCppsQ4_0()
    {
        const int nKvHeads = 3, headDim = 96, maxSeq = 20, seq = 7, start = 5;
        int kvDim = nKvHeads * headDim;
        // Rows of very different scales, an all-zero block, a block with one spike, a block whose largest
        // magnitudes are +3 then −3 (the first decides d's sign), and evenly spaced values.
        float[] k = Normal(seq * kvDim, 1, std: 3f), v = Normal(seq * kvDim, 2, std: 1e-3f);
        Array.Clear(k, 0, 32);
        Array.Clear(k, 32, 32);
        k[40] = -1000f;
        for (int j = 0; j < 32; j++)
        {
            k[64 + j] = (j - 16) * 0.25f;
            k[96 + j] = j == 2 ? 3f : j == 5 ? -3f : (j - 16) * 0.125f;
        }
        (byte[] kCache, _) = QuantizedKvCacheChecks.WriteMatchesTheReference(Q4, 16, k, v, nKvHeads, headDim, maxSeq, seq, start, x =>
        {
            // Per block: the first value of largest |x|, d = max / −8, and n = min(15, trunc(x · (1/d) + 8.5)),
            // every step in float32 as ggml computes it; value j in byte j's low nibble, 16 + j in its high one.
            var max = x.gather(-1, x.abs().argmax(-1, keepdim: true));
            var d = max / -8f;
            var id = where(d.ne(0), 1f / d, zeros_like(d));
            var n = ((x * id) + 8.5f).trunc().clamp_max(15).to_type(ScalarType.Int32).permute(1, 0, 2, 3).contiguous();
            var packed = (n.narrow(-1, 0, 16) + (n.narrow(-1, 16, 16) * 16)).to_type(ScalarType.Byte).contiguous();
            return (packed.data<byte>().ToArray(), ToFloats(d.permute(1, 0, 2, 3).contiguous()));
        });
        // The block whose first largest magnitude is +3 (row 0's values 96.. are head 1's first block): d = 3/−8, negative.
        int tie = (int)KvCache.Bytes(Q4, ((long)1 * maxSeq + start) * headDim);
        Assert.That(BitConverter.ToSingle(kCache, tie + 16), Is.EqualTo(-0.375f), "+3 comes first, so d = −3/8");
        Assert.That(kCache[tie + 2] & 15, Is.Zero, "and +3 is the nibble 0: −8·d");
    }

    /// <summary>
    /// The AVX-512 write (the path on this machine) gives the scalar loop's bytes — zero blocks, spikes, equal
    /// magnitudes of both signs and non-finite blocks included — so the scalar path, which machines without
    /// AVX-512 take, is checked in-process too.
    /// </summary>
    [Test]
    public unsafe void TheVectorWriteGivesTheScalarLoopsBytes()
    {
        float[] values = Normal(64 * 32, 21, std: 4f);
        Array.Clear(values, 0, 32);
        for (int j = 0; j < 32; j++)
        {
            values[32 + j] = (j - 16) * 0.5f;
            values[64 + j] = j == 20 ? -7f : j == 30 ? 7f : j * 0.1f;
        }
        values[100] = 3e38f;
        values[130] = 1e-39f;
        values[160] = float.PositiveInfinity;
        values[200] = float.NaN;
        values[230] = float.NegativeInfinity;
        // Two NaNs in one block (a flag toggled per NaN would clear), and a block of negative zeros (d is 0/−8 = −0 whatever x's sign).
        values[260] = float.NaN;
        values[262] = float.NaN;
        Array.Fill(values, -0f, 288, 32);
        // One block's worth of guard bytes after each row: neither write may go past its count.
        var vector = new byte[(values.Length / 32 * KvCache.Q4BlockBytes) + KvCache.Q4BlockBytes];
        var scalar = new byte[vector.Length];
        vector.AsSpan(vector.Length - KvCache.Q4BlockBytes).Fill(0xA5);
        scalar.AsSpan(scalar.Length - KvCache.Q4BlockBytes).Fill(0xA5);
        fixed (float* x = values)
        fixed (byte* v = vector, s = scalar)
        {
            KvCache.QuantizeRowQ4(x, v, values.Length);
            KvCache.QuantizeRowQ4Scalar(x, s, values.Length);
        }
        for (int b = 0; b < values.Length / 32; b++)
        {
            int at = b * KvCache.Q4BlockBytes;
            Assert.That(vector.AsSpan(at, 16).ToArray(), Is.EqualTo(scalar.AsSpan(at, 16).ToArray()), $"block {b}'s nibbles");
            float dv = BitConverter.ToSingle(vector, at + 16), ds = BitConverter.ToSingle(scalar, at + 16);
            // A NaN scale is a NaN scale: its sign and payload carry nothing.
            Assert.That(float.IsNaN(ds) ? float.IsNaN(dv) : BitConverter.SingleToInt32Bits(dv) == BitConverter.SingleToInt32Bits(ds), $"block {b}'s d: {dv} against {ds}");
        }
        Assert.That(vector.AsSpan(vector.Length - KvCache.Q4BlockBytes).ToArray(), Has.All.EqualTo((byte)0xA5), "nothing written past the row (vector)");
        Assert.That(scalar.AsSpan(scalar.Length - KvCache.Q4BlockBytes).ToArray(), Has.All.EqualTo((byte)0xA5), "nothing written past the row (scalar)");
        Assert.That(BitConverter.ToSingle(scalar, (2 * KvCache.Q4BlockBytes) + 16), Is.EqualTo(0.875f), "−7 comes before +7: d = −7/−8");
        Assert.That(BitConverter.ToSingle(scalar, KvCache.Q4BlockBytes + 16), Is.EqualTo(1f), "the evenly spaced block's max is −8: d = 1");
        Assert.That(scalar.AsSpan(KvCache.Q4BlockBytes, 4).ToArray(), Is.EqualTo(new byte[] { 0x80, 0x91, 0x91, 0xA2 }), "x + 8.5 truncated: −8, −7.5, −7, −6.5 → n 0, 1, 1, 2; 0, 0.5, 1, 1.5 → 8, 9, 9, 10");
        Assert.That(BitConverter.SingleToInt32Bits(BitConverter.ToSingle(scalar, 16)), Is.EqualTo(BitConverter.SingleToInt32Bits(-0f)), "an all-zero block's d is 0/−8 = −0");
        Assert.That(BitConverter.SingleToInt32Bits(BitConverter.ToSingle(scalar, (9 * KvCache.Q4BlockBytes) + 16)), Is.EqualTo(BitConverter.SingleToInt32Bits(-0f)), "so is a block of −0's");
        Assert.That(BitConverter.ToSingle(scalar, (8 * KvCache.Q4BlockBytes) + 16), Is.NaN, "a block with two NaNs has a NaN d");
    }

    [Test]
    public void ABlockHoldingAnInfinityOrNaNReadsBackNonFiniteNotAsNumbers() =>
        QuantizedKvCacheChecks.NonFiniteBlocksReadBackNonFinite(Q4, Dequantize);

    [TestCaseSource(typeof(QuantizedKvCacheChecks), nameof(QuantizedKvCacheChecks.AttentionShapes), new object[] { "Q4_0 cache" })]
    public void AttentionOverAQ4CacheIsAttentionOverItsDequantizedValues(int seq, int startPos, int nHeads, int nKvHeads, int headDim, int window) =>
        QuantizedKvCacheChecks.AttentionIsAttentionOverItsDequantizedValues(Q4, 16, Dequantize, seq, startPos, nHeads, nKvHeads, headDim, window);

    [Test]
    public unsafe void TheReaderLoadsEveryValueAsNMinus8TimesDInEachWidth()
    {
        const int headDim = 128, positions = 3;
        var cache = new byte[KvCache.Bytes(Q4, (long)positions * headDim)];
        KvCache.KvCacheWrite(Normal(positions * headDim, 9, std: 5f), Normal(positions * headDim, 10), cache, new byte[cache.Length], Q4, positions, 0, 1, headDim, positions);
        float[] expected = Dequantize(cache);
        (float[] by16, float[] by8, float[] by1) = QuantizedKvCacheChecks.ReadEveryWidth<KvCache.Q4_0RowReader>(cache, positions, headDim);
        // Bytes(i) is the byte holding element i's nibble, inside a block as at its start (the prefetches use offsets inside blocks).
        for (int i = 0; i < expected.Length; i++)
        {
            long at = KvCache.Bytes(Q4, i);
            Assert.That((long)KvCache.Q4_0RowReader.Bytes(i), Is.EqualTo(at), $"reader offset of element {i}");
            float d = BitConverter.ToSingle(cache, (i / 32 * KvCache.Q4BlockBytes) + 16);
            int n = i % 32 < 16 ? cache[at] & 15 : cache[at] >> 4;
            Assert.That((n - 8) * d, Is.EqualTo(expected[i]), $"element {i} at byte {at}");
        }
        Assert.That(by16, Is.EqualTo(expected), "Load16");
        Assert.That(by8, Is.EqualTo(expected), "Load8");
        Assert.That(by1, Is.EqualTo(expected), "Load");
    }

    [Test]
    public void RowsThatAreNotWholeBlocksAreRefused() => QuantizedKvCacheChecks.RowsThatAreNotWholeBlocksAreRefused(Q4);

    /// <summary>Every value of a head-major cache (maxSeq·headDim values a head, whole blocks) as (n − 8)·d, value j low and 16 + j high in byte j.</summary>
    private static float[] Dequantize(byte[] cache)
    {
        int blocks = cache.Length / KvCache.Q4BlockBytes;
        var values = new float[blocks * KvCache.Q4Block];
        for (int b = 0; b < blocks; b++)
        {
            int at = b * KvCache.Q4BlockBytes;
            float d = BitConverter.ToSingle(cache, at + 16);
            for (int j = 0; j < 16; j++)
            {
                values[(b * KvCache.Q4Block) + j] = ((cache[at + j] & 15) - 8) * d;
                values[(b * KvCache.Q4Block) + 16 + j] = ((cache[at + j] >> 4) - 8) * d;
            }
        }
        return values;
    }
}
