namespace AscendCC.Runtime.Trusted.Verification;

/// <summary>
/// What a verifier requires beyond a genuine report. The default fails DevTools mode and unlocked
/// debug; relaxing either must be written out explicitly by the caller.
/// </summary>
public sealed class VerificationPolicy
{
    /// <summary>The default policy: CC On, debug locked, any SVN, any manufacturer-published firmware.</summary>
    public static VerificationPolicy Default { get; } = new();

    /// <summary>Lowest acceptable firmware SVN.</summary>
    public uint MinimumSvn { get; init; }

    /// <summary>Accept DevTools mode (for development only; never for production data).</summary>
    public bool AllowDevTools { get; init; }

    /// <summary>Accept unlocked debug (for development only).</summary>
    public bool AllowDebugUnlocked { get; init; }

    /// <summary>If not empty, the Firmware register must be one of these values in addition to matching the reference.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> AllowedFirmwareMeasurements { get; init; } = [];

    /// <summary>
    /// The graph measurement of the model the device must be running (from the model's signed manifest,
    /// or computed from its deployment); empty to not check. The Model register must equal a fresh
    /// register extended with exactly this measurement.
    /// </summary>
    public ReadOnlyMemory<byte> ExpectedModelMeasurement { get; init; }
}
