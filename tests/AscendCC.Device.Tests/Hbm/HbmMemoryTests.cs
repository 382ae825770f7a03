using AscendCC.Device.Hbm;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Hbm;

public class HbmMemoryTests
{
    [Test]
    public unsafe void AllocationsAreAlignedZeroedAndDisjoint()
    {
        using var hbm = new HbmMemory(64L << 20);
        HbmRegion a = hbm.Allocate(1000, 64, RegionTag.Weights)!;
        HbmRegion b = hbm.Allocate(3000, 4096, RegionTag.Activations)!;
        Assert.That(a.Address % 64, Is.Zero);
        Assert.That(b.Address % 4096, Is.Zero);
        Assert.That(b.Address, Is.GreaterThanOrEqualTo(a.End));
        Assert.That(((nuint)a.Data) % 64, Is.EqualTo((nuint)0));
        Assert.That(a.Slice(a.Address, a.Size).ToArray(), Is.All.Zero);
        Assert.That(hbm.Info.Allocated, Is.EqualTo(4000));
    }

    [Test]
    public void ExhaustionReturnsNullAndFreeMakesRoom()
    {
        using var hbm = new HbmMemory(4L << 20);
        HbmRegion? first = hbm.Allocate(3L << 20, 64, RegionTag.General);
        Assert.That(first, Is.Not.Null);
        Assert.That(hbm.Allocate(2L << 20, 64, RegionTag.General), Is.Null, "only 1 MiB is left");
        Assert.That(hbm.Free(first!.Address), Is.True);
        Assert.That(hbm.Allocate(2L << 20, 64, RegionTag.General), Is.Not.Null);
        Assert.That(hbm.Info.PeakAllocated, Is.EqualTo(3L << 20));
    }

    [Test]
    public void FreedGapIsReusedFirstFitAndFreshMemoryIsZero()
    {
        using var hbm = new HbmMemory(16L << 20);
        HbmRegion a = hbm.Allocate(1 << 20, 64, RegionTag.General)!;
        HbmRegion b = hbm.Allocate(1 << 20, 64, RegionTag.General)!;
        a.Slice(a.Address, a.Size).Fill(0xAB);
        ulong reused = a.Address;
        hbm.Free(a.Address);
        HbmRegion c = hbm.Allocate(1 << 19, 64, RegionTag.General)!;
        Assert.That(c.Address, Is.EqualTo(reused));
        Assert.That(c.Slice(c.Address, c.Size).ToArray(), Is.All.Zero, "a region never shows its previous owner's bytes");
        Assert.That(hbm.Find(b.Address + 10, 100), Is.SameAs(b));
        Assert.That(hbm.Find(b.End - 10, 100), Is.Null, "range runs past the region");
    }

    [Test]
    public void RejectsBadAlignment() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new HbmMemory(16L << 20).Allocate(100, 96, RegionTag.General));
}
