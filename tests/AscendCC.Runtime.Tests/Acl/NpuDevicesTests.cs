using AscendCC.Device;
using AscendCC.Runtime.Acl;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Acl;

/// <summary>Enumerating and opening devices by id, as aclrtGetDeviceCount / aclrtSetDevice do.</summary>
public class NpuDevicesTests
{
    // Small devices: each opened one is a powered-on NpuDevice with its runtime.
    private static NpuDevices ThreeDevices() => new(3, id => new NpuDeviceOptions { DeviceIndex = id, HbmCapacity = (16L + id) << 20 });

    [Test]
    public void CountsTheDevicesAndOpensEachByIdOnFirstUse()
    {
        using NpuDevices devices = ThreeDevices();
        Assert.That(devices.Count, Is.EqualTo(3));
        Assert.That(Enumerable.Range(0, 3).Select(devices.IsOpen), Is.All.False, "no device is powered on before it is opened");

        NpuRuntime second = devices.Open(2);
        Assert.That(devices.IsOpen(2), Is.True);
        Assert.That(devices.IsOpen(0), Is.False, "opening one device leaves the others off");
        // The device opened is device 2, with device 2's options.
        Assert.That(second.Device.Properties.Name, Does.EndWith(" 2"));
        Assert.That(second.Device.Properties.HbmCapacity, Is.EqualTo(18L << 20));
        Assert.That(devices.Open(0).Device.Properties.HbmCapacity, Is.EqualTo(16L << 20));
    }

    [Test]
    public void TheSameIdReturnsTheSameDevice()
    {
        using NpuDevices devices = ThreeDevices();
        NpuRuntime first = devices.Open(1);
        using DeviceBuffer kept = first.Allocate(4096);
        Assert.That(devices.Open(1), Is.SameAs(first));
        Assert.That(devices.Open(1).MemoryInfo.Allocated, Is.EqualTo(4096), "the second open sees the first one's allocation");
        Assert.That(devices.Open(0), Is.Not.SameAs(first));
    }

    [TestCase(3)]
    [TestCase(-1)]
    [TestCase(int.MaxValue)]
    public void AnOutOfRangeIdNamesTheValidRange(int id)
    {
        using NpuDevices devices = ThreeDevices();
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => devices.Open(id));
        Assert.That(ex!.ParamName, Is.EqualTo("deviceId"));
        Assert.That(ex.Message, Does.Contain($"device {id} does not exist").And.Contain("3 devices, ids 0 to 2"));
        Assert.That(Enumerable.Range(0, 3).Select(devices.IsOpen), Is.All.False, "a refused open powers nothing on");
    }

    [Test]
    public void ASingleDeviceSetSaysSo()
    {
        using var devices = new NpuDevices(1, _ => new NpuDeviceOptions { HbmCapacity = 16L << 20 });
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => devices.Open(1));
        Assert.That(ex!.Message, Does.Contain("there is 1 device, id 0"));
    }

    [TestCase(0)]
    [TestCase(NpuDevices.MaxDevices + 1)]
    public void ACountOutsideOneToMaxIsRefused(int count) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new NpuDevices(count));

    [Test]
    public void DisposingClosesEveryOpenedDeviceAndRefusesFurtherOpens()
    {
        var devices = ThreeDevices();
        NpuRuntime runtime = devices.Open(0);
        devices.Dispose();
        Assert.Throws<ObjectDisposedException>(() => runtime.Device.Submit(0, new byte[8]), "the opened device was powered off");
        Assert.Throws<ObjectDisposedException>(() => devices.Open(0));
    }

    [Test]
    public void TheProcessSetIsWhatTorchNpuUses()
    {
        // torch_npu's devices are the process-wide set's, not a registry of their own: HBM taken through
        // the host runtime's device 0 shows in torch_npu's reading of npu:0's usage register.
        Assert.That(TorchSharpBackend.torch_npu.npu.device_count(), Is.EqualTo(NpuDevices.Process.Count));
        long before = TorchSharpBackend.torch_npu.npu.memory_reserved("npu:0");
        Assert.That(NpuDevices.Process.IsOpen(0), Is.True, "addressing npu:0 through torch_npu opened process device 0");
        using (DeviceBuffer region = NpuDevices.Process.Open(0).Allocate(1 << 20))
        {
            Assert.That(TorchSharpBackend.torch_npu.npu.memory_reserved("npu:0") - before, Is.EqualTo(1 << 20));
        }
        Assert.That(TorchSharpBackend.torch_npu.npu.memory_reserved("npu:0"), Is.EqualTo(before));
    }
}
