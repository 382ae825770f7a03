using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Measurements;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.Verification;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Trusted;

/// <summary>
/// The verifier's less travelled paths, each a lie an emulated device or a relay can tell: what every
/// check reports when it fails or passes for an unusual reason (the verdict's text is what a relying
/// party logs and shows), and how the TCB statement and the CRL it holds may and may not be replaced.
/// Written from the mutants of `tools/mutation/run.sh verifier` that no test killed.
/// </summary>
[TestFixture]
public sealed class VerifierEdgeTests : IDisposable
{
    private readonly TrustedWorld _world = new();

    public void Dispose() => _world.Dispose();

    private AttestationResult Verify(EmulatedDevice device, VerificationPolicy? policy = null, AttestationVerifier? verifier = null)
    {
        byte[] nonce = AttestationVerifier.CreateNonce();
        return (verifier ?? _world.Verifier).VerifyHello(device.CreateHello(nonce), nonce, policy ?? VerificationPolicy.Default);
    }

    private static void AssertOnlyFailure(AttestationResult result, AttestationCheck expected, string detail)
    {
        Assert.That(result.PolicySatisfied, Is.False);
        Assert.That(result.Failures.Select(f => f.Check), Is.EqualTo(new[] { expected }), result.ToString());
        Assert.That(result[expected].Detail, Is.EqualTo(detail));
    }

    // ---- a failed verdict, as text ----

    [Test]
    public void AFailedVerdictSaysSoInEveryForm()
    {
        using EmulatedDevice device = _world.Device(CcMode.On, DebugState.Unlocked);
        AttestationResult result = Verify(device);
        CheckResult debug = result[AttestationCheck.DebugLocked];
        Assert.That(debug.ToString(), Is.EqualTo("[FAIL] DebugLocked: debug unlocked: memory dumps and tracing could reveal data"));
        Assert.That(result.ToString(), Does.StartWith("Attestation: policy NOT satisfied" + Environment.NewLine).And.Contain("[PASS] CcMode: CC mode On"));
        var refusal = new AttestationFailedException(result);
        Assert.That(refusal.Message, Is.EqualTo("The device's attestation does not satisfy the policy: DebugLocked: debug unlocked: memory dumps and tracing could reveal data. Nothing was sent to the device."));
        Assert.That(refusal.Result, Is.SameAs(result));
        Assert.That(new AttestationFailedException((AttestationResult)null!).Message, Does.StartWith("The device's attestation does not satisfy the policy: . "), "a missing result still gives a message, not a crash");

        using EmulatedDevice worse = _world.Device(CcMode.DevTools, DebugState.Unlocked);
        Assert.That(new AttestationFailedException(Verify(worse)).Message, Does.Contain(
            "CcMode: CC mode DevTools: debug tooling is available on this device; the default policy refuses it; DebugLocked: debug unlocked"), "every failure, separated");
    }

    [Test]
    public void AskingForACheckAResultDoesNotHoldThrows()
    {
        var partial = new AttestationResult([new CheckResult(AttestationCheck.Format, true, "well-formed")], null);
        Assert.That(partial.PolicySatisfied, Is.False, "a result without every check never satisfies a policy");
        Assert.Throws<InvalidOperationException>(() => _ = partial[AttestationCheck.KeyBinding]);
    }

    [Test]
    public void NullArgumentsAreRefusedByName()
    {
        Assert.That(() => new AttestationVerifier(null!, _world.SignedReferences), Throws.ArgumentNullException.With.Property("ParamName").EqualTo("manufacturerRoot"));
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        DeviceHello hello = DeviceHello.Parse(device.CreateHello(nonce));
        Assert.That(() => _world.Verifier.Verify(hello.Report.Span, nonce, hello.KeyShare.Span, null!), Throws.ArgumentNullException.With.Property("ParamName").EqualTo("policy"));
    }

    [Test]
    public void AMalformedReportLeavesEveryOtherCheckNotEvaluated()
    {
        AttestationResult result = _world.Verifier.VerifyHello([1, 2, 3], AttestationVerifier.CreateNonce(), VerificationPolicy.Default);
        Assert.That(result.Checks[0].Check, Is.EqualTo(AttestationCheck.Format));
        Assert.That(result.Checks.Skip(1).Select(c => (c.Passed, c.Detail)), Is.All.EqualTo((false, "not evaluated: the report is malformed")));
        Assert.That(result.Checks, Has.Count.EqualTo(Enum.GetValues<AttestationCheck>().Length));
    }

    [Test]
    public void AnExpectedNonceOfTheWrongSizeFailsFreshness()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        AttestationResult result = _world.Verifier.VerifyHello(device.CreateHello(nonce), nonce.AsSpan(0, 16), VerificationPolicy.Default);
        AssertOnlyFailure(result, AttestationCheck.Freshness, "the expected nonce must be 32 fresh random bytes");
    }

    // ---- the certificate chain's DICE layer ----

    [Test]
    public void AnAttestationKeyCertifiedWithoutItsFirmwareFailsCertificateChain()
    {
        using EmulatedDevice device = _world.Device(lies: new EmulatedLies { OmitDiceTcbInfo = true });
        AttestationResult result = Verify(device);
        Assert.That(result.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.CertificateChain }), result.ToString());
        Assert.That(result[AttestationCheck.CertificateChain].Detail, Does.StartWith("Malformed attestation-key certificate: field 'DiceTcbInfo' is missing"));
    }

    [Test]
    public void AnAttestationKeyDerivedForOtherFirmwareFailsCertificateChain()
    {
        using EmulatedDevice device = _world.Device(lies: new EmulatedLies { DiceSvn = 1 });
        string firmware = device.Measurements.ToHex(MeasurementRegisterId.Firmware);
        AssertOnlyFailure(Verify(device), AttestationCheck.CertificateChain,
            $"the attestation key was derived for firmware {firmware} (SVN 1) but the report claims {firmware} (SVN {_world.Firmware.SecurityVersion})");
    }

    // ---- reference measurements ----

    [Test]
    public void FirmwareOfAnUnpublishedVersionFailsReferenceMeasurements()
    {
        var future = new FirmwareImage(99, _world.Firmware.SecurityVersion, "AscendCC", "unpublished firmware v99"u8);
        using EmulatedDevice device = _world.Device(firmware: future);
        AssertOnlyFailure(Verify(device), AttestationCheck.ReferenceMeasurements, "the manufacturer publishes no reference for firmware version 99");
    }

    [Test]
    public void EveryReferenceProblemIsListed()
    {
        // The published version 3, another image and a lower SVN: both the register and the SVN differ from the reference.
        var downgraded = new FirmwareImage(_world.Firmware.Version, 1, "AscendCC", "published firmware v3"u8);
        using EmulatedDevice device = _world.Device(firmware: downgraded);
        AttestationResult result = Verify(device, new VerificationPolicy { MinimumSvn = 1 }, _world.NewVerifier(tcbStatement: ReadOnlyMemory<byte>.Empty));
        Assert.That(result.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.ReferenceMeasurements }), result.ToString());
        string detail = result[AttestationCheck.ReferenceMeasurements].Detail;
        Assert.That(detail, Does.StartWith("Firmware register: expected ").And.EndWith($"; SVN: expected {_world.Firmware.SecurityVersion}, actual 1"));
    }

    [Test]
    public void APolicysAllowListOfFirmwareIsEnforcedAndAnyEntryMayMatch()
    {
        using EmulatedDevice device = _world.Device();
        byte[] genuine = device.Measurements[MeasurementRegisterId.Firmware].ToArray();
        byte[] other = SHA384.HashData("another firmware"u8);
        AttestationResult refused = Verify(device, new VerificationPolicy { AllowedFirmwareMeasurements = [other] });
        AssertOnlyFailure(refused, AttestationCheck.ReferenceMeasurements,
            $"Firmware register {device.Measurements.ToHex(MeasurementRegisterId.Firmware)} is not among the policy's allowed measurements");
        AttestationResult allowed = Verify(device, new VerificationPolicy { AllowedFirmwareMeasurements = [other, genuine] });
        Assert.That(allowed.PolicySatisfied, Is.True, allowed.ToString());
    }

    [Test]
    public void AForgedReportSignatureIsNamedAsSuch()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        DeviceHello hello = DeviceHello.Parse(device.CreateHello(nonce));
        byte[] report = hello.Report.ToArray();
        report[^10] ^= 0x40;
        AssertOnlyFailure(_world.Verifier.Verify(report, nonce, hello.KeyShare.Span, VerificationPolicy.Default), AttestationCheck.Signature,
            "the report signature does not verify: the report was modified or signed by another key");
    }

    [Test]
    public void AnAttestationKeyCertificateWithoutAnEcdsaKeyFailsSignature()
    {
        // The chain check already refuses a non-P-384 attestation key; the signature check does not rely on it.
        using EmulatedDevice device = _world.Device(lies: new EmulatedLies { CertifyAnRsaKey = true });
        AttestationResult result = Verify(device);
        Assert.That(result.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.CertificateChain, AttestationCheck.Signature }), result.ToString());
        Assert.That(result[AttestationCheck.Signature].Detail, Is.EqualTo("the attestation-key certificate holds no ECDSA key"));
    }

    // ---- mode, debug, key share, model ----

    [Test]
    public void ADeviceWithCcOffFailsCcMode()
    {
        using EmulatedDevice device = _world.Device(CcMode.Off);
        AssertOnlyFailure(Verify(device, new VerificationPolicy { AllowDevTools = true }), AttestationCheck.CcMode, "CC mode Off: the device does not protect data");
    }

    [Test]
    public void AnAllowedDevToolsOrUnlockedDebugPassesSayingItWasAllowed()
    {
        using EmulatedDevice devTools = _world.Device(CcMode.DevTools);
        Assert.That(Verify(devTools, new VerificationPolicy { AllowDevTools = true })[AttestationCheck.CcMode].Detail,
            Is.EqualTo("CC mode DevTools, explicitly allowed by this (non-production) policy"));
        using EmulatedDevice unlocked = _world.Device(CcMode.On, DebugState.Unlocked);
        CheckResult debug = Verify(unlocked, new VerificationPolicy { AllowDebugUnlocked = true })[AttestationCheck.DebugLocked];
        Assert.That((debug.Passed, debug.Detail), Is.EqualTo((true, "debug unlocked, explicitly allowed by this (non-production) policy")));
    }

    [Test]
    public void AClaimedDebugStateThatDiffersFromTheMeasuredOneFailsDebugLocked()
    {
        using EmulatedDevice device = _world.Device(lies: new EmulatedLies { MeasuredDebug = DebugState.Unlocked });
        AssertOnlyFailure(Verify(device), AttestationCheck.DebugLocked, "the DebugState register does not record Locked");
    }

    [Test]
    public void AnAttestedKeyShareThatIsNoPointFailsKeyBinding()
    {
        byte[] notAPoint = new byte[KeyShare.Size];
        notAPoint[0] = 0x04;
        using EmulatedDevice device = _world.Device(lies: new EmulatedLies { KeyShare = notAPoint });
        AttestationResult result = Verify(device);
        Assert.That(result.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.KeyBinding }), result.ToString());
        Assert.That(result[AttestationCheck.KeyBinding].Detail, Does.Contain("key share"));
    }

    [Test]
    public void TheModelRegisterIsComparedWhenThePolicyNamesAModel()
    {
        byte[] model = SHA384.HashData("the provider's graph"u8), other = SHA384.HashData("the host's graph"u8);
        using EmulatedDevice device = _world.Device(lies: new EmulatedLies { LoadedModel = model });
        CheckResult match = Verify(device, new VerificationPolicy { ExpectedModelMeasurement = model })[AttestationCheck.ModelMeasurement];
        Assert.That((match.Passed, match.Detail), Is.EqualTo((true, "the device runs exactly the expected model graph")));
        AttestationResult mismatch = Verify(device, new VerificationPolicy { ExpectedModelMeasurement = other });
        Assert.That(mismatch.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.ModelMeasurement }));
        Assert.That(mismatch[AttestationCheck.ModelMeasurement].Detail, Does.StartWith($"Model register {device.Measurements.ToHex(MeasurementRegisterId.Model)} is not the expected "));
    }

    // ---- the minimum SVN's source ----

    [Test]
    public void TheMinimumSvnSaysWhereItCameFrom()
    {
        using EmulatedDevice device = _world.Device();
        uint svn = _world.Firmware.SecurityVersion;
        AttestationVerifier noStatement = _world.NewVerifier(tcbStatement: ReadOnlyMemory<byte>.Empty);
        AttestationResult explicitOnly = Verify(device, new VerificationPolicy { MinimumSvn = 1 }, noStatement);
        Assert.That(explicitOnly[AttestationCheck.TcbRecovery].Detail,
            Is.EqualTo("no TCB recovery statement; the policy's explicit MinimumSvn 1 stands in for it (this verifier will not learn of newer security fixes)"));
        Assert.That(explicitOnly[AttestationCheck.SvnMinimum].Detail, Is.EqualTo($"SVN {svn} ≥ minimum 1 from the policy's explicit MinimumSvn (the verifier holds no TCB recovery statement)"));

        AttestationVerifier untrusted = _world.NewVerifier(tcbStatement: _world.SignedReferences);
        AttestationResult broken = Verify(device, new VerificationPolicy { MinimumSvn = 1 }, untrusted);
        Assert.That(broken[AttestationCheck.SvnMinimum].Detail, Is.EqualTo($"SVN {svn} ≥ minimum 1 from the policy's explicit MinimumSvn (the verifier holds no trustworthy TCB recovery statement)"));

        Assert.That(Verify(device)[AttestationCheck.SvnMinimum].Detail, Does.Match(@"^SVN \d+ ≥ minimum \d+ from the manufacturer's TCB recovery statement #1 \(issued [^)]+\)$"),
            "with no explicit minimum in the policy, nothing follows the statement");
        AttestationResult lowerExplicit = Verify(device, new VerificationPolicy { MinimumSvn = 1 });
        Assert.That(lowerExplicit[AttestationCheck.SvnMinimum].Detail, Does.EndWith("; the policy's explicit MinimumSvn 1 is not higher"));
    }

    // ---- revocation: what the CRL covers, and its text ----

    [Test]
    public void ADeviceOfAnotherManufacturerIsNotCoveredByTheCrl()
    {
        using var rogue = Manufacturer.Create("Rogue");
        using DeviceProvisioning foreign = rogue.ProvisionDevice("NPU-0001");
        using var device = new EmulatedDevice(foreign, _world.Firmware);
        AttestationResult result = Verify(device);
        Assert.That(result[AttestationCheck.Revocation].Passed, Is.False);
        Assert.That(result[AttestationCheck.Revocation].Detail,
            Does.StartWith("no certificate of the report's chain was issued by the revocation list's issuer '").And.EndWith("': revocation status unknown"));
    }

    [Test]
    public void ARevokedDeviceIsRefusedSayingTheManufacturerNoLongerVouchesForIt()
    {
        using var world = new TrustedWorld();
        world.Manufacturer.RevokeDevice("NPU-0001", new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.Zero), X509RevocationReason.Superseded);
        AttestationVerifier verifier = world.NewVerifier(revocationList: world.Manufacturer.PublishRevocationList());
        using EmulatedDevice device = world.Device();
        string detail = Verify(device, verifier: verifier)[AttestationCheck.Revocation].Detail;
        Assert.That(detail, Does.Contain("was revoked on 2025-03-04 05:06:07Z (reason Superseded)").And.EndWith("): the manufacturer no longer vouches for this device"));
    }

    [Test]
    public void AStaleCrlIsDescribedWithBothTimes()
    {
        var issued = new DateTimeOffset(2026, 1, 10, 0, 0, 0, TimeSpan.Zero);
        byte[] crl = _world.Manufacturer.PublishRevocationList(issued, TimeSpan.FromDays(7));
        using EmulatedDevice device = _world.Device();
        string early = Verify(device, verifier: _world.NewVerifier(revocationList: crl, time: new FixedClock(issued.AddDays(-1))))[AttestationCheck.Revocation].Detail;
        Assert.That(early, Does.StartWith("the revocation list is not yet valid: thisUpdate 2026-01-10 00:00:00Z is after the verifier's clock 2026-01-09 00:00:00Z ("));
        string late = Verify(device, verifier: _world.NewVerifier(revocationList: crl, time: new FixedClock(issued.AddDays(8))))[AttestationCheck.Revocation].Detail;
        Assert.That(late, Does.StartWith("the revocation list expired: nextUpdate 2026-01-17 00:00:00Z is before the verifier's clock 2026-01-18 00:00:00Z (")
            .And.EndWith("); get a current CRL from the manufacturer"));
    }

    // ---- replacing the TCB statement ----

    [Test]
    public void AVerifierBuiltWithANewerStatementRefusesAnOlderOne()
    {
        using var world = new TrustedWorld();
        byte[] first = world.SignedTcbStatement;
        byte[] second = world.Manufacturer.PublishTcbRecoveryStatement(3, "ACC-SA-1");
        AttestationVerifier verifier = world.NewVerifier(tcbStatement: second);
        Assert.That(verifier.TryUpdateTcbStatement(first, out string refused), Is.False, refused);
        Assert.That(refused, Does.StartWith("refused: TCB recovery statement #1").And.Contain("not newer than statement #2"));
        Assert.That(verifier.TryUpdateTcbStatement(second, out string again), Is.True, again);
        Assert.That(again, Does.StartWith("already current: TCB recovery statement #2"));
    }

    [Test]
    public void AStatementOfTheSameNumberButOtherContentIsRefused()
    {
        // A manufacturer from the world's seed holds the same signing key, so its statement #1 verifies
        // too; its advisory differs. Only the held statement itself is "current".
        using var twin = Manufacturer.CreateDeterministic("AscendCC test world seed, 32+ bytes long"u8);
        byte[] other = twin.PublishTcbRecoveryStatement(_world.Firmware.SecurityVersion, "another advisory");
        Assert.That(_world.Verifier.TryUpdateTcbStatement(other, out string refused), Is.False, refused);
        Assert.That(refused, Does.Contain("not newer than statement #1"));
    }

    [Test]
    public void AVerifierWithoutAStatementOrWithAnUnverifiableOneInstallsAGoodOne()
    {
        foreach ((string what, ReadOnlyMemory<byte> held) in new[] { ("none", ReadOnlyMemory<byte>.Empty), ("not a statement", (ReadOnlyMemory<byte>)_world.SignedReferences) })
        {
            AttestationVerifier verifier = _world.NewVerifier(tcbStatement: held);
            Assert.That(verifier.TryUpdateTcbStatement(_world.SignedTcbStatement, out string installed), Is.True, $"{what}: {installed}");
            Assert.That(installed, Does.StartWith("installed TCB recovery statement #1"), what);
            using EmulatedDevice device = _world.Device();
            Assert.That(Verify(device, verifier: verifier).PolicySatisfied, Is.True, what);
        }
    }

    // ---- replacing the CRL ----

    [Test]
    public void AVerifierBuiltWithANewerCrlRefusesAnOlderOne()
    {
        using var world = new TrustedWorld();
        byte[] before = world.RevocationList;
        world.Manufacturer.RevokeDevice(world.Provisioning.IdentityCertificate);
        byte[] after = world.Manufacturer.PublishRevocationList();
        AttestationVerifier verifier = world.NewVerifier(revocationList: after);
        Assert.That(verifier.TryUpdateRevocationList(before, out string refused), Is.False, refused);
        Assert.That(refused, Does.StartWith("refused: CRL #1").And.Contain("not newer than CRL #2"));
        Assert.That(verifier.TryUpdateRevocationList(after, out string again), Is.True, again);
        Assert.That(again, Does.StartWith("already current: CRL #2"));
    }

    [Test]
    public void ACrlOfTheSameNumberButOtherContentIsRefused()
    {
        using var twin = new TrustedWorld();
        Assert.That(twin.RevocationList, Is.Not.EqualTo(_world.RevocationList));
        Assert.That(_world.Verifier.TryUpdateRevocationList(twin.RevocationList, out string refused), Is.False, refused);
        Assert.That(refused, Does.Contain("not newer than CRL #1"));
    }

    [Test]
    public void AVerifierWithoutACrlOrWithAnUnverifiableOneInstallsAGoodOneAndTellsWhyOthersAreRefused()
    {
        foreach ((string what, ReadOnlyMemory<byte> held) in new[] { ("none", ReadOnlyMemory<byte>.Empty), ("not a CRL", (ReadOnlyMemory<byte>)_world.SignedReferences) })
        {
            AttestationVerifier verifier = _world.NewVerifier(revocationList: held);
            Assert.That(verifier.TryUpdateRevocationList(_world.RevocationList, out string installed), Is.True, $"{what}: {installed}");
            Assert.That(installed, Does.StartWith("installed CRL #1"), what);
            using EmulatedDevice device = _world.Device();
            Assert.That(Verify(device, verifier: verifier).PolicySatisfied, Is.True, what);
        }
        using var rogue = Manufacturer.Create("Rogue");
        Assert.That(_world.Verifier.TryUpdateRevocationList(rogue.PublishRevocationList(), out string untrusted), Is.False);
        Assert.That(untrusted, Does.StartWith("refused: the revocation list is not trustworthy: "));
        Assert.That(_world.Verifier.TryUpdateRevocationList(_world.Manufacturer.PublishRevocationList(DateTimeOffset.UtcNow.AddDays(-30), TimeSpan.FromDays(1)), out string expired), Is.False);
        Assert.That(expired, Does.StartWith("refused: the revocation list expired: nextUpdate "));
    }
}
