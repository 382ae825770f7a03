using AscendCC.Device.Confidential;
using AscendCC.Device.Hbm;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Packaging;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Security;

/// <summary>A context outlives its package: closing the package must end everything the open package held.</summary>
[TestFixture]
public sealed class ConfidentialContextTests
{
    [Test]
    public void ClosingThePackageDestroysTheReadersContentKey()
    {
        using var device = new TestFirmware(CcMode.On);
        ConfidentialContext context = device.Firmware.Context(device.OpenPackage())!;
        ModelPackageReader reader = context.Reader!;
        Assert.That(reader.IsUnlocked, Is.True);

        context.ClosePackage();

        // The content key decrypts every item of the package: once closed, nothing may unlock more.
        Assert.That(reader.IsUnlocked, Is.False);
        Assert.Throws<InvalidOperationException>(() => reader.DecryptItem(0, new byte[reader.GetEncryptedItemRange(0).Length], new byte[64]));
        Assert.That(context.Reader, Is.Null);
    }

    [Test]
    public void ClosingThePackageClosesTheStreamOverTheStagedBytesAndUnpinsThem()
    {
        using var device = new TestFirmware(CcMode.On);
        ConfidentialContext context = device.Firmware.Context(device.OpenPackage())!;
        UnmanagedMemoryStream stream = context.Stream!;
        HbmRegion staging = context.Staging!;
        Assert.That(staging.PinCount, Is.EqualTo(1));

        context.ClosePackage();

        // The stream points into the staging region, which may now be freed and reused: a stream
        // left open would read whatever the region holds next.
        Assert.That(stream.CanRead, Is.False);
        Assert.That(context.Stream, Is.Null);
        Assert.That(staging.PinCount, Is.Zero, "the staging region may be freed once the package is closed");
        Assert.That(context.Staging, Is.Null);
    }
    /// <summary>
    /// A batched context scrubs one slot when a session leaves it or another session's prompt is opened
    /// there: that slot's slice of every KV-cache region and of every per-slot region, and nothing of
    /// the other slots (whose sessions go on) or of the other regions.
    /// </summary>
    [Test]
    public unsafe void ScrubSlotClearsExactlyThatSlotsSlices()
    {
        using var hbm = new HbmMemory(1L << 20);
        var context = new ConfidentialContext(1, new byte[32], new byte[48], "batched") { Slots = new DataSessionState?[4] };
        HbmRegion kv = hbm.Allocate(4 * 256, 64, RegionTag.KvCache)!, prompt = hbm.Allocate(4 * 64, 64, RegionTag.Activations)!;
        HbmRegion activations = hbm.Allocate(512, 64, RegionTag.Activations)!, weights = hbm.Allocate(512, 64, RegionTag.Weights)!;
        foreach (HbmRegion r in new[] { kv, prompt, activations, weights })
        {
            new Span<byte>(r.Data, (int)r.Size).Fill(0xAB);
            context.Claim(r);
        }
        context.SlotRegions.Add((prompt, 64));

        context.ScrubSlot(2);

        static byte[] Bytes(HbmRegion r) => new ReadOnlySpan<byte>(r.Data, (int)r.Size).ToArray();
        byte[] kvBytes = Bytes(kv), promptBytes = Bytes(prompt);
        Assert.That(kvBytes[512..768], Is.All.EqualTo(0), "slot 2's KV slice");
        Assert.That(kvBytes[..512].Concat(kvBytes[768..]), Is.All.EqualTo(0xAB), "the other slots' KV slices");
        Assert.That(promptBytes[128..192], Is.All.EqualTo(0), "slot 2's prompt slice");
        Assert.That(promptBytes[..128].Concat(promptBytes[192..]), Is.All.EqualTo(0xAB), "the other slots' prompts");
        Assert.That(Bytes(activations), Is.All.EqualTo(0xAB), "a region not laid out per slot");
        Assert.That(Bytes(weights), Is.All.EqualTo(0xAB), "the weights");
    }
}
