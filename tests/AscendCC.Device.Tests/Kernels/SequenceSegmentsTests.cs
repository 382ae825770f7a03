using System.Runtime.InteropServices;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using NUnit.Framework;
using static AscendCC.Device.Tests.Kernels.KernelTestData;

namespace AscendCC.Device.Tests.Kernels;

/// <summary>
/// Batched decode's kernels: a pass's rows belong to segments, each a sequence with its own KV-cache
/// slot and positions. Batched attention must give each segment what single-sequence attention over
/// its slot gives — torch's float64 scaled_dot_product_attention over that slot's keys within the f32
/// tolerance of <see cref="AttentionTests"/> — and never read another slot: every position a segment
/// may not see, in its own slot and in every other, holds NaN. The batched cache write must place
/// each segment's rows in its slot at its positions and touch nothing else; the segment table is
/// checked before any kernel trusts it.
/// </summary>
[Category(KernelTestData.Category)]
public class SequenceSegmentsTests
{
    private const int Slots = 4, MaxSeq = 96;

    // A chunk of a prompt beside decode rows of other sequences, as continuous batching feeds them.
    private static readonly SequenceSegment[] Mixed = [new(2, 0, 40), new(0, 95, 1), new(3, 17, 3), new(1, 60, 33)];

    [TestCase(8, 8, 64, 0, TestName = "{m}(8 heads, headDim 64)")]
    [TestCase(8, 2, 64, 0, TestName = "{m}(GQA 4)")]
    [TestCase(6, 3, 80, 0, TestName = "{m}(headDim 80, GQA 2)")]
    [TestCase(4, 2, 32, 7, TestName = "{m}(window 7)")]
    public void BatchedAttentionIsEachSegmentsOwnAttention(int nHeads, int nKvHeads, int headDim, int window)
    {
        float scale = 1f / MathF.Sqrt(headDim);
        int rows = Mixed.Sum(s => s.Length);
        float[] q = Normal(rows * nHeads * headDim, 3);
        float[] kCache = SlotsWithNaNOutside(Mixed, nKvHeads, headDim, window, 11);
        float[] vCache = SlotsWithNaNOutside(Mixed, nKvHeads, headDim, window, 12);
        var output = new float[q.Length];
        Attention.CausalAttention(AiCoreGrid.Shared, q, MemoryMarshal.AsBytes(kCache.AsSpan()), MemoryMarshal.AsBytes(vCache.AsSpan()), ElementType.F32, output,
            Mixed, nHeads, nKvHeads, headDim, MaxSeq, scale, window);

        int slotFloats = nKvHeads * MaxSeq * headDim, rowFloats = nHeads * headDim, row = 0;
        foreach (SequenceSegment s in Mixed)
        {
            float[] slotK = kCache.AsSpan(s.Slot * slotFloats, slotFloats).ToArray(), slotV = vCache.AsSpan(s.Slot * slotFloats, slotFloats).ToArray();
            float[] expected = AttentionTests.TorchAttention(q.AsSpan(row * rowFloats, s.Length * rowFloats).ToArray(), slotK, slotV,
                s.Length, s.Start, nHeads, nKvHeads, headDim, MaxSeq, scale, window);
            AssertClose(output.AsSpan(row * rowFloats, s.Length * rowFloats), expected, 2e-5, 1e-4, $"segment of slot {s.Slot} ({s.Length} rows from {s.Start})");
            row += s.Length;
        }
    }

    [TestCase((int)ElementType.F16, TestName = "{m}(F16)")]
    [TestCase((int)ElementType.BF16, TestName = "{m}(BF16)")]
    [TestCase((int)ElementType.Q8_0Rows, TestName = "{m}(Q8_0Rows)")]
    [TestCase((int)ElementType.Q4_0Rows, TestName = "{m}(Q4_0Rows)")]
    public void BatchedWriteThenAttentionOverAHalfCacheEqualsTheSingleSequenceKernelsBitForBit(int typeCode)
    {
        var type = (ElementType)typeCode;
        const int nHeads = 8, nKvHeads = 2, headDim = 64;
        int rows = Mixed.Sum(s => s.Length), kvDim = nKvHeads * headDim, slotBytes = (int)KvCache.Bytes(type, nKvHeads * MaxSeq * headDim);
        float[] k = Normal(rows * kvDim, 21), v = Normal(rows * kvDim, 22), q = Normal(rows * nHeads * headDim, 23);
        // Earlier positions of each slot already hold keys; the pass writes its rows after them.
        var kCache = new byte[Slots * slotBytes];
        var vCache = new byte[Slots * slotBytes];
        foreach (SequenceSegment s in Mixed)
        {
            float[] earlier = Normal(s.Start * kvDim, 30 + s.Slot);
            KvCache.KvCacheWrite(earlier, earlier, kCache.AsSpan(s.Slot * slotBytes, slotBytes), vCache.AsSpan(s.Slot * slotBytes, slotBytes), type, s.Start, 0, nKvHeads, headDim, MaxSeq);
        }
        byte[] singleK = kCache.ToArray(), singleV = vCache.ToArray();

        KvCache.KvCacheWrite(k, v, kCache, vCache, type, Mixed, nKvHeads, headDim, MaxSeq);
        var batched = new float[q.Length];
        Attention.CausalAttention(AiCoreGrid.Shared, q, kCache, vCache, type, batched, Mixed, nHeads, nKvHeads, headDim, MaxSeq, 0.125f);

        int row = 0;
        var single = new float[q.Length];
        foreach (SequenceSegment s in Mixed)
        {
            Span<byte> sk = singleK.AsSpan(s.Slot * slotBytes, slotBytes), sv = singleV.AsSpan(s.Slot * slotBytes, slotBytes);
            KvCache.KvCacheWrite(k.AsSpan(row * kvDim, s.Length * kvDim), v.AsSpan(row * kvDim, s.Length * kvDim), sk, sv, type, s.Length, s.Start, nKvHeads, headDim, MaxSeq);
            int qFloats = nHeads * headDim;
            Attention.CausalAttention(AiCoreGrid.Shared, q.AsSpan(row * qFloats, s.Length * qFloats), sk, sv, type, single.AsSpan(row * qFloats, s.Length * qFloats),
                s.Length, s.Start, nHeads, nKvHeads, headDim, MaxSeq, 0.125f);
            row += s.Length;
        }
        Assert.That(kCache, Is.EqualTo(singleK), "the batched write put a row elsewhere than its slot and position");
        Assert.That(vCache, Is.EqualTo(singleV));
        Assert.That(batched, Is.EqualTo(single));
    }

    // A decode step: one row per sequence, at very different positions (so the cores' shares of the
    // work are cut by keys, not by rows).
    private static readonly SequenceSegment[] DecodeRows = [new(2, 95, 1), new(0, 3, 1), new(3, 60, 1), new(1, 17, 1)];

    [TestCase(8, 8, (int)ElementType.F16, 0, 1, TestName = "{m}(8 heads, F16, 1 core)")]
    [TestCase(8, 8, (int)ElementType.F16, 0, 2, TestName = "{m}(8 heads, F16, 2 cores)")]
    [TestCase(8, 8, (int)ElementType.F16, 0, 3, TestName = "{m}(8 heads, F16, 3 cores)")]
    [TestCase(8, 2, (int)ElementType.F16, 0, 3, TestName = "{m}(GQA 4, F16, 3 cores)")]
    [TestCase(6, 6, (int)ElementType.BF16, 7, 2, TestName = "{m}(window 7, BF16, 2 cores)")]
    [TestCase(4, 4, (int)ElementType.F32, 0, 3, TestName = "{m}(F32, 3 cores)")]
    [TestCase(8, 2, (int)ElementType.Q8_0Rows, 0, 3, TestName = "{m}(GQA 4, Q8_0Rows, 3 cores)")]
    [TestCase(12, 12, (int)ElementType.Q4_0Rows, 0, 2, TestName = "{m}(12 heads, Q4_0Rows, 2 cores)")]
    public void ADecodeStepSplitAcrossCoresGivesEveryRowItsSingleSequenceBits(int nHeads, int nKvHeads, int typeCode, int window, int cores)
    {
        // A decode step's blocks go to the cores as consecutive ranges of about equal keys (each core
        // then knows its next block and requests its first lines early): every block must run exactly
        // once, whatever the core count, and give what the single-sequence kernel gives.
        var type = (ElementType)typeCode;
        const int headDim = 64;
        int slotBytes = (int)KvCache.Bytes(type, nKvHeads * MaxSeq * headDim), kvDim = nKvHeads * headDim;
        var kCache = new byte[Slots * slotBytes];
        var vCache = new byte[Slots * slotBytes];
        foreach (SequenceSegment s in DecodeRows)
        {
            float[] keys = Normal((s.Start + 1) * kvDim, 50 + s.Slot), values = Normal((s.Start + 1) * kvDim, 60 + s.Slot);
            KvCache.KvCacheWrite(keys, values, kCache.AsSpan(s.Slot * slotBytes, slotBytes), vCache.AsSpan(s.Slot * slotBytes, slotBytes), type, s.Start + 1, 0, nKvHeads, headDim, MaxSeq);
        }
        int rowFloats = nHeads * headDim;
        float[] q = Normal(DecodeRows.Length * rowFloats, 70);
        var batched = new float[q.Length];
        batched.AsSpan().Fill(float.NaN);
        using (var grid = new AiCoreGrid(cores))
        {
            Attention.CausalAttention(grid, q, kCache, vCache, type, batched, DecodeRows, nHeads, nKvHeads, headDim, MaxSeq, 0.125f, window);
        }

        var single = new float[q.Length];
        for (int i = 0; i < DecodeRows.Length; i++)
        {
            SequenceSegment s = DecodeRows[i];
            Attention.CausalAttention(AiCoreGrid.Shared, q.AsSpan(i * rowFloats, rowFloats), kCache.AsSpan(s.Slot * slotBytes, slotBytes), vCache.AsSpan(s.Slot * slotBytes, slotBytes),
                type, single.AsSpan(i * rowFloats, rowFloats), 1, s.Start, nHeads, nKvHeads, headDim, MaxSeq, 0.125f, window);
        }
        Assert.That(batched, Is.EqualTo(single));
    }

    [TestCase(new long[] { 150, 150, 150, 150, 150, 150, 150, 150 }, 12, 2, TestName = "{m}(eight equal rows, 12 blocks each, 2 cores)")]
    [TestCase(new long[] { 96, 4, 61, 18 }, 4, 3, TestName = "{m}(uneven rows, 3 cores)")]
    [TestCase(new long[] { 2000, 10, 10, 10, 10 }, 2, 2, TestName = "{m}(one long row, 2 cores)")]
    [TestCase(new long[] { 5 }, 1, 4, TestName = "{m}(fewer blocks than cores)")]
    public void ADecodeStepsCoresGetConsecutiveRangesOfAboutEqualKeys(long[] keys, int blocksPerItem, int cores)
    {
        var bounds = new int[cores + 1];
        Attention.Partition(keys, blocksPerItem, bounds);
        int blocks = keys.Length * blocksPerItem;
        long total = keys.Sum() * blocksPerItem, largest = keys.Max();
        Assert.That(bounds[0], Is.EqualTo(0));
        Assert.That(bounds[cores], Is.EqualTo(blocks), "every block is in a range");
        long done = 0;
        for (int p = 0; p < cores; p++)
        {
            Assert.That(bounds[p + 1], Is.GreaterThanOrEqualTo(bounds[p]), "ranges are consecutive");
            for (int b = bounds[p]; b < bounds[p + 1]; b++)
            {
                done += keys[b / blocksPerItem];
            }
            // Each cut is the block boundary nearest to its share of the work: within half a block of it
            // (blocks cannot be split), so a long row's blocks do not pull their neighbours along.
            if (p + 1 < cores && bounds[p + 1] < blocks)
            {
                Assert.That(2 * Math.Abs((done * cores) - (total * (p + 1))), Is.LessThanOrEqualTo(largest * cores),
                    $"cut {p + 1} after {done} keys of {total} over {cores} cores");
            }
        }
    }

    [Test]
    public void BatchedWriteTouchesOnlyTheSegmentsRows()
    {
        const int nKvHeads = 2, headDim = 8;
        int rows = Mixed.Sum(s => s.Length), kvDim = nKvHeads * headDim, slotFloats = nKvHeads * MaxSeq * headDim;
        float[] k = Normal(rows * kvDim, 41), v = Normal(rows * kvDim, 42);
        var kCache = new float[Slots * slotFloats];
        var vCache = new float[Slots * slotFloats];
        kCache.AsSpan().Fill(float.NaN);
        vCache.AsSpan().Fill(float.NaN);
        KvCache.KvCacheWrite(k, v, MemoryMarshal.AsBytes(kCache.AsSpan()), MemoryMarshal.AsBytes(vCache.AsSpan()), ElementType.F32, Mixed, nKvHeads, headDim, MaxSeq);

        int row = 0, written = 0;
        foreach (SequenceSegment s in Mixed)
        {
            for (int r = 0; r < s.Length; r++, row++)
            {
                for (int h = 0; h < nKvHeads; h++)
                {
                    int at = s.Slot * slotFloats + (h * MaxSeq + s.Start + r) * headDim;
                    Assert.That(kCache.AsSpan(at, headDim).ToArray(), Is.EqualTo(k.AsSpan(row * kvDim + h * headDim, headDim).ToArray()));
                    Assert.That(vCache.AsSpan(at, headDim).ToArray(), Is.EqualTo(v.AsSpan(row * kvDim + h * headDim, headDim).ToArray()));
                }
            }
            written += s.Length * kvDim;
        }
        Assert.That(kCache.Count(float.IsNaN), Is.EqualTo(kCache.Length - written), "a row was written outside its segment's slot and positions");
    }

    private static IEnumerable<TestCaseData> BadTables()
    {
        yield return new TestCaseData(Table(0, 0, 2, 4, 0, 1), 2, 3, "outside the cache's 4 slots").SetArgDisplayNames("slot out of range");
        yield return new TestCaseData(Table(1, 0, 2, 1, 2, 1), 2, 3, "appears in two segments").SetArgDisplayNames("slot twice");
        yield return new TestCaseData(Table(1, 95, 2), 1, 2, "do not fit a cache of 96").SetArgDisplayNames("past the cache");
        yield return new TestCaseData(Table(1, -1, 2), 1, 2, "do not fit").SetArgDisplayNames("negative start");
        yield return new TestCaseData(Table(1, 0, 0), 1, 0, "do not fit").SetArgDisplayNames("empty segment");
        yield return new TestCaseData(Table(1, 0, 2, 2, 0, 2), 2, 5, "hold 4 rows but the pass feeds 5").SetArgDisplayNames("rows mismatch");
        yield return new TestCaseData(Table(1, 0, 2), 2, 2, "holds 1 segments, not 2").SetArgDisplayNames("count past the table");
    }

    private static int[] Table(params int[] values) => values;

    [TestCaseSource(nameof(BadTables))]
    public void ABadSegmentTableIsRefusedNamingTheProblem(int[] table, int count, int rows, string problem)
    {
        var ex = Assert.Catch<ArgumentException>(() => SequenceSegments.Read(table, count, rows, Slots, MaxSeq));
        Assert.That(ex!.Message, Does.Contain(problem));
    }

    [Test]
    public void BatchedAttentionRefusesASlotOutsideTheCaches()
    {
        var cache = new float[2 * 1 * 16 * 8];
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Attention.CausalAttention(AiCoreGrid.Shared, new float[2 * 8], MemoryMarshal.AsBytes(cache.AsSpan()),
            MemoryMarshal.AsBytes(cache.AsSpan()), ElementType.F32, new float[2 * 8], [new SequenceSegment(2, 0, 1)], 2, 1, 8, 16, 1f));
        Assert.That(ex!.Message, Does.Contain("slot 2 is outside caches of 2 slots"));
    }

    /// <summary>
    /// Caches of <see cref="Slots"/> slots of normal values where the segments' queries may look (their
    /// slot, positions up to their last row, inside the window) and NaN everywhere else.
    /// </summary>
    private static float[] SlotsWithNaNOutside(SequenceSegment[] segments, int nKvHeads, int headDim, int window, int seed)
    {
        int slotFloats = nKvHeads * MaxSeq * headDim;
        float[] values = Normal(Slots * slotFloats, seed);
        var visible = new bool[Slots * nKvHeads * MaxSeq];
        foreach (SequenceSegment s in segments)
        {
            int first = window > 0 ? Math.Max(0, s.Start - window + 1) : 0;
            for (int h = 0; h < nKvHeads; h++)
            {
                for (int p = first; p < s.Start + s.Length; p++)
                {
                    visible[(s.Slot * nKvHeads + h) * MaxSeq + p] = true;
                }
            }
        }
        for (int i = 0; i < visible.Length; i++)
        {
            if (!visible[i])
            {
                values.AsSpan(i * headDim, headDim).Fill(float.NaN);
            }
        }
        return values;
    }
}
