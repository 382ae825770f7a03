using AscendCC.Device.Kernels;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// The cache write checks every argument before it touches memory through raw pointers: a geometry that
/// does not fit the spans it is given is refused naming the argument, and the cache is left as it was.
/// (The operators check their scalars too; these are the kernel's own checks, which direct callers and
/// the batched write rely on.)
/// </summary>
public class KvCacheArgumentTests
{
    private const int Heads = 2, HeadDim = 32, MaxSeq = 4;

    private static IEnumerable<TestCaseData> BadWrites()
    {
        int rows = Heads * HeadDim, cache = (int)KvCache.Bytes(ElementType.Q8_0Rows, Heads * MaxSeq * HeadDim);
        // k length, v length, k cache bytes, v cache bytes, seq, startPos, heads, headDim, maxSeq, the argument named
        yield return new TestCaseData(rows, rows, cache, cache, 1, MaxSeq, Heads, HeadDim, MaxSeq, "startPos").SetArgDisplayNames("a position past the cache");
        yield return new TestCaseData(rows, rows, cache, cache, -1, 0, Heads, HeadDim, MaxSeq, "seq").SetArgDisplayNames("a negative length");
        yield return new TestCaseData(rows, rows, cache, cache, 1, -1, Heads, HeadDim, MaxSeq, "startPos").SetArgDisplayNames("a negative position");
        yield return new TestCaseData(rows - 1, rows, cache, cache, 1, 0, Heads, HeadDim, MaxSeq, "k").SetArgDisplayNames("keys a value short");
        yield return new TestCaseData(rows, rows - 1, cache, cache, 1, 0, Heads, HeadDim, MaxSeq, "v").SetArgDisplayNames("values a value short");
        yield return new TestCaseData(rows, rows, cache - 1, cache, 1, 0, Heads, HeadDim, MaxSeq, "kCache").SetArgDisplayNames("a key cache a byte short");
        yield return new TestCaseData(rows, rows, cache, cache - 1, 1, 0, Heads, HeadDim, MaxSeq, "vCache").SetArgDisplayNames("a value cache a byte short");
        yield return new TestCaseData(rows, rows, cache, cache, 1, 0, 0, HeadDim, MaxSeq, "nKvHeads").SetArgDisplayNames("no heads");
        yield return new TestCaseData(rows, rows, cache, cache, 1, 0, Heads, 0, MaxSeq, "headDim").SetArgDisplayNames("empty heads");
        yield return new TestCaseData(rows, rows, cache, cache, 0, 0, Heads, HeadDim, 0, "maxSeq").SetArgDisplayNames("no positions");
    }

    [TestCaseSource(nameof(BadWrites))]
    public void AWriteThatDoesNotFitIsRefusedNamingTheArgument(int kLength, int vLength, int kBytes, int vBytes, int seq, int startPos, int heads, int headDim, int maxSeq, string named)
    {
        var kCache = new byte[kBytes];
        var vCache = new byte[vBytes];
        Array.Fill(kCache, (byte)0x5A);
        Array.Fill(vCache, (byte)0x5A);
        var ex = Assert.Catch<ArgumentException>(() => KvCache.KvCacheWrite(new float[kLength], new float[vLength], kCache, vCache, ElementType.Q8_0Rows, seq, startPos, heads, headDim, maxSeq));
        Assert.That(ex!.ParamName, Is.EqualTo(named));
        Assert.That(kCache, Has.All.EqualTo((byte)0x5A), "the cache is untouched");
        Assert.That(vCache, Has.All.EqualTo((byte)0x5A));
    }

    /// <summary>A batched write whose slots' size does not fit an int is refused as an overflow, not wrapped into a smaller slot.</summary>
    [Test]
    public void ABatchedWriteWhoseSlotSizeOverflowsIsRefused()
    {
        var cache = new byte[64];
        Assert.Throws<OverflowException>(() => KvCache.KvCacheWrite(new float[64], new float[64], cache, cache, ElementType.F32,
            [new SequenceSegment(0, 0, 1)], 64, 64, 1 << 20));
    }
}
