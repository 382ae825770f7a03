using AscendCC.Device.Operators;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Scheduler;

/// <summary>The device's per-operator clock, which the CC-overhead benchmark reads inside its timed runs.</summary>
public class OperatorClockTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Test]
    public void TheClockCountsEachLaunchOfEachOperatorOnlyWhileEnabled()
    {
        using var device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 });
        ReadOnlyMemory<byte> binary = OperatorCatalog.GetBinary("add");
        int host = device.RegisterHostBuffer(binary.ToArray());
        ulong code = Run(device, w => w.Alloc(1, binary.Length, 64, RegionTag.OperatorBinary)).Result;
        Run(device, w => w.CopyHostToDevice(2, host, 0, code, binary.Length, TaskOptions.Notify));
        ulong add = Run(device, w => w.LoadOperator(3, code, binary.Length)).Result;
        ulong data = Run(device, w => w.Alloc(4, 3 * 4096, 64, RegionTag.Activations)).Result;
        KernelArgument[] args = [new(data, 4096), new(data + 4096, 4096), new(data + 8192, 4096)];
        KernelScalar[] n = [KernelScalar.Of(1024)];

        Run(device, w => w.KernelLaunch(5, add, args, n, TaskOptions.Notify));
        Assert.That(device.OperatorClock.Read(), Is.Empty, "a disabled clock records nothing");

        device.OperatorClock.Enabled = true;
        Run(device, w => w.KernelLaunch(6, add, args, n, TaskOptions.Notify));
        Run(device, w => w.KernelLaunch(7, add, args, n, TaskOptions.Notify));
        var totals = device.OperatorClock.Read();
        Assert.That(totals.Keys.Single(), Is.EqualTo("add"));
        Assert.That(totals["add"].Launches, Is.EqualTo(2));
        Assert.That(totals["add"].Milliseconds, Is.GreaterThan(0));

        device.OperatorClock.Reset();
        Assert.That(device.OperatorClock.Read(), Is.Empty);

        // Copies to and from host buffers are the DMA engine's, timed under their own name; a device
        // without confidential firmware has no firmware checks to time.
        Run(device, w => w.CopyHostToDevice(8, host, 0, data, 64, TaskOptions.Notify));
        Run(device, w => w.CopyDeviceToHost(9, data, host, 0, 64, TaskOptions.Notify));
        totals = device.OperatorClock.Read();
        Assert.That(totals.Keys, Is.EquivalentTo(new[] { Device.Scheduler.OperatorClock.HostDma }));
        Assert.That(totals[Device.Scheduler.OperatorClock.HostDma].Launches, Is.EqualTo(2));
    }

    private static CompletionEntry Run(NpuDevice device, Action<TaskWriter> encode)
    {
        var w = new TaskWriter();
        encode(w);
        Assert.That(device.Submit(0, w.Written), Is.True);
        device.RingDoorbell(0);
        Assert.That(device.WaitForCompletion(Timeout, out CompletionEntry entry), Is.True, "the device posted no completion");
        Assert.That(entry.Succeeded, Is.True, entry.Detail);
        return entry;
    }
}
