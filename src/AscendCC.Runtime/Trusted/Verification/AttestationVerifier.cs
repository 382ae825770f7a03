using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Measurements;
using AscendCC.Protocol.Pki;

namespace AscendCC.Runtime.Trusted.Verification;

/// <summary>
/// Verifies attestation reports fully offline against a pinned manufacturer root and the
/// manufacturer's signed reference measurements. Every check always runs and reports its own result,
/// so a failure names exactly what is wrong; the verdict is the conjunction of all checks.
/// </summary>
public sealed class AttestationVerifier
{
    private readonly X509Certificate2 _root;
    private readonly byte[] _signedReferences;
    private readonly TimeProvider _time;

    /// <summary>Creates a verifier.</summary>
    /// <param name="manufacturerRoot">The pinned manufacturer root certificate.</param>
    /// <param name="signedReferenceMeasurements">The manufacturer's CMS-signed reference measurements.</param>
    /// <param name="time">Clock for certificate validity (defaults to the system clock).</param>
    public AttestationVerifier(X509Certificate2 manufacturerRoot, ReadOnlyMemory<byte> signedReferenceMeasurements, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(manufacturerRoot);
        _root = X509CertificateLoader.LoadCertificate(manufacturerRoot.RawDataMemory.Span);
        _signedReferences = signedReferenceMeasurements.ToArray();
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The pinned root.</summary>
    public X509Certificate2 ManufacturerRoot => _root;

    /// <summary>Creates a fresh 32-byte nonce for a verification.</summary>
    public static byte[] CreateNonce() => RandomNumberGenerator.GetBytes(AttestationReport.NonceSize);

    /// <summary>Verifies an encoded <see cref="DeviceHello"/>: its report, and the binding of its key share to the report.</summary>
    public AttestationResult VerifyHello(ReadOnlySpan<byte> deviceHello, ReadOnlySpan<byte> expectedNonce, VerificationPolicy policy)
    {
        DeviceHello hello;
        try
        {
            hello = DeviceHello.Parse(deviceHello);
        }
        catch (ProtocolFormatException ex)
        {
            return Malformed(ex.Message);
        }
        return Verify(hello.Report.Span, expectedNonce, hello.KeyShare.Span, policy);
    }

    /// <summary>Verifies a report for a channel that will use <paramref name="channelKeyShare"/>.</summary>
    /// <param name="report">Encoded report.</param>
    /// <param name="expectedNonce">The nonce this verifier sent.</param>
    /// <param name="channelKeyShare">The device key share the channel will use.</param>
    /// <param name="policy">The policy.</param>
    public AttestationResult Verify(ReadOnlySpan<byte> report, ReadOnlySpan<byte> expectedNonce, ReadOnlySpan<byte> channelKeyShare, VerificationPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        AttestationReport parsed;
        try
        {
            parsed = AttestationReport.Parse(report);
        }
        catch (ProtocolFormatException ex)
        {
            return Malformed(ex.Message);
        }

        DateTime now = _time.GetUtcNow().UtcDateTime;
        var checks = new List<CheckResult>
        {
            new(AttestationCheck.Format, true, $"well-formed report, {report.Length} bytes"),
            CheckFreshness(parsed, expectedNonce),
        };
        CheckResult chain = CheckChain(parsed, now);
        checks.Add(chain);
        checks.Add(CheckSignature(parsed));
        checks.Add(CheckReferences(parsed, policy, now));
        checks.Add(CheckMode(parsed, policy));
        checks.Add(CheckDebug(parsed, policy));
        checks.Add(parsed.FirmwareSvn >= policy.MinimumSvn
            ? new(AttestationCheck.SvnMinimum, true, $"SVN {parsed.FirmwareSvn} ≥ minimum {policy.MinimumSvn}")
            : new(AttestationCheck.SvnMinimum, false, $"SVN {parsed.FirmwareSvn} is below the policy minimum {policy.MinimumSvn}: the firmware lacks security fixes; update it"));
        checks.Add(CheckKeyBinding(parsed, channelKeyShare));
        checks.Add(CheckModel(parsed, policy));
        return new AttestationResult(checks, parsed);
    }

    private static CheckResult CheckModel(AttestationReport report, VerificationPolicy policy)
    {
        if (policy.ExpectedModelMeasurement.IsEmpty)
        {
            return new(AttestationCheck.ModelMeasurement, true, "the policy names no model; the Model register was not checked");
        }
        byte[] expected = MeasurementRegisters.ExpectedAfterSingleExtend(policy.ExpectedModelMeasurement.Span);
        ReadOnlySpan<byte> actual = report.Measurements[MeasurementRegisterId.Model];
        return actual.SequenceEqual(expected)
            ? new(AttestationCheck.ModelMeasurement, true, "the device runs exactly the expected model graph")
            : new(AttestationCheck.ModelMeasurement, false,
                $"Model register {Convert.ToHexStringLower(actual)} is not the expected {Convert.ToHexStringLower(expected)}: the device has not loaded the expected model, or has loaded others too");
    }

    private static AttestationResult Malformed(string problem)
    {
        var checks = new List<CheckResult> { new(AttestationCheck.Format, false, problem) };
        foreach (AttestationCheck check in Enum.GetValues<AttestationCheck>().Skip(1))
        {
            checks.Add(new(check, false, "not evaluated: the report is malformed"));
        }
        return new AttestationResult(checks, null);
    }

    private static CheckResult CheckFreshness(AttestationReport report, ReadOnlySpan<byte> expectedNonce)
    {
        if (expectedNonce.Length != AttestationReport.NonceSize)
        {
            return new(AttestationCheck.Freshness, false, $"the expected nonce must be {AttestationReport.NonceSize} fresh random bytes");
        }
        return CryptographicOperations.FixedTimeEquals(report.Nonce.Span, expectedNonce)
            ? new(AttestationCheck.Freshness, true, "report echoes this verification's nonce")
            : new(AttestationCheck.Freshness, false, $"report nonce {Convert.ToHexStringLower(report.Nonce.Span)} differs from expected {Convert.ToHexStringLower(expectedNonce)}: the report is stale or replayed");
    }

    private CheckResult CheckChain(AttestationReport report, DateTime now)
    {
        if (!CertificateValidator.TryValidate(report.AttestationKeyCertificate, [report.IdentityCertificate], _root, ProtocolOids.AttestationKeyUsage, now, out string detail))
        {
            return new(AttestationCheck.CertificateChain, false, detail);
        }
        DiceTcbInfo tcb;
        try
        {
            tcb = DiceTcbInfo.FromCertificate(report.AttestationKeyCertificate);
        }
        catch (ProtocolFormatException ex)
        {
            return new(AttestationCheck.CertificateChain, false, ex.Message);
        }
        ReadOnlySpan<byte> firmware = report.Measurements[MeasurementRegisterId.Firmware];
        if (!tcb.FirmwareMeasurement.Span.SequenceEqual(firmware) || tcb.SecurityVersion != report.FirmwareSvn)
        {
            return new(AttestationCheck.CertificateChain, false,
                $"the attestation key was derived for firmware {Convert.ToHexStringLower(tcb.FirmwareMeasurement.Span)} (SVN {tcb.SecurityVersion}) but the report claims {Convert.ToHexStringLower(firmware)} (SVN {report.FirmwareSvn})");
        }
        return new(AttestationCheck.CertificateChain, true, detail + "; DICE layer matches the firmware measurement");
    }

    private static CheckResult CheckSignature(AttestationReport report)
    {
        using ECDsa? key = report.AttestationKeyCertificate.GetECDsaPublicKey();
        if (key is null)
        {
            return new(AttestationCheck.Signature, false, "the attestation-key certificate holds no ECDSA key");
        }
        return report.VerifySignature(key)
            ? new(AttestationCheck.Signature, true, "ECDSA P-384 signature verifies under the certified attestation key")
            : new(AttestationCheck.Signature, false, "the report signature does not verify: the report was modified or signed by another key");
    }

    private CheckResult CheckReferences(AttestationReport report, VerificationPolicy policy, DateTime now)
    {
        ReferenceMeasurements references;
        try
        {
            references = ReferenceMeasurements.VerifySigned(_signedReferences, _root, now);
        }
        catch (Exception ex) when (ex is CmsSignatureException or ProtocolFormatException)
        {
            return new(AttestationCheck.ReferenceMeasurements, false, "the reference measurements are not trustworthy: " + ex.Message);
        }
        ReferenceMeasurement? reference = references.Find(report.FirmwareVersion);
        if (reference is null)
        {
            return new(AttestationCheck.ReferenceMeasurements, false, $"the manufacturer publishes no reference for firmware version {report.FirmwareVersion}");
        }
        var problems = new List<string>();
        Compare(MeasurementRegisterId.BootRom, reference.BootRom.Span);
        Compare(MeasurementRegisterId.Firmware, reference.Firmware.Span);
        if (reference.SecurityVersion != report.FirmwareSvn)
        {
            problems.Add($"SVN: expected {reference.SecurityVersion}, actual {report.FirmwareSvn}");
        }
        if (policy.AllowedFirmwareMeasurements.Count > 0 && !policy.AllowedFirmwareMeasurements.Any(m => m.Span.SequenceEqual(report.Measurements[MeasurementRegisterId.Firmware])))
        {
            problems.Add($"Firmware register {report.Measurements.ToHex(MeasurementRegisterId.Firmware)} is not among the policy's allowed measurements");
        }
        return problems.Count == 0
            ? new(AttestationCheck.ReferenceMeasurements, true, $"BootRom and Firmware registers match the manufacturer reference for version {report.FirmwareVersion}")
            : new(AttestationCheck.ReferenceMeasurements, false, string.Join("; ", problems));

        void Compare(MeasurementRegisterId id, ReadOnlySpan<byte> expected)
        {
            if (!expected.SequenceEqual(report.Measurements[id]))
            {
                problems.Add($"{id} register: expected {Convert.ToHexStringLower(expected)} (reference for version {report.FirmwareVersion}), actual {report.Measurements.ToHex(id)}");
            }
        }
    }

    private static CheckResult CheckMode(AttestationReport report, VerificationPolicy policy)
    {
        if (!RegisterMatches(report, MeasurementRegisterId.CcMode, (byte)report.CcMode))
        {
            return new(AttestationCheck.CcMode, false, $"the CcMode register does not record mode {report.CcMode}: the claimed mode is not the measured one");
        }
        return report.CcMode switch
        {
            CcMode.On => new(AttestationCheck.CcMode, true, "CC mode On"),
            CcMode.DevTools when policy.AllowDevTools => new(AttestationCheck.CcMode, true, "CC mode DevTools, explicitly allowed by this (non-production) policy"),
            CcMode.DevTools => new(AttestationCheck.CcMode, false, "CC mode DevTools: debug tooling is available on this device; the default policy refuses it"),
            _ => new(AttestationCheck.CcMode, false, $"CC mode {report.CcMode}: the device does not protect data"),
        };
    }

    private static CheckResult CheckDebug(AttestationReport report, VerificationPolicy policy)
    {
        if (!RegisterMatches(report, MeasurementRegisterId.DebugState, (byte)report.DebugState))
        {
            return new(AttestationCheck.DebugLocked, false, $"the DebugState register does not record {report.DebugState}");
        }
        return report.DebugState == DebugState.Locked
            ? new(AttestationCheck.DebugLocked, true, "debug locked")
            : new(AttestationCheck.DebugLocked, policy.AllowDebugUnlocked, policy.AllowDebugUnlocked
                ? "debug unlocked, explicitly allowed by this (non-production) policy"
                : "debug unlocked: memory dumps and tracing could reveal data");
    }

    private static CheckResult CheckKeyBinding(AttestationReport report, ReadOnlySpan<byte> channelKeyShare)
    {
        if (!CryptographicOperations.FixedTimeEquals(report.KeyShare.Span, channelKeyShare))
        {
            return new(AttestationCheck.KeyBinding, false, "the channel key share is not the one attested in the report: a relay substituted it");
        }
        try
        {
            using ECDiffieHellman key = KeyShare.Import(channelKeyShare);
        }
        catch (ProtocolFormatException ex)
        {
            return new(AttestationCheck.KeyBinding, false, ex.Message);
        }
        return new(AttestationCheck.KeyBinding, true, "channel key share equals the attested ephemeral P-384 key; channel keys will be bound to this report's digest");
    }

    private static bool RegisterMatches(AttestationReport report, MeasurementRegisterId id, byte value) =>
        report.Measurements[id].SequenceEqual(MeasurementRegisters.ExpectedAfterSingleExtend(SHA384.HashData([value])));
}
