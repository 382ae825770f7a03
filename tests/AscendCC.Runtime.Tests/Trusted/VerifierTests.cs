using System.Security.Cryptography;
using AscendCC.Protocol;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Measurements;
using AscendCC.Protocol.Pki;
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
    public void EveryPassingCheckSaysWhatItEstablished()
    {
        // The verdict's details are what a relying party logs and shows: a passing check names what it
        // compared, not just that it passed.
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        byte[] hello = device.CreateHello(nonce);
        AttestationResult result = _world.Verifier.VerifyHello(hello, nonce, VerificationPolicy.Default);
        Assert.That(result.PolicySatisfied, Is.True, result.ToString());
        int reportLength = DeviceHello.Parse(hello).Report.Length;
        Assert.Multiple(() =>
        {
            Assert.That(result[AttestationCheck.Format].Detail, Is.EqualTo($"well-formed report, {reportLength} bytes"));
            Assert.That(result[AttestationCheck.Freshness].Detail, Does.Contain("echoes this verification's nonce"));
            Assert.That(result[AttestationCheck.CertificateChain].Detail, Does.EndWith("; DICE layer matches the firmware measurement"));
            Assert.That(result[AttestationCheck.Revocation].Detail, Does.Contain("not revoked").And.Contain("revoking the identity revokes it too"));
            Assert.That(result[AttestationCheck.Signature].Detail, Does.Contain("signature verifies under the certified attestation key"));
            Assert.That(result[AttestationCheck.ReferenceMeasurements].Detail, Does.Contain($"match the manufacturer reference for version {_world.Firmware.Version}"));
            Assert.That(result[AttestationCheck.CcMode].Detail, Is.EqualTo("CC mode On"));
            Assert.That(result[AttestationCheck.DebugLocked].Detail, Is.EqualTo("debug locked"));
            Assert.That(result[AttestationCheck.TcbRecovery].Detail, Does.Contain($"imposes minimum firmware SVN {_world.Firmware.SecurityVersion}"));
            Assert.That(result[AttestationCheck.SvnMinimum].Detail, Does.StartWith($"SVN {_world.Firmware.SecurityVersion} ≥ minimum {_world.Firmware.SecurityVersion} from the manufacturer's TCB recovery statement #"));
            Assert.That(result[AttestationCheck.KeyBinding].Detail, Does.Contain("equals the attested ephemeral P-384 key"));
            Assert.That(result[AttestationCheck.ModelMeasurement].Detail, Does.Contain("names no model"));
        });
        Assert.That(result.ToString(), Does.StartWith("Attestation: policy satisfied").And.Contain("[PASS] KeyBinding: channel key share"));
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
        var verifier = new AttestationVerifier(otherManufacturer.RootCertificate, otherManufacturer.PublishReferenceMeasurements([_world.Firmware]),
            otherManufacturer.PublishTcbRecoveryStatement(_world.Firmware.SecurityVersion), otherManufacturer.PublishRevocationList());
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
        AttestationVerifier verifier = _world.NewVerifier(references: rogue.PublishReferenceMeasurements([_world.Firmware]));
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

    // ---- TCB recovery: the minimum firmware SVN comes from the manufacturer's signed statement ----

    [Test]
    public void FirmwareBelowTheTcbMinimumFailsOnlySvnMinimumNamingTheStatement()
    {
        // The manufacturer fixed a vulnerability in a later release and raised the minimum to SVN 3; the
        // device still runs the published SVN 2 release (genuine, in the reference list).
        using var world = new TrustedWorld();
        byte[] raised = world.Manufacturer.PublishTcbRecoveryStatement(3, "ACC-SA-1: fixed in firmware 4");
        AttestationVerifier verifier = world.NewVerifier(tcbStatement: raised);
        using EmulatedDevice device = world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        AttestationResult result = verifier.VerifyHello(device.CreateHello(nonce), nonce, VerificationPolicy.Default);
        AssertOnlyFailure(result, AttestationCheck.SvnMinimum, "SVN 2 is below the minimum 3 from the manufacturer's TCB recovery statement #2");
        Assert.That(result[AttestationCheck.TcbRecovery].Detail, Does.Contain("statement #2").And.Contain("minimum firmware SVN 3").And.Contain("ACC-SA-1"));
        Assert.That(result[AttestationCheck.ReferenceMeasurements].Passed, Is.True, "the firmware is genuine and published; only its SVN is too old");
    }

    [Test]
    public void TamperedOrForgedTcbStatementFailsTcbRecovery()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        byte[] hello = device.CreateHello(nonce);

        // Tampered: the statement's minimum SVN lowered from 2 to 0 inside the signed content.
        byte[] tampered = _world.SignedTcbStatement.ToArray();
        byte[] content = TcbRecoveryStatement.VerifySigned(tampered, _world.Manufacturer.RootCertificate, DateTime.UtcNow).Encode();
        int minimumAt = tampered.AsSpan().IndexOf(content) + 8 + 8 + 8 + 3;
        Assert.That(tampered[minimumAt], Is.EqualTo(2));
        tampered[minimumAt] = 0;
        // Forged: a statement of the same name signed under another manufacturer's root; and the
        // manufacturer's own reference list offered as a statement (right signer, wrong content type).
        using var rogue = Manufacturer.CreateDeterministic(System.Text.Encoding.ASCII.GetBytes("a rogue manufacturer seed, 32+ bytes long"));
        foreach ((string what, byte[] statement) in new[] { ("tampered", tampered), ("forged", rogue.PublishTcbRecoveryStatement(0)), ("reference list", _world.SignedReferences) })
        {
            AttestationVerifier verifier = _world.NewVerifier(tcbStatement: statement);
            AttestationResult result = verifier.VerifyHello(hello, nonce, VerificationPolicy.Default);
            Assert.That(result.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.TcbRecovery, AttestationCheck.SvnMinimum }), $"{what}: {result}");
            Assert.That(result[AttestationCheck.TcbRecovery].Detail, Does.Contain("not trustworthy"), what);
            Assert.That(result[AttestationCheck.SvnMinimum].Detail, Does.Contain("no trustworthy TCB recovery statement"), what);
            // An explicit minimum lets the SVN be compared, but does not excuse a bad statement.
            AssertOnlyFailure(verifier.VerifyHello(hello, nonce, new VerificationPolicy { MinimumSvn = 2 }), AttestationCheck.TcbRecovery, "not trustworthy");
        }
    }

    [Test]
    public void WithoutATcbStatementTheDefaultPolicyFailsClosedAndAnExplicitMinimumStandsIn()
    {
        AttestationVerifier verifier = _world.NewVerifier(tcbStatement: ReadOnlyMemory<byte>.Empty);
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        byte[] hello = device.CreateHello(nonce);
        AttestationResult result = verifier.VerifyHello(hello, nonce, VerificationPolicy.Default);
        Assert.That(result.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.TcbRecovery, AttestationCheck.SvnMinimum }), result.ToString());
        Assert.That(result[AttestationCheck.TcbRecovery].Detail, Does.Contain("no TCB statement: pass one").And.Contain("or set an explicit MinimumSvn"));

        AttestationResult explicitMinimum = verifier.VerifyHello(hello, nonce, new VerificationPolicy { MinimumSvn = 2 });
        Assert.That(explicitMinimum.PolicySatisfied, Is.True, explicitMinimum.ToString());
        Assert.That(explicitMinimum[AttestationCheck.SvnMinimum].Detail, Does.Contain("the policy's explicit MinimumSvn"));
        AssertOnlyFailure(verifier.VerifyHello(hello, nonce, new VerificationPolicy { MinimumSvn = 3 }), AttestationCheck.SvnMinimum, "below the minimum 3 from the policy's explicit MinimumSvn");
    }

    [Test]
    public void AnExplicitMinimumSvnHigherThanTheStatementsStillApplies()
    {
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        byte[] hello = device.CreateHello(nonce);
        // The statement says 2 (the device's SVN): a policy asking for 3 wins...
        AssertOnlyFailure(_world.Verifier.VerifyHello(hello, nonce, new VerificationPolicy { MinimumSvn = 3 }), AttestationCheck.SvnMinimum,
            "below the minimum 3 from the policy's explicit MinimumSvn, higher than the 2 of the manufacturer's TCB recovery statement #1");
        // ...while a policy asking for less cannot lower the statement's minimum.
        using var world = new TrustedWorld();
        AttestationVerifier raised = world.NewVerifier(tcbStatement: world.Manufacturer.PublishTcbRecoveryStatement(3));
        using EmulatedDevice old = world.Device();
        byte[] nonce2 = AttestationVerifier.CreateNonce();
        AssertOnlyFailure(raised.VerifyHello(old.CreateHello(nonce2), nonce2, new VerificationPolicy { MinimumSvn = 1 }), AttestationCheck.SvnMinimum,
            "below the minimum 3 from the manufacturer's TCB recovery statement #2 (issued");
    }

    [Test]
    public void AnOlderTcbStatementCannotReplaceANewerOne()
    {
        using var world = new TrustedWorld();
        byte[] first = world.SignedTcbStatement;
        byte[] second = world.Manufacturer.PublishTcbRecoveryStatement(3, "ACC-SA-1");
        AttestationVerifier verifier = world.NewVerifier();
        Assert.That(verifier.TryUpdateTcbStatement(second, out string installed), Is.True, installed);
        Assert.That(installed, Does.Contain("installed TCB recovery statement #2"));
        Assert.That(verifier.TryUpdateTcbStatement(second, out string again), Is.True, again);
        Assert.That(verifier.TryUpdateTcbStatement(first, out string refused), Is.False);
        Assert.That(refused, Does.Contain("#1").And.Contain("not newer than statement #2"));
        Assert.That(verifier.TryUpdateTcbStatement(_world.SignedReferences, out string untrusted), Is.False);
        Assert.That(untrusted, Does.Contain("not trustworthy"));

        using EmulatedDevice device = world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        AssertOnlyFailure(verifier.VerifyHello(device.CreateHello(nonce), nonce, VerificationPolicy.Default), AttestationCheck.SvnMinimum, "statement #2");
        Assert.Throws<ArgumentOutOfRangeException>(() => world.Manufacturer.PublishTcbRecoveryStatement(2), "the manufacturer never lowers its minimum");
    }

    // ---- Revocation: the manufacturer's CRL, checked offline ----

    [Test]
    public void RevokedDeviceFailsOnlyRevocationNamingTheSerialAndDate()
    {
        using var world = new TrustedWorld();
        var revokedAt = new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.Zero);
        world.Manufacturer.RevokeDevice("NPU-0001", revokedAt);
        AttestationVerifier verifier = world.NewVerifier(revocationList: world.Manufacturer.PublishRevocationList());
        using EmulatedDevice device = world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        AttestationResult result = verifier.VerifyHello(device.CreateHello(nonce), nonce, VerificationPolicy.Default);
        string serial = Convert.ToHexStringLower(world.Provisioning.IdentityCertificate.SerialNumberBytes.Span);
        AssertOnlyFailure(result, AttestationCheck.Revocation, $"serial {serial} was revoked on 2025-03-04 05:06:07Z (reason KeyCompromise)");
        Assert.That(result[AttestationCheck.Revocation].Detail, Does.Contain("CRL #2").And.Contain("NPU-0001"));
    }

    [Test]
    public void ExpiredOrNotYetValidRevocationListFailsRevocation()
    {
        var issued = new DateTimeOffset(2026, 1, 10, 0, 0, 0, TimeSpan.Zero);
        byte[] crl = _world.Manufacturer.PublishRevocationList(issued, TimeSpan.FromDays(7));
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        byte[] hello = device.CreateHello(nonce);

        AttestationResult current = _world.NewVerifier(revocationList: crl, time: new FixedClock(issued.AddDays(6))).VerifyHello(hello, nonce, VerificationPolicy.Default);
        Assert.That(current.PolicySatisfied, Is.True, current.ToString());
        AssertOnlyFailure(_world.NewVerifier(revocationList: crl, time: new FixedClock(issued.AddDays(8))).VerifyHello(hello, nonce, VerificationPolicy.Default),
            AttestationCheck.Revocation, "the revocation list expired: nextUpdate 2026-01-17 00:00:00Z");
        AssertOnlyFailure(_world.NewVerifier(revocationList: crl, time: new FixedClock(issued.AddDays(-1))).VerifyHello(hello, nonce, VerificationPolicy.Default),
            AttestationCheck.Revocation, "not yet valid");
        // The development opt-out excuses a missing list only, never a stale one.
        AssertOnlyFailure(_world.NewVerifier(revocationList: crl, time: new FixedClock(issued.AddDays(8))).VerifyHello(hello, nonce, new VerificationPolicy { AllowMissingRevocationList = true }),
            AttestationCheck.Revocation, "expired");
    }

    [Test]
    public void RevocationListSignedByAnotherKeyFailsRevocation()
    {
        // Same issuer name as the pinned root (the default manufacturer name), another key: only the signature tells them apart.
        using var sameName = Manufacturer.CreateDeterministic(System.Text.Encoding.ASCII.GetBytes("a rogue manufacturer seed, 32+ bytes long"));
        Assert.That(sameName.RootCertificate.Subject, Is.EqualTo(_world.Manufacturer.RootCertificate.Subject));
        using var otherName = Manufacturer.Create("Rogue");
        byte[] tampered = _world.RevocationList.ToArray();
        tampered[^5] ^= 0x01;
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        byte[] hello = device.CreateHello(nonce);
        foreach ((string what, byte[] crl, string reason) in new[]
        {
            ("same-name root", sameName.PublishRevocationList(), "signature does not verify under the pinned root"),
            ("other root", otherName.PublishRevocationList(), "not by the pinned root"),
            ("modified signature", tampered, "not trustworthy"),
        })
        {
            AttestationResult result = _world.NewVerifier(revocationList: crl).VerifyHello(hello, nonce, VerificationPolicy.Default);
            Assert.That(result.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.Revocation }), $"{what}: {result}");
            Assert.That(result[AttestationCheck.Revocation].Detail, Does.Contain("the revocation list is not trustworthy").And.Contain(reason), what);
        }
    }

    [Test]
    public void MissingRevocationListFailsClosedUnlessTheDevelopmentOptOutIsSet()
    {
        AttestationVerifier verifier = _world.NewVerifier(revocationList: ReadOnlyMemory<byte>.Empty);
        using EmulatedDevice device = _world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        byte[] hello = device.CreateHello(nonce);
        AssertOnlyFailure(verifier.VerifyHello(hello, nonce, VerificationPolicy.Default), AttestationCheck.Revocation, "no revocation list: pass the manufacturer's CRL");
        AttestationResult optedOut = verifier.VerifyHello(hello, nonce, new VerificationPolicy { AllowMissingRevocationList = true });
        Assert.That(optedOut.PolicySatisfied, Is.True, optedOut.ToString());
        Assert.That(optedOut[AttestationCheck.Revocation].Detail, Does.Contain("NOT checked").And.Contain("development-only"));
    }

    [Test]
    public void AnOlderRevocationListCannotUnrevokeADevice()
    {
        using var world = new TrustedWorld();
        byte[] before = world.RevocationList;
        world.Manufacturer.RevokeDevice(world.Provisioning.IdentityCertificate);
        byte[] after = world.Manufacturer.PublishRevocationList();
        AttestationVerifier verifier = world.NewVerifier();
        Assert.That(verifier.TryUpdateRevocationList(after, out string installed), Is.True, installed);
        Assert.That(verifier.TryUpdateRevocationList(before, out string refused), Is.False);
        Assert.That(refused, Does.Contain("CRL #1").And.Contain("not newer than CRL #2"));
        using var rogue = Manufacturer.Create("Rogue");
        Assert.That(verifier.TryUpdateRevocationList(rogue.PublishRevocationList(), out string untrusted), Is.False, untrusted);
        Assert.That(verifier.TryUpdateRevocationList(world.Manufacturer.PublishRevocationList(DateTimeOffset.UtcNow.AddDays(-30), TimeSpan.FromDays(1)), out string expired), Is.False);
        Assert.That(expired, Does.Contain("expired"));

        using EmulatedDevice device = world.Device();
        byte[] nonce = AttestationVerifier.CreateNonce();
        AssertOnlyFailure(verifier.VerifyHello(device.CreateHello(nonce), nonce, VerificationPolicy.Default), AttestationCheck.Revocation, "was revoked");
    }

    [Test]
    public void TheManufacturersRevocationListParsesToItsEntries()
    {
        using var world = new TrustedWorld();
        using DeviceProvisioning second = world.Manufacturer.ProvisionDevice("NPU-0002");
        var at = new DateTimeOffset(2025, 6, 1, 0, 0, 0, TimeSpan.Zero);
        world.Manufacturer.RevokeDevice("NPU-0002", at, System.Security.Cryptography.X509Certificates.X509RevocationReason.CessationOfOperation);
        world.Manufacturer.RevokeDevice(second.IdentityCertificate, at);
        byte[] der = world.Manufacturer.PublishRevocationList();
        RevocationList crl = RevocationList.VerifySigned(der, world.Manufacturer.RootCertificate);
        Assert.That(crl.CrlNumber, Is.EqualTo(new System.Numerics.BigInteger(2)));
        Assert.That(crl.Entries, Has.Count.EqualTo(1), "revoking the same certificate twice lists it once");
        Assert.That(crl.Find(second.IdentityCertificate)!.RevocationDate, Is.EqualTo(at));
        Assert.That(crl.Find(second.IdentityCertificate)!.Reason, Is.EqualTo(System.Security.Cryptography.X509Certificates.X509RevocationReason.CessationOfOperation));
        Assert.That(crl.Find(world.Provisioning.IdentityCertificate), Is.Null);
        Assert.Throws<ArgumentException>(() => world.Manufacturer.RevokeDevice("NPU-9999"));
        using (var rogue = Manufacturer.Create("Rogue"))
        using (DeviceProvisioning foreign = rogue.ProvisionDevice("NPU-0001"))
        {
            Assert.Throws<ArgumentException>(() => world.Manufacturer.RevokeDevice(foreign.IdentityCertificate), "not issued by this manufacturer");
        }
        foreach (int length in new[] { 0, 1, 10, der.Length / 2, der.Length - 1 })
        {
            Assert.Throws<ProtocolFormatException>(() => RevocationList.Parse(der.AsSpan(0, length)));
        }
        Assert.Throws<ProtocolFormatException>(() => RevocationList.Parse([.. der, 0]));
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
