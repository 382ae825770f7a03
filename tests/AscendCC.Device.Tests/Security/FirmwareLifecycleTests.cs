using AscendCC.Device.Confidential;
using AscendCC.Device.Graph;
using AscendCC.Device.Scheduler;
using AscendCC.Device.Security;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Packaging;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Security;

/// <summary>
/// The confidential firmware across a device reset and disposal, and with CC mode off: a reset must
/// leave no package open and no context or session to answer for, since the security engine forgets
/// every key and HBM is scrubbed.
/// </summary>
[TestFixture]
public sealed class FirmwareLifecycleTests
{
    [Test]
    public void AResetClosesEveryPackageAndForgetsContextsAndSessions()
    {
        using var device = new TestFirmware(CcMode.On);
        ConfidentialFirmware firmware = device.Firmware;
        int first = device.OpenPackage("first");
        int second = device.OpenPackage("second");
        (ModelPackageReader reader, UnmanagedMemoryStream stream) = Opened(firmware, second);
        firmware.Session(5);

        firmware.Clear();

        Assert.That(firmware.Context(first), Is.Null);
        Assert.That(firmware.Context(second), Is.Null);
        Assert.That(firmware.FindSession(5), Is.Null);
        Assert.That(reader.IsUnlocked, Is.False, "the package's content key is destroyed");
        Assert.That(stream.CanRead, Is.False, "the stream over the staged package is closed");
    }

    [Test]
    public void DisposingTheFirmwareClearsItAndShutsTheSecurityEngineDown()
    {
        using var device = new TestFirmware(CcMode.On);
        ConfidentialFirmware firmware = device.Firmware;
        int handle = device.OpenPackage();
        (ModelPackageReader reader, UnmanagedMemoryStream stream) = Opened(firmware, handle);
        firmware.Session(5);
        Assert.That(firmware.Active, Is.True);

        firmware.Dispose();

        Assert.That(firmware.Context(handle), Is.Null);
        Assert.That(firmware.FindSession(5), Is.Null);
        Assert.That(reader.IsUnlocked, Is.False, "the package's content key is destroyed");
        Assert.That(stream.CanRead, Is.False, "the stream over the staged package is closed");
        // The engine's keys (attestation key, channels, released model keys) are gone with it.
        Assert.That(device.Engine.State, Is.EqualTo(DeviceSecurityState.Reset));
        Assert.That(firmware.Active, Is.False);
        Assert.Throws<DeviceSecurityException>(() => device.Engine.AttestationPublicKey());
    }

    [TestCase(CcMode.Off, false)]
    [TestCase(CcMode.On, true)]
    [TestCase(CcMode.DevTools, true)]
    public void OnlyAFirmwareInCcModeAttestsALoadedModel(CcMode mode, bool attested)
    {
        using var device = new TestFirmware(mode);
        var model = new LoadedModel(1, [new DecodedTask { Kind = TaskKind.Nop }], new byte[32]);

        device.Firmware.Attest(model);

        // With CC off the model runs as on a device without CC: no measurement, no verdict, no pinned
        // regions. In CC mode every loaded model gets a verdict (here unverified: no package is open).
        Assert.That(model.Attestation, attested ? Is.Not.Null : Is.Null);
    }

    private static (ModelPackageReader Reader, UnmanagedMemoryStream Stream) Opened(ConfidentialFirmware firmware, int handle)
    {
        ConfidentialContext context = firmware.Context(handle)!;
        Assert.That(context.Reader!.IsUnlocked, Is.True);
        Assert.That(context.Stream!.CanRead, Is.True);
        return (context.Reader, context.Stream);
    }
}
