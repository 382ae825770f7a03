namespace AscendCC.Runtime.Trusted.Verification;

/// <summary>The named checks a verification runs, in order.</summary>
public enum AttestationCheck
{
    /// <summary>The report parses under the strict format.</summary>
    Format,

    /// <summary>The report echoes the verifier's fresh nonce (no stale or replayed report).</summary>
    Freshness,

    /// <summary>Attestation-key certificate ← device identity certificate ← pinned manufacturer root, with DICE info matching the report.</summary>
    CertificateChain,

    /// <summary>
    /// The manufacturer's revocation list (CRL) is present, signed by the pinned root and current on the
    /// verifier's clock (thisUpdate ≤ now ≤ nextUpdate), and revokes no certificate of the report's chain
    /// that the root issued (the device identity certificate). Fails closed without a CRL unless the
    /// policy sets <see cref="VerificationPolicy.AllowMissingRevocationList"/>.
    /// </summary>
    Revocation,

    /// <summary>The report's signature verifies under the certified attestation key.</summary>
    Signature,

    /// <summary>Boot ROM and firmware measurements equal the manufacturer-signed reference values.</summary>
    ReferenceMeasurements,

    /// <summary>CC mode is On (DevTools only if the policy explicitly allows it) and matches its register.</summary>
    CcMode,

    /// <summary>Debug is locked and matches its register.</summary>
    DebugLocked,

    /// <summary>
    /// The manufacturer's TCB recovery statement (the current minimum firmware SVN) is present and signed
    /// under the pinned root; reports its sequence, date and minimum. Without one, passes only if the
    /// policy sets an explicit <see cref="VerificationPolicy.MinimumSvn"/>.
    /// </summary>
    TcbRecovery,

    /// <summary>Firmware SVN is at least the effective minimum: the higher of the TCB recovery statement's and the policy's explicit one; the detail says which.</summary>
    SvnMinimum,

    /// <summary>The channel key share is exactly the one attested in the report.</summary>
    KeyBinding,

    /// <summary>The Model register shows exactly the expected confidential model graph (only when the policy names one).</summary>
    ModelMeasurement,
}

/// <summary>The outcome of one named check.</summary>
/// <param name="Check">Which check.</param>
/// <param name="Passed">Whether it passed.</param>
/// <param name="Detail">Human-readable explanation (expected vs actual on failure).</param>
public sealed record CheckResult(AttestationCheck Check, bool Passed, string Detail)
{
    /// <inheritdoc />
    public override string ToString() => $"[{(Passed ? "PASS" : "FAIL")}] {Check}: {Detail}";
}
