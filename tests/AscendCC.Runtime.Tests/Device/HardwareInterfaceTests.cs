using AscendCC.Device;
using AscendCC.Device.Operators;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Driver;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Device;

/// <summary>The device's hardware interface under a host that makes mistakes, or means harm.</summary>
public class HardwareInterfaceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static CompletionEntry Run(NpuDevice device, int stream, Action<TaskWriter> encode)
    {
        var w = new TaskWriter();
        encode(w);
        Assert.That(device.Submit(stream, w.Written), Is.True);
        device.RingDoorbell(stream);
        Assert.That(device.WaitForCompletion(Timeout, out CompletionEntry entry), Is.True, "the device posted no completion");
        return entry;
    }

    [Test]
    public void CopiesRoundTripThroughTheRuntime()
    {
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 }), ownsDevice: true);
        DeviceMemoryInfo before = runtime.MemoryInfo;
        DeviceBuffer buffer = runtime.Allocate(4096, RegionTag.Activations);
        float[] data = Enumerable.Range(0, 1024).Select(i => i * 0.5f).ToArray();
        runtime.CopyToDevice<float>(data, buffer);
        DeviceBuffer copy = runtime.Allocate(4096);
        runtime.CopyOnDevice(buffer.Address, copy.Address, 4096);
        runtime.DefaultStream.Synchronize();
        var back = new float[1024];
        runtime.CopyToHost<float>(copy, 0, back);
        Assert.That(back, Is.EqualTo(data));

        // Two 4 KiB regions (already 64-byte aligned, so no padding) are what the usage registers must show.
        DeviceMemoryInfo during = runtime.MemoryInfo;
        Assert.That(during.Capacity, Is.EqualTo(64L << 20));
        Assert.That(during.Allocated - before.Allocated, Is.EqualTo(8192));
        Assert.That(during.RegionCount - before.RegionCount, Is.EqualTo(2));
        Assert.That(during.PeakAllocated, Is.GreaterThanOrEqualTo(before.Allocated + 8192));

        buffer.Dispose();
        copy.Dispose();
        DeviceMemoryInfo after = runtime.MemoryInfo;
        Assert.That((after.Allocated, after.RegionCount), Is.EqualTo((before.Allocated, before.RegionCount)), "freeing both regions returns the usage to where it started");
        Assert.That(after.PeakAllocated, Is.EqualTo(during.PeakAllocated), "the peak register keeps the high-water mark");
    }

    [Test]
    public void PropertiesReportWhatTheDeviceWasBuiltWith()
    {
        var options = new NpuDeviceOptions { HbmCapacity = 96L << 20, AiCoreCount = 3, StreamCount = 5, EventCount = 7, TaskBufferBytes = 8192, DeviceIndex = 6 };
        using var device = new NpuDevice(options);
        DeviceProperties p = device.Properties;
        Assert.That(p.Name, Is.EqualTo("AscendCC simulated NPU 6"));
        Assert.That(p.HbmCapacity, Is.EqualTo(96L << 20));
        Assert.That(p.AiCoreCount, Is.EqualTo(3));
        Assert.That(p.StreamCount, Is.EqualTo(5));
        Assert.That(p.EventCount, Is.EqualTo(7));
        Assert.That(p.TaskBufferBytes, Is.EqualTo(8192));
        Assert.That(p.AiCpuCount, Is.EqualTo(4));
        int widest = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? 512 : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? 256 : 128;
        Assert.That(p.VectorWidthBits, Is.EqualTo(widest));
        Assert.That(device.QueryMemoryInfo(), Is.EqualTo(new DeviceMemoryInfo(96L << 20, 0, 0, 0)), "the usage registers start at the built capacity, empty");
        // The limits are enforced, not just reported: stream 5 does not exist, and an 8 KiB task buffer takes no more.
        Assert.Throws<ArgumentOutOfRangeException>(() => device.Submit(5, new byte[24]));
        Assert.That(device.Submit(4, new byte[8193]), Is.False);

        // Defaults: one AI Core per CPU thread (AI Cores are the threads the kernels run on), 32 GiB of HBM.
        using var defaults = new NpuDevice();
        Assert.That(defaults.Properties.AiCoreCount, Is.EqualTo(Environment.ProcessorCount));
        Assert.That(defaults.Properties.HbmCapacity, Is.EqualTo(32L << 30));
        Assert.That((defaults.Properties.StreamCount, defaults.Properties.EventCount, defaults.Properties.TaskBufferBytes), Is.EqualTo((32, 1024, 4 << 20)));
    }

    [Test]
    public void DmaToAnUnmappedRegionFaultsAndTheNextTaskStillRuns()
    {
        using var device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 });
        var host = new byte[256];
        int hostBuffer = device.RegisterHostBuffer(host);
        CompletionEntry alloc = Run(device, 0, w => w.Alloc(1, 256, 64, RegionTag.Weights));
        Assert.That(alloc.Succeeded, Is.True);
        ulong region = alloc.Result;

        Assert.That(Run(device, 0, w => w.SetDmaAccess(2, region, DmaAccess.None, TaskOptions.Notify)).Succeeded, Is.True);
        CompletionEntry fault = Run(device, 0, w => w.CopyDeviceToHost(3, region + 16, hostBuffer, 0, 64));
        Assert.That(fault.Status, Is.EqualTo(CompletionStatus.DmaFault));
        Assert.That(fault.FaultAddress, Is.EqualTo(region + 16));
        Assert.That(fault.Detail, Does.Contain("not mapped"));

        CompletionEntry unallocated = Run(device, 0, w => w.CopyHostToDevice(4, hostBuffer, 0, 0x7_0000_0000, 64));
        Assert.That(unallocated.Status, Is.EqualTo(CompletionStatus.DmaFault));

        CompletionEntry next = Run(device, 0, w => w.Nop(5));
        Assert.That(next, Is.EqualTo(new CompletionEntry(5, 0, TaskKind.Nop, CompletionStatus.Success, 0, 0, null)));
    }

    [Test]
    public void DmaPastTheEndOfARegionOrHostBufferFaults()
    {
        using var device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 });
        int hostBuffer = device.RegisterHostBuffer(new byte[128]);
        ulong region = Run(device, 0, w => w.Alloc(1, 100, 64, RegionTag.General)).Result;
        Assert.That(Run(device, 0, w => w.CopyHostToDevice(2, hostBuffer, 0, region + 50, 64)).Detail, Does.Contain("past the end"));
        Assert.That(Run(device, 0, w => w.CopyHostToDevice(3, hostBuffer, 100, region, 64)).Detail, Does.Contain("host buffer"));
        Assert.That(Run(device, 0, w => w.CopyHostToDevice(4, 999, 0, region, 8)).Status, Is.EqualTo(CompletionStatus.DmaFault));
    }

    [Test]
    public void HbmExhaustionIsAnErrorCompletionAndTheDeviceKeepsServing()
    {
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 32L << 20 }), ownsDevice: true);
        using DeviceBuffer big = runtime.Allocate(24L << 20);
        var ex = Assert.Throws<NpuOutOfMemoryException>(() => runtime.Allocate(16L << 20));
        Assert.That(ex!.Status, Is.EqualTo(CompletionStatus.OutOfMemory));
        Assert.That(ex.Message, Does.Contain("HBM exhausted"));
        using DeviceBuffer small = runtime.Allocate(1L << 20);
        Assert.That(small.Address, Is.Not.Zero);
    }

    [Test]
    public void MalformedTasksAreRejectedWithoutStoppingTheStream()
    {
        using var device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 });
        var w = new TaskWriter();
        // A task of unknown kind 0x7777 with a valid length, then a good Nop.
        byte[] bogus = new byte[24];
        BitConverter.TryWriteBytes(bogus.AsSpan(0), (ushort)0x7777);
        BitConverter.TryWriteBytes(bogus.AsSpan(4), 24);
        BitConverter.TryWriteBytes(bogus.AsSpan(8), 41UL);
        w.Raw(bogus);
        w.Nop(42);
        Assert.That(device.Submit(0, w.Written), Is.True);
        device.RingDoorbell(0);
        Assert.That(device.WaitForCompletion(Timeout, out CompletionEntry first), Is.True);
        Assert.That(first.Status, Is.EqualTo(CompletionStatus.InvalidTask));
        Assert.That(first.Detail, Does.Contain("unknown task kind"));
        Assert.That(device.WaitForCompletion(Timeout, out CompletionEntry second), Is.True);
        Assert.That((second.TaskId, second.Status), Is.EqualTo((42UL, CompletionStatus.Success)));
    }

    [Test]
    public void AnUnreadableHeaderResetsOnlyThatStream()
    {
        using var device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 });
        var garbage = new byte[40];
        new Random(7).NextBytes(garbage);
        BitConverter.TryWriteBytes(garbage.AsSpan(4), 1_000_000); // length beyond what was submitted
        Assert.That(device.Submit(3, garbage), Is.True);
        device.RingDoorbell(3);
        Assert.That(device.WaitForCompletion(Timeout, out CompletionEntry reset), Is.True);
        Assert.That(reset.Status, Is.EqualTo(CompletionStatus.StreamReset));
        Assert.That(Run(device, 3, w => w.Nop(9)).Succeeded, Is.True, "the stream accepts tasks again");
    }

    [Test]
    public void AModifiedOperatorBinaryIsNotExecutable()
    {
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 }), ownsDevice: true);
        string name = OperatorCatalog.Names[0];
        byte[] binary = OperatorCatalog.GetBinary(name).ToArray();
        binary[^1] ^= 1;
        using DeviceBuffer region = runtime.Allocate(binary.Length, RegionTag.OperatorBinary);
        runtime.CopyToDevice(binary, region);
        var ex = Assert.Throws<NpuException>(() => runtime.Driver.Call(0, (w, id) => w.LoadOperator(id, region.Address, binary.Length)));
        Assert.That(ex!.Status, Is.EqualTo(CompletionStatus.IllegalOperator));
        Assert.That(ex.Message, Does.Contain(name).And.Contain("microcode table"));
    }

    [Test]
    public void ALoadedOperatorBinaryIsSealedAgainstHostWrites()
    {
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 }), ownsDevice: true);
        string name = OperatorCatalog.Names[0];
        byte[] binary = OperatorCatalog.GetBinary(name).ToArray();
        using DeviceBuffer region = runtime.Allocate(binary.Length, RegionTag.OperatorBinary);
        runtime.CopyToDevice(binary, region);
        runtime.Driver.Call(0, (w, id) => w.LoadOperator(id, region.Address, binary.Length));
        var ex = Assert.Throws<NpuException>(() => runtime.CopyToDevice(new byte[8], region));
        Assert.That(ex!.Status, Is.EqualTo(CompletionStatus.DmaFault));
    }

    [Test]
    public void EventsOrderWorkAcrossStreams()
    {
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 }), ownsDevice: true);
        using DeviceBuffer a = runtime.Allocate(64);
        using DeviceBuffer b = runtime.Allocate(64);
        NpuStream producer = runtime.CreateStream();
        NpuStream consumer = runtime.CreateStream();
        Assert.That(consumer.Id, Is.Not.EqualTo(producer.Id));
        NpuEvent ready = runtime.CreateEvent();
        // The consumer waits first, so its copy must not run before the producer's memset.
        consumer.WaitEvent(ready);
        runtime.CopyOnDevice(a.Address, b.Address, 64, consumer);
        runtime.Memset(a, 0x5A, producer);
        ready.Record(producer);
        consumer.Synchronize();
        var back = new byte[64];
        runtime.CopyToHost(b, 0, back.AsSpan());
        Assert.That(back, Is.All.EqualTo((byte)0x5A));
    }

    [Test]
    public void TaskBufferFullRefusesSubmissionWithoutPartialWrites()
    {
        using var device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20, TaskBufferBytes = 4096 });
        var w = new TaskWriter();
        for (int i = 0; i < 300; i++)
        {
            w.Nop((ulong)i, TaskOptions.None);
        }
        Assert.That(w.Length, Is.GreaterThan(4096));
        Assert.That(device.Submit(0, w.Written), Is.False);
        Assert.That(device.Submit(0, w.Written[..4096]), Is.True);
    }

    [Test]
    public void ResetScrubsAndFreesAllOfHbm()
    {
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 }), ownsDevice: true);
        DeviceBuffer secret = runtime.Allocate(4096, RegionTag.Weights);
        runtime.CopyToDevice(Enumerable.Repeat((byte)0xCD, 4096).ToArray(), secret);
        runtime.Device.Reset();
        Assert.That(runtime.MemoryInfo.Allocated, Is.Zero);
        // The same address, allocated again, reads back zeros.
        using DeviceBuffer again = runtime.Allocate(4096, RegionTag.Weights);
        Assert.That(again.Address, Is.EqualTo(secret.Address));
        var back = new byte[4096];
        runtime.CopyToHost(again, 0, back.AsSpan());
        Assert.That(back, Is.All.Zero);
    }
}
