using System.Globalization;
using System.Numerics;
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
/// Verifies attestation reports fully offline against a pinned manufacturer root and the manufacturer's
/// signed publications: reference measurements, the TCB recovery statement (current minimum firmware
/// SVN) and the revocation list. Every check always runs and reports its own result, so a failure names
/// exactly what is wrong; the verdict is the conjunction of all checks. The publications are verified
/// on every verification (against the verifier's clock); <see cref="TryUpdateTcbStatement"/> and
/// <see cref="TryUpdateRevocationList"/> install newer ones and refuse to go back to older ones.
/// </summary>
public sealed class AttestationVerifier
{
    private readonly X509Certificate2 _root;
    private readonly byte[] _signedReferences;
    private readonly TimeProvider _time;
    private readonly Lock _updates = new();
    private Publications _publications;
    private ulong _highestTcbSequence;
    private BigInteger _highestCrlNumber = BigInteger.MinusOne;

    /// <summary>
    /// Creates a verifier without a TCB recovery statement or revocation list. Under the default policy it
    /// fails every report (TcbRecovery, SvnMinimum, Revocation) until both are installed with
    /// <see cref="TryUpdateTcbStatement"/> and <see cref="TryUpdateRevocationList"/>, or the policy opts out
    /// explicitly (<see cref="VerificationPolicy.MinimumSvn"/>, <see cref="VerificationPolicy.AllowMissingRevocationList"/>).
    /// </summary>
    /// <param name="manufacturerRoot">The pinned manufacturer root certificate.</param>
    /// <param name="signedReferenceMeasurements">The manufacturer's CMS-signed reference measurements.</param>
    /// <param name="time">Clock for certificate and CRL validity (defaults to the system clock).</param>
    public AttestationVerifier(X509Certificate2 manufacturerRoot, ReadOnlyMemory<byte> signedReferenceMeasurements, TimeProvider? time = null)
        : this(manufacturerRoot, signedReferenceMeasurements, ReadOnlyMemory<byte>.Empty, ReadOnlyMemory<byte>.Empty, time)
    {
    }

    /// <summary>Creates a verifier with all of the manufacturer's publications (the production setup).</summary>
    /// <param name="manufacturerRoot">The pinned manufacturer root certificate.</param>
    /// <param name="signedReferenceMeasurements">The manufacturer's CMS-signed reference measurements.</param>
    /// <param name="signedTcbStatement">The manufacturer's CMS-signed TCB recovery statement (<see cref="Manufacturing.Manufacturer.PublishTcbRecoveryStatement"/>), or empty for none.</param>
    /// <param name="revocationList">The manufacturer's DER-encoded CRL (<see cref="Manufacturing.Manufacturer.PublishRevocationList"/>), or empty for none.</param>
    /// <param name="time">Clock for certificate and CRL validity (defaults to the system clock).</param>
    public AttestationVerifier(X509Certificate2 manufacturerRoot, ReadOnlyMemory<byte> signedReferenceMeasurements, ReadOnlyMemory<byte> signedTcbStatement, ReadOnlyMemory<byte> revocationList, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(manufacturerRoot);
        _root = X509CertificateLoader.LoadCertificate(manufacturerRoot.RawDataMemory.Span);
        _signedReferences = signedReferenceMeasurements.ToArray();
        _time = time ?? TimeProvider.System;
        _publications = new Publications(
            signedTcbStatement.IsEmpty ? null : signedTcbStatement.ToArray(),
            revocationList.IsEmpty ? null : revocationList.ToArray());
    }

    /// <summary>The pinned root.</summary>
    public X509Certificate2 ManufacturerRoot => _root;

    /// <summary>Creates a fresh 32-byte nonce for a verification.</summary>
    public static byte[] CreateNonce() => RandomNumberGenerator.GetBytes(AttestationReport.NonceSize);

    /// <summary>
    /// Installs a newer TCB recovery statement. It must verify under the pinned root, and its sequence must
    /// be higher than every statement this verifier has held: an older statement (which a relay could
    /// offer to lower the minimum SVN again) is refused and the current one kept. The same statement
    /// again is accepted as already current.
    /// </summary>
    /// <param name="signedStatement">The manufacturer's CMS-signed statement.</param>
    /// <param name="detail">What was installed, or why the statement was refused.</param>
    /// <returns>Whether the verifier now holds this statement.</returns>
    public bool TryUpdateTcbStatement(ReadOnlySpan<byte> signedStatement, out string detail)
    {
        DateTime now = _time.GetUtcNow().UtcDateTime;
        TcbRecoveryStatement candidate;
        try
        {
            candidate = TcbRecoveryStatement.VerifySigned(signedStatement, _root, now);
        }
        catch (Exception ex) when (ex is CmsSignatureException or ProtocolFormatException)
        {
            detail = "refused: the TCB recovery statement is not trustworthy: " + ex.Message;
            return false;
        }
        lock (_updates)
        {
            Publications current = _publications;
            TcbRecoveryStatement? held = TryVerifyTcbStatement(current.TcbStatement, now);
            ulong highest = Math.Max(_highestTcbSequence, held?.Sequence ?? 0);
            if (held is not null && candidate.Sequence == held.Sequence && candidate.Encode().AsSpan().SequenceEqual(held.Encode()))
            {
                detail = $"already current: {held}";
                return true;
            }
            if (candidate.Sequence <= highest)
            {
                detail = $"refused: {candidate} is not newer than statement #{highest}, which this verifier already holds or held; a newer statement supersedes an older one, never the reverse";
                return false;
            }
            _publications = current with { TcbStatement = signedStatement.ToArray() };
            _highestTcbSequence = candidate.Sequence;
            detail = $"installed {candidate}";
            return true;
        }
    }

    /// <summary>
    /// Installs a newer revocation list. It must be signed by the pinned root, current on the verifier's
    /// clock, and its CRL number higher than every list this verifier has held: an older list (which a
    /// relay could offer to un-revoke a device) is refused and the current one kept.
    /// </summary>
    /// <param name="revocationList">The manufacturer's DER-encoded CRL.</param>
    /// <param name="detail">What was installed, or why the list was refused.</param>
    /// <returns>Whether the verifier now holds this list.</returns>
    public bool TryUpdateRevocationList(ReadOnlySpan<byte> revocationList, out string detail)
    {
        DateTimeOffset now = _time.GetUtcNow();
        RevocationList candidate;
        try
        {
            candidate = RevocationList.VerifySigned(revocationList, _root);
        }
        catch (Exception ex) when (ex is RevocationListException or ProtocolFormatException)
        {
            detail = "refused: the revocation list is not trustworthy: " + ex.Message;
            return false;
        }
        string? stale = Staleness(candidate, now);
        if (stale is not null)
        {
            detail = "refused: " + stale;
            return false;
        }
        lock (_updates)
        {
            Publications current = _publications;
            if (current.RevocationList is { } held && held.AsSpan().SequenceEqual(revocationList))
            {
                detail = $"already current: {candidate}";
                return true;
            }
            BigInteger highest = BigInteger.Max(_highestCrlNumber, TryVerifyRevocationList(current.RevocationList)?.CrlNumber ?? BigInteger.MinusOne);
            if (candidate.CrlNumber <= highest)
            {
                detail = $"refused: {candidate} is not newer than CRL #{highest}, which this verifier already holds or held; an older list could un-revoke a device";
                return false;
            }
            _publications = current with { RevocationList = revocationList.ToArray() };
            _highestCrlNumber = candidate.CrlNumber;
            detail = $"installed {candidate}";
            return true;
        }
    }

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

        DateTimeOffset clock = _time.GetUtcNow();
        DateTime now = clock.UtcDateTime;
        Publications publications = Volatile.Read(ref _publications);
        var checks = new List<CheckResult>
        {
            new(AttestationCheck.Format, true, $"well-formed report, {report.Length} bytes"),
            CheckFreshness(parsed, expectedNonce),
            CheckChain(parsed, now),
            CheckRevocation(parsed, publications.RevocationList, policy, clock),
            CheckSignature(parsed),
            CheckReferences(parsed, policy, now),
            CheckMode(parsed, policy),
            CheckDebug(parsed, policy),
        };
        (CheckResult tcbCheck, TcbRecoveryStatement? statement) = CheckTcbRecovery(publications.TcbStatement, policy, now);
        checks.Add(tcbCheck);
        checks.Add(CheckSvn(parsed, statement, tcbCheck, policy));
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

    private (CheckResult Check, TcbRecoveryStatement? Statement) CheckTcbRecovery(byte[]? signedStatement, VerificationPolicy policy, DateTime now)
    {
        if (signedStatement is null)
        {
            return policy.MinimumSvn is { } explicitMinimum
                ? (new(AttestationCheck.TcbRecovery, true, $"no TCB recovery statement; the policy's explicit MinimumSvn {explicitMinimum} stands in for it (this verifier will not learn of newer security fixes)"), null)
                : (new(AttestationCheck.TcbRecovery, false, "no TCB statement: pass one (Manufacturer.PublishTcbRecoveryStatement, to the verifier's constructor or TryUpdateTcbStatement) or set an explicit MinimumSvn in the policy"), null);
        }
        try
        {
            TcbRecoveryStatement statement = TcbRecoveryStatement.VerifySigned(signedStatement, _root, now);
            return (new(AttestationCheck.TcbRecovery, true, $"{statement}; signed by the manufacturer's firmware-signing certificate under the pinned root; it imposes minimum firmware SVN {statement.MinimumSvn}"), statement);
        }
        catch (Exception ex) when (ex is CmsSignatureException or ProtocolFormatException)
        {
            return (new(AttestationCheck.TcbRecovery, false, "the TCB recovery statement is not trustworthy: " + ex.Message), null);
        }
    }

    private static CheckResult CheckSvn(AttestationReport report, TcbRecoveryStatement? statement, CheckResult tcbCheck, VerificationPolicy policy)
    {
        uint svn = report.FirmwareSvn;
        string noStatement = tcbCheck.Passed ? "the verifier holds no TCB recovery statement" : "the verifier holds no trustworthy TCB recovery statement";
        uint minimum;
        string source;
        if (statement is not null && (policy.MinimumSvn is null || policy.MinimumSvn <= statement.MinimumSvn))
        {
            minimum = statement.MinimumSvn;
            source = $"the manufacturer's TCB recovery statement #{statement.Sequence} (issued {statement.IssuedAt.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)})"
                + (policy.MinimumSvn is { } lower ? $"; the policy's explicit MinimumSvn {lower} is not higher" : "");
        }
        else if (statement is not null)
        {
            minimum = policy.MinimumSvn!.Value;
            source = $"the policy's explicit MinimumSvn, higher than the {statement.MinimumSvn} of the manufacturer's TCB recovery statement #{statement.Sequence}";
        }
        else if (policy.MinimumSvn is { } explicitMinimum)
        {
            minimum = explicitMinimum;
            source = $"the policy's explicit MinimumSvn ({noStatement})";
        }
        else
        {
            return new(AttestationCheck.SvnMinimum, false, $"SVN {svn} not compared: no minimum SVN is known, because {noStatement} and the policy sets no explicit MinimumSvn (see TcbRecovery)");
        }
        return svn >= minimum
            ? new(AttestationCheck.SvnMinimum, true, $"SVN {svn} ≥ minimum {minimum} from {source}")
            : new(AttestationCheck.SvnMinimum, false, $"SVN {svn} is below the minimum {minimum} from {source}: the firmware lacks security fixes; update it");
    }

    private CheckResult CheckRevocation(AttestationReport report, byte[]? revocationList, VerificationPolicy policy, DateTimeOffset now)
    {
        if (revocationList is null)
        {
            return policy.AllowMissingRevocationList
                ? new(AttestationCheck.Revocation, true, "no revocation list; revocation NOT checked, explicitly allowed by this (development-only) policy")
                : new(AttestationCheck.Revocation, false, "no revocation list: pass the manufacturer's CRL (Manufacturer.PublishRevocationList, to the verifier's constructor or TryUpdateRevocationList) or, for development only, set AllowMissingRevocationList in the policy");
        }
        RevocationList crl;
        try
        {
            crl = RevocationList.VerifySigned(revocationList, _root);
        }
        catch (Exception ex) when (ex is RevocationListException or ProtocolFormatException)
        {
            return new(AttestationCheck.Revocation, false, "the revocation list is not trustworthy: " + ex.Message);
        }
        if (Staleness(crl, now) is { } stale)
        {
            return new(AttestationCheck.Revocation, false, stale);
        }

        X509Certificate2[] chain = [report.IdentityCertificate, report.AttestationKeyCertificate];
        X509Certificate2[] covered = chain.Where(crl.Covers).ToArray();
        if (covered.Length == 0)
        {
            return new(AttestationCheck.Revocation, false, $"no certificate of the report's chain was issued by the revocation list's issuer '{crl.Issuer.Name}': revocation status unknown");
        }
        var revoked = new List<string>();
        foreach (X509Certificate2 certificate in covered)
        {
            if (crl.Find(certificate) is { } entry)
            {
                revoked.Add($"'{certificate.Subject}' serial {entry.SerialHex} was revoked on {entry.RevocationDate.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)}"
                    + (entry.Reason is { } reason ? $" (reason {reason})" : ""));
            }
        }
        string checkedSerials = string.Join(", ", covered.Select(c => $"'{c.Subject}' serial {Convert.ToHexStringLower(c.SerialNumberBytes.Span)}"));
        return revoked.Count > 0
            ? new(AttestationCheck.Revocation, false, string.Join("; ", revoked) + $" ({crl}): the manufacturer no longer vouches for this device")
            : new(AttestationCheck.Revocation, true, $"{checkedSerials} not revoked ({crl}); the attestation-key certificate is issued by the device identity, so revoking the identity revokes it too");
    }

    private static string? Staleness(RevocationList crl, DateTimeOffset now)
    {
        if (now < crl.ThisUpdate)
        {
            return $"the revocation list is not yet valid: thisUpdate {crl.ThisUpdate.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)} is after the verifier's clock {now.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)} ({crl})";
        }
        if (now > crl.NextUpdate)
        {
            return $"the revocation list expired: nextUpdate {crl.NextUpdate.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)} is before the verifier's clock {now.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)} ({crl}); get a current CRL from the manufacturer";
        }
        return null;
    }

    private TcbRecoveryStatement? TryVerifyTcbStatement(byte[]? signedStatement, DateTime now)
    {
        if (signedStatement is null)
        {
            return null;
        }
        try
        {
            return TcbRecoveryStatement.VerifySigned(signedStatement, _root, now);
        }
        catch (Exception ex) when (ex is CmsSignatureException or ProtocolFormatException)
        {
            return null;
        }
    }

    private RevocationList? TryVerifyRevocationList(byte[]? revocationList)
    {
        if (revocationList is null)
        {
            return null;
        }
        try
        {
            return RevocationList.VerifySigned(revocationList, _root);
        }
        catch (Exception ex) when (ex is RevocationListException or ProtocolFormatException)
        {
            return null;
        }
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

    private sealed record Publications(byte[]? TcbStatement, byte[]? RevocationList);

    private static bool RegisterMatches(AttestationReport report, MeasurementRegisterId id, byte value) =>
        report.Measurements[id].SequenceEqual(MeasurementRegisters.ExpectedAfterSingleExtend(SHA384.HashData([value])));
}
