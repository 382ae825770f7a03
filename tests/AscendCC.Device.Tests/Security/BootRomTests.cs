using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Device.Security;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Measurements;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Security;

[TestFixture]
public sealed class BootRomTests : IDisposable
{
    private TestManufacturer _manufacturer = null!;
    private FirmwareImage _v1 = null!;
    private byte[] _signedV1 = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _manufacturer = new TestManufacturer();
        _v1 = new FirmwareImage(1, 3, "AscendCC", "firmware v1 payload"u8);
        _signedV1 = _manufacturer.Sign(_v1);
    }

    public void Dispose() => _manufacturer?.Dispose();

    [Test]
    public void SignedFirmwareBootsAndExtendsEveryRegister()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = new DeviceSecurityEngine(fuses);
        engine.Boot(_signedV1, new BootConfiguration(CcMode.On));

        MeasurementSet m = engine.Measurements;
        Assert.That(engine.State, Is.EqualTo(DeviceSecurityState.Booted));
        Assert.That(m[MeasurementRegisterId.BootRom].ToArray(), Is.EqualTo(ReferenceMeasurements.ExpectedBootRomRegister(KnownBootRom.Identity)));
        Assert.That(m[MeasurementRegisterId.Firmware].ToArray(), Is.EqualTo(ReferenceMeasurements.ExpectedFirmwareRegister(_v1.Encode())));
        Assert.That(m[MeasurementRegisterId.CcMode].ToArray(), Is.EqualTo(MeasurementRegisters.ExpectedAfterSingleExtend(SHA384.HashData(new byte[] { (byte)CcMode.On }))));
        Assert.That(m[MeasurementRegisterId.DebugState].ToArray(), Is.EqualTo(MeasurementRegisters.ExpectedAfterSingleExtend(SHA384.HashData(new byte[] { (byte)DebugState.Locked }))));
        Assert.That(m[MeasurementRegisterId.Configuration].ToArray(), Is.Not.EqualTo(new byte[48]));
    }

    [Test]
    public void UnsignedFirmwareIsRefused()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = new DeviceSecurityEngine(fuses);
        var ex = Assert.Throws<FirmwareRejectedException>(() => engine.Boot(_v1.Encode(), new BootConfiguration(CcMode.On)));
        Assert.That(ex!.Reason, Is.EqualTo(FirmwareRejection.Signature));
        Assert.That(engine.State, Is.EqualTo(DeviceSecurityState.BootFailed));
        Assert.Throws<DeviceSecurityException>(() => engine.CreateHello(new byte[32]));
        Assert.That(engine.Measurements[MeasurementRegisterId.Firmware].ToArray(), Is.EqualTo(new byte[48]), "refused firmware must not be measured as booted");
    }

    [Test]
    public void ModifiedFirmwareIsRefused()
    {
        byte[] tampered = (byte[])_signedV1.Clone();
        int at = tampered.AsSpan().IndexOf("payload"u8);
        Assert.That(at, Is.GreaterThan(0));
        tampered[at] ^= 0x01;
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = new DeviceSecurityEngine(fuses);
        var ex = Assert.Throws<FirmwareRejectedException>(() => engine.Boot(tampered, new BootConfiguration(CcMode.On)));
        Assert.That(ex!.Reason, Is.EqualTo(FirmwareRejection.Signature));
    }

    [Test]
    public void FirmwareSignedUnderAnotherRootIsRefused()
    {
        using var rogue = new TestManufacturer("Rogue");
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = new DeviceSecurityEngine(fuses);
        var ex = Assert.Throws<FirmwareRejectedException>(() => engine.Boot(rogue.Sign(_v1), new BootConfiguration(CcMode.On)));
        Assert.That(ex!.Reason, Is.EqualTo(FirmwareRejection.Signature));
    }

    [Test]
    public void RollbackBelowFusedCounterIsRefusedButCurrentSvnBoots()
    {
        using DeviceFuses fuses = _manufacturer.Provision(antiRollbackCounter: 4);
        using var engine = new DeviceSecurityEngine(fuses);
        var ex = Assert.Throws<FirmwareRejectedException>(() => engine.Boot(_signedV1, new BootConfiguration(CcMode.On)));
        Assert.That(ex!.Reason, Is.EqualTo(FirmwareRejection.Rollback));
        Assert.That(ex.Message, Does.Contain("SVN 3").And.Contain("4"));

        engine.Reset(() => { });
        engine.Boot(_manufacturer.Sign(new FirmwareImage(2, 4, "AscendCC", "v2"u8)), new BootConfiguration(CcMode.On));
        Assert.That(engine.State, Is.EqualTo(DeviceSecurityState.Booted));

        fuses.AdvanceAntiRollbackCounter(2);
        Assert.That(fuses.AntiRollbackCounter, Is.EqualTo(4), "fuses cannot be un-blown");
    }

    [Test]
    public void AttestationKeyDependsOnFirmwareAndDevice()
    {
        byte[] secret = RandomNumberGenerator.GetBytes(32);
        byte[] signedV2 = _manufacturer.Sign(new FirmwareImage(2, 3, "AscendCC", "firmware v2 payload"u8));
        using DeviceFuses fuses = _manufacturer.Provision(secret: secret);
        using var engine = new DeviceSecurityEngine(fuses);

        engine.Boot(_signedV1, new BootConfiguration(CcMode.On));
        byte[] keyV1 = engine.AttestationPublicKey();
        engine.Reset(() => { });
        engine.Boot(signedV2, new BootConfiguration(CcMode.On));
        byte[] keyV2 = engine.AttestationPublicKey();
        engine.Reset(() => { });
        engine.Boot(_signedV1, new BootConfiguration(CcMode.On));
        byte[] keyV1Again = engine.AttestationPublicKey();

        using DeviceFuses otherFuses = _manufacturer.Provision();
        using var other = new DeviceSecurityEngine(otherFuses);
        other.Boot(_signedV1, new BootConfiguration(CcMode.On));

        Assert.That(keyV2, Is.Not.EqualTo(keyV1), "other firmware must get another attestation key");
        Assert.That(keyV1Again, Is.EqualTo(keyV1), "the same firmware on the same device re-derives the same key");
        Assert.That(other.AttestationPublicKey(), Is.Not.EqualTo(keyV1), "another device gets another key");
    }

    [Test]
    public void ModeAndDebugAreMeasuredAndCcOnForcesDebugLock()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = new DeviceSecurityEngine(fuses);
        engine.Boot(_signedV1, new BootConfiguration(CcMode.On, DebugRequested: true));
        Assert.That(engine.DebugState, Is.EqualTo(DebugState.Locked));
        MeasurementSet on = engine.Measurements;

        engine.Reset(() => { });
        engine.Boot(_signedV1, new BootConfiguration(CcMode.DevTools, DebugRequested: true));
        Assert.That(engine.DebugState, Is.EqualTo(DebugState.Unlocked));
        MeasurementSet devTools = engine.Measurements;

        Assert.That(devTools[MeasurementRegisterId.Firmware].ToArray(), Is.EqualTo(on[MeasurementRegisterId.Firmware].ToArray()));
        Assert.That(devTools[MeasurementRegisterId.CcMode].ToArray(), Is.Not.EqualTo(on[MeasurementRegisterId.CcMode].ToArray()));
        Assert.That(devTools[MeasurementRegisterId.DebugState].ToArray(), Is.Not.EqualTo(on[MeasurementRegisterId.DebugState].ToArray()));
        Assert.That(devTools[MeasurementRegisterId.Configuration].ToArray(), Is.Not.EqualTo(on[MeasurementRegisterId.Configuration].ToArray()));
    }

    [Test]
    public void ModeChangeRequiresResetWithScrub()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = new DeviceSecurityEngine(fuses);
        engine.Boot(_signedV1, new BootConfiguration(CcMode.On));

        Assert.That(DeviceSecurityEngine.ModeChangeRequiresReset, Is.True);
        Assert.Throws<ModeChangeRequiresResetException>(() => engine.RequestModeChange(CcMode.Off));
        Assert.Throws<ModeChangeRequiresResetException>(() => engine.Boot(_signedV1, new BootConfiguration(CcMode.Off)));
        Assert.DoesNotThrow(() => engine.RequestModeChange(CcMode.On));

        bool scrubbed = false;
        engine.Reset(() => scrubbed = true);
        Assert.That(scrubbed, Is.True);
        Assert.That(engine.State, Is.EqualTo(DeviceSecurityState.Reset));
        Assert.That(engine.Measurements[MeasurementRegisterId.BootRom].ToArray(), Is.EqualTo(new byte[48]));
        engine.Boot(_signedV1, new BootConfiguration(CcMode.Off));
        Assert.That(engine.Mode, Is.EqualTo(CcMode.Off));
    }

    [Test]
    public void MeasurementRegistersExtendInOrder()
    {
        var a = new MeasurementRegisters();
        var b = new MeasurementRegisters();
        a.Extend(MeasurementRegisterId.Configuration, "x"u8);
        a.Extend(MeasurementRegisterId.Configuration, "y"u8);
        b.Extend(MeasurementRegisterId.Configuration, "y"u8);
        b.Extend(MeasurementRegisterId.Configuration, "x"u8);
        Assert.That(a.Snapshot()[MeasurementRegisterId.Configuration].ToArray(), Is.Not.EqualTo(b.Snapshot()[MeasurementRegisterId.Configuration].ToArray()));
        Assert.That(MeasurementSet.Decode(a.Snapshot().Encode()), Is.EqualTo(a.Snapshot()));
    }
}
