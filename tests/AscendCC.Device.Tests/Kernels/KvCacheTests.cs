using AscendCC.Device.Kernels;
using NUnit.Framework;
using static AscendCC.Device.Tests.Kernels.KernelTestData;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// KV cache writes against torch slicing: a prefill then a decode step land in [nKvHeads, maxSeq, headDim]
/// exactly as a transpose of the [seq, nKvHeads, headDim] rows, and nothing else in the cache changes.
/// </summary>
[Category(KernelTestData.Category)]
public class KvCacheTests
{
    [TestCase(1, 8)]
    [TestCase(2, 64)]
    [TestCase(4, 3)]
    public void PrefillThenDecodeLandAtTheirPositions(int nKvHeads, int headDim)
    {
        const int maxSeq = 40;
        const int prefill = 17;
        int kvDim = nKvHeads * headDim;
        float[] kPrefill = Normal(prefill * kvDim, 1);
        float[] vPrefill = Normal(prefill * kvDim, 2);
        float[] kStep = Normal(kvDim, 3);
        float[] vStep = Normal(kvDim, 4);
        var kCache = Enumerable.Repeat(float.NaN, nKvHeads * maxSeq * headDim).ToArray();
        var vCache = Enumerable.Repeat(float.NaN, nKvHeads * maxSeq * headDim).ToArray();

        KvCache.KvCacheWrite(kPrefill, vPrefill, kCache, vCache, prefill, 0, nKvHeads, headDim, maxSeq);
        KvCache.KvCacheWrite(kStep, vStep, kCache, vCache, 1, prefill, nKvHeads, headDim, maxSeq);

        using var scope = NewDisposeScope();
        var kRows = cat([tensor(kPrefill, [prefill, nKvHeads, headDim]), tensor(kStep, [1, nKvHeads, headDim])], 0);
        var vRows = cat([tensor(vPrefill, [prefill, nKvHeads, headDim]), tensor(vStep, [1, nKvHeads, headDim])], 0);
        var kWritten = tensor(kCache, [nKvHeads, maxSeq, headDim]).narrow(1, 0, prefill + 1);
        var vWritten = tensor(vCache, [nKvHeads, maxSeq, headDim]).narrow(1, 0, prefill + 1);
        Assert.That(ToFloats(kWritten), Is.EqualTo(ToFloats(kRows.permute(1, 0, 2))));
        Assert.That(ToFloats(vWritten), Is.EqualTo(ToFloats(vRows.permute(1, 0, 2))));
        var untouched = tensor(kCache, [nKvHeads, maxSeq, headDim]).narrow(1, prefill + 1, maxSeq - prefill - 1);
        Assert.That(ToFloats(untouched), Is.All.NaN);
    }

    [Test]
    public void WritingPastMaxSeqThrows()
    {
        var cache = new float[2 * 8 * 4];
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            KvCache.KvCacheWrite(new float[3 * 8], new float[3 * 8], cache, new float[cache.Length], 3, 6, 2, 4, 8));
        Assert.That(ex!.ParamName, Is.EqualTo("startPos"));
    }
}
