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
    public void FreeZeroesTheRegionButNotTheNeighboursSharingItsPages()
    {
        using var hbm = new HbmMemory(64L << 20);
        // Sizes that leave ragged page edges on both sides, plus one spanning many whole pages.
        HbmRegion before = hbm.Allocate(5000, 64, RegionTag.General)!;
        HbmRegion middle = hbm.Allocate(70_000, 64, RegionTag.General)!;
        HbmRegion after = hbm.Allocate(3000, 64, RegionTag.General)!;
        before.Slice(before.Address, before.Size).Fill(0x11);
        middle.Slice(middle.Address, middle.Size).Fill(0x22);
        after.Slice(after.Address, after.Size).Fill(0x33);
        Assert.That(middle.Address % 4096, Is.Not.Zero, "the test needs a region that starts mid-page");

        hbm.Free(middle.Address);
        HbmRegion again = hbm.Allocate(70_000, 64, RegionTag.General)!;
        Assert.That(again.Address, Is.EqualTo(middle.Address));
        Assert.That(again.Slice(again.Address, again.Size).ToArray(), Is.All.Zero, "a freed region's bytes are gone");
        Assert.That(before.Slice(before.Address, before.Size).ToArray(), Is.All.EqualTo((byte)0x11), "the region before it keeps its bytes");
        Assert.That(after.Slice(after.Address, after.Size).ToArray(), Is.All.EqualTo((byte)0x33), "the region after it keeps its bytes");
    }

    [Test]
    public unsafe void LargeRegionsStartOnHugePagesThatTheHostCanBackWithHugePages()
    {
        using var hbm = new HbmMemory(64L << 20);
        hbm.Allocate(100, 64, RegionTag.General);
        HbmRegion large = hbm.Allocate(3L << 20, 64, RegionTag.Weights)!;
        Assert.That(large.Address % (2 << 20), Is.Zero, "device address on a 2 MiB boundary");
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("huge-page backing is Linux-only; elsewhere regions come from the native heap");
        }
        Assert.That((nuint)large.Data % (2 << 20), Is.EqualTo((nuint)0), "host address on a 2 MiB boundary");
        string thp = File.Exists("/sys/kernel/mm/transparent_hugepage/enabled") ? File.ReadAllText("/sys/kernel/mm/transparent_hugepage/enabled") : "";
        if (!thp.Contains("[madvise]", StringComparison.Ordinal) && !thp.Contains("[always]", StringComparison.Ordinal))
        {
            Assert.Ignore($"this kernel offers no transparent huge pages ({thp.Trim()})");
        }
        Assert.That(SmapsField((nuint)large.Data, "THPeligible"), Is.EqualTo("1"), "the mapping behind HBM is advised into huge pages");
    }

    // The value of field `name` in /proc/self/smaps for the mapping that contains `address`.
    private static string? SmapsField(nuint address, string name)
    {
        bool inside = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-', StringComparison.Ordinal);
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            if (dash > 0 && space > dash && nuint.TryParse(line.AsSpan(0, dash), System.Globalization.NumberStyles.HexNumber, null, out nuint start)
                && nuint.TryParse(line.AsSpan(dash + 1, space - dash - 1), System.Globalization.NumberStyles.HexNumber, null, out nuint end))
            {
                inside = address >= start && address < end;
            }
            else if (inside && line.StartsWith(name + ":", StringComparison.Ordinal))
            {
                return line[(name.Length + 1)..].Trim();
            }
        }
        return null;
    }

    [Test]
    public void RejectsBadAlignment() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new HbmMemory(16L << 20).Allocate(100, 96, RegionTag.General));
}
