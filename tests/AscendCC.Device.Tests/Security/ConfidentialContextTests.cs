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
}
