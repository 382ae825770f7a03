namespace AscendCC.Runtime.Trusted.Verification;

/// <summary>
/// What a verifier requires beyond a genuine report. The default is the production policy and fails
/// closed: CC mode On, debug locked, a firmware SVN at least the manufacturer's current TCB recovery
/// minimum (so the verifier must hold the manufacturer's signed TCB recovery statement, or the caller
/// must set <see cref="MinimumSvn"/>), and a device identity that the manufacturer's current signed
/// revocation list does not revoke (so the verifier must hold that CRL). Relaxing any of these must be
/// written out explicitly by the caller.
/// </summary>
public sealed class VerificationPolicy
{
    /// <summary>
    /// The default policy: CC On, debug locked, any manufacturer-published firmware whose SVN is at least
    /// the minimum of the verifier's TCB recovery statement, device not revoked by a current manufacturer CRL.
    /// A verifier without a TCB recovery statement or without a CRL fails it (checks
    /// <see cref="AttestationCheck.TcbRecovery"/>, <see cref="AttestationCheck.SvnMinimum"/>, <see cref="AttestationCheck.Revocation"/>).
    /// </summary>
    public static VerificationPolicy Default { get; } = new();

    /// <summary>
    /// An explicit lowest acceptable firmware SVN, or null (the default) to take the minimum from the
    /// verifier's TCB recovery statement alone. When both exist the higher one applies. When the verifier
    /// holds no TCB recovery statement, an explicit value stands in for it (the verifier then never learns
    /// of newer security fixes); with neither, verification fails closed.
    /// </summary>
    public uint? MinimumSvn { get; init; }

    /// <summary>Accept DevTools mode (for development only; never for production data).</summary>
    public bool AllowDevTools { get; init; }

    /// <summary>Accept unlocked debug (for development only).</summary>
    public bool AllowDebugUnlocked { get; init; }

    /// <summary>
    /// Pass the <see cref="AttestationCheck.Revocation"/> check when the verifier holds no revocation list
    /// at all (for development only: a revoked device, e.g. one whose secret leaked, is then accepted).
    /// It does not excuse a list that is present but expired, not yet valid, malformed or badly signed.
    /// </summary>
    public bool AllowMissingRevocationList { get; init; }

    /// <summary>If not empty, the Firmware register must be one of these values in addition to matching the reference.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> AllowedFirmwareMeasurements { get; init; } = [];

    /// <summary>
    /// The graph measurement of the model the device must be running (from the model's signed manifest,
    /// or computed from its deployment); empty to not check. The Model register must equal a fresh
    /// register extended with exactly this measurement.
    /// </summary>
    public ReadOnlyMemory<byte> ExpectedModelMeasurement { get; init; }
}
