using System.Security.Cryptography;
using AscendCC.Protocol;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Measurements;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.Verification;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Trusted;

[TestFixture]
public sealed class VerifierTests : IDisposable
{
    private readonly TrustedWorld _world = new();

    public void Dispose() => _world.Dispose();

    [Test]
    public void GenuineReportPassesEveryNamedCheck()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        AttestationResult result = _world.Verifier.VerifyHello(device.CreateHello(nonce), nonce, VerificationPolicy.Default);
        Assert.That(result.PolicySatisfied, Is.True, result.ToString());
        Assert.That(result.Checks.Select(c => c.Check), Is.EqualTo(Enum.GetValues<AttestationCheck>()));
    }

    [Test]
    public void StaleNonceFailsOnlyFreshness()
    {
        using EmulatedDevice device = _world.Device();
        byte[] hello = device.CreateHello(AttestationVerifier.CreateNonce());
        AssertOnlyFailure(_world.Verifier.VerifyHello(hello, AttestationVerifier.CreateNonce(), VerificationPolicy.Default), AttestationCheck.Freshness, "stale or replayed");
    }

    [Test]
    public void ReplayedReportFailsFreshnessForTheNextSession()
    {
        using EmulatedDevice device = _world.Device();
        byte[] firstNonce = AttestationVerifier.CreateNonce();
        byte[] hello = device.CreateHello(firstNonce);
        Assert.That(_world.Verifier.VerifyHello(hello, firstNonce, VerificationPolicy.Default).PolicySatisfied, Is.True);
        AssertOnlyFailure(_world.Verifier.VerifyHello(hello, AttestationVerifier.CreateNonce(), VerificationPolicy.Default), AttestationCheck.Freshness);
    }

    [Test]
    public void ForgedSignatureFailsOnlySignature()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        DeviceHello hello = DeviceHello.Parse(device.CreateHello(nonce));
        byte[] report = hello.Report.ToArray();
        report[^10] ^= 0x40;
        AssertOnlyFailure(_world.Verifier.Verify(report, nonce, hello.KeyShare.Span, VerificationPolicy.Default), AttestationCheck.Signature);
    }

    [Test]
    public void ModifiedReportFieldFailsSignature()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        DeviceHello hello = DeviceHello.Parse(device.CreateHello(nonce));
        byte[] report = hello.Report.ToArray();
        int svnOffset = 8 + MeasurementSet.EncodedSize + 2 + 4 + 3;
        report[svnOffset] ^= 0x01;
        AttestationResult result = _world.Verifier.Verify(report, nonce, hello.KeyShare.Span, VerificationPolicy.Default);
        Assert.That(result.PolicySatisfied, Is.False);
        Assert.That(result[AttestationCheck.Signature].Passed, Is.False);
    }

    [Test]
    public void WrongRootFailsOnlyCertificateChain()
    {
        using var otherManufacturer = Manufacturer.CreateDeterministic(System.Text.Encoding.ASCII.GetBytes("a different manufacturer seed 0123456789"));
        var verifier = new AttestationVerifier(otherManufacturer.RootCertificate, otherManufacturer.PublishReferenceMeasurements([_world.Firmware]));
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        AssertOnlyFailure(verifier.VerifyHello(device.CreateHello(nonce), nonce, VerificationPolicy.Default), AttestationCheck.CertificateChain, "pinned root");
    }

    [Test]
    public void UnpublishedFirmwareFailsReferenceMeasurementsWithExpectedAndActualHex()
    {
        var patched = new FirmwareImage(_world.Firmware.Version, _world.Firmware.SecurityVersion, "AscendCC", "patched firmware v3"u8);
        using EmulatedDevice device = _world.Device(firmware: patched);
        byte[] nonce = AttestationVerifier.CreateNonce();
        AttestationResult result = _world.Verifier.VerifyHello(device.CreateHello(nonce), nonce, VerificationPolicy.Default);
        AssertOnlyFailure(result, AttestationCheck.ReferenceMeasurements);
        string expected = Convert.ToHexStringLower(ReferenceMeasurements.ExpectedFirmwareRegister(_world.Firmware.Encode()));
        string actual = device.Measurements.ToHex(MeasurementRegisterId.Firmware);
        Assert.That(result[AttestationCheck.ReferenceMeasurements].Detail, Does.Contain($"expected {expected}").And.Contain($"actual {actual}"));
    }

    [Test]
    public void UntrustedReferenceListFailsReferenceMeasurements()
    {
        using var rogue = Manufacturer.Create("Rogue");
        var verifier = new AttestationVerifier(_world.Manufacturer.RootCertificate, rogue.PublishReferenceMeasurements([_world.Firmware]));
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        AssertOnlyFailure(verifier.VerifyHello(device.CreateHello(nonce), nonce, VerificationPolicy.Default), AttestationCheck.ReferenceMeasurements, "not trustworthy");
    }

    [Test]
    public void DevToolsFailsDefaultPolicyButIsVisibleAndExplicitlyAllowable()
    {
        using EmulatedDevice device = _world.Device(CcMode.DevTools);
        byte[] nonce = AttestationVerifier.CreateNonce();
        byte[] hello = device.CreateHello(nonce);
        AssertOnlyFailure(_world.Verifier.VerifyHello(hello, nonce, VerificationPolicy.Default), AttestationCheck.CcMode, "DevTools");
        Assert.That(_world.Verifier.VerifyHello(hello, nonce, new VerificationPolicy { AllowDevTools = true }).PolicySatisfied, Is.True);
    }

    [Test]
    public void ClaimedModeThatDiffersFromMeasuredModeFailsCcMode()
    {
        using EmulatedDevice device = _world.Device(CcMode.On, measuredMode: CcMode.DevTools);
        byte[] nonce = AttestationVerifier.CreateNonce();
        AssertOnlyFailure(_world.Verifier.VerifyHello(device.CreateHello(nonce), nonce, VerificationPolicy.Default), AttestationCheck.CcMode, "not the measured one");
    }

    [Test]
    public void UnlockedDebugFailsOnlyDebugLocked()
    {
        using EmulatedDevice device = _world.Device(CcMode.On, DebugState.Unlocked);
        byte[] nonce = AttestationVerifier.CreateNonce();
        AssertOnlyFailure(_world.Verifier.VerifyHello(device.CreateHello(nonce), nonce, VerificationPolicy.Default), AttestationCheck.DebugLocked);
    }

    [Test]
    public void LowSvnFailsOnlySvnMinimum()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        AssertOnlyFailure(_world.Verifier.VerifyHello(device.CreateHello(nonce), nonce, new VerificationPolicy { MinimumSvn = 3 }), AttestationCheck.SvnMinimum, "below");
    }

    [Test]
    public void SwappedKeyShareFailsOnlyKeyBinding()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        DeviceHello genuine = DeviceHello.Parse(device.CreateHello(nonce));
        using var relayKey = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP384);
        byte[] swapped = new DeviceHello(genuine.Report.Span, KeyShare.Export(relayKey)).Encode();
        AssertOnlyFailure(_world.Verifier.VerifyHello(swapped, nonce, VerificationPolicy.Default), AttestationCheck.KeyBinding, "substituted");
    }

    [Test]
    public void MalformedReportsThrowPreciseFormatErrorsAndFailVerification()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        DeviceHello hello = DeviceHello.Parse(device.CreateHello(nonce));
        byte[] report = hello.Report.ToArray();
        foreach (int length in new[] { 0, 7, 8, 100, 300, report.Length - 97, report.Length - 1 })
        {
            var ex = Assert.Throws<ProtocolFormatException>(() => AttestationReport.Parse(report.AsSpan(0, length)));
            Assert.That(ex!.MessageType, Is.EqualTo("attestation report"));
        }
        Assert.That(Assert.Throws<ProtocolFormatException>(() => AttestationReport.Parse([.. report, 0]))!.Field, Is.EqualTo("(end)"));
        byte[] badMode = (byte[])report.Clone();
        badMode[8 + MeasurementSet.EncodedSize] = 9;
        Assert.That(Assert.Throws<ProtocolFormatException>(() => AttestationReport.Parse(badMode))!.Field, Is.EqualTo("ccMode"));

        AttestationResult result = _world.Verifier.Verify(report.AsSpan(0, 300), nonce, hello.KeyShare.Span, VerificationPolicy.Default);
        Assert.That(result.PolicySatisfied, Is.False);
        Assert.That(result.Checks, Has.Count.EqualTo(Enum.GetValues<AttestationCheck>().Length));
        Assert.That(result.Checks.All(c => !c.Passed), Is.True);
    }

    private static void AssertOnlyFailure(AttestationResult result, AttestationCheck expected, string? detailFragment = null)
    {
        Assert.That(result.PolicySatisfied, Is.False);
        Assert.That(result.Failures.Select(f => f.Check), Is.EqualTo(new[] { expected }), result.ToString());
        if (detailFragment is not null)
        {
            Assert.That(result[expected].Detail, Does.Contain(detailFragment));
        }
    }
}
