namespace AscendCC.Protocol.Pki;

/// <summary>
/// Object identifiers used by the protocol. They live under a UUID arc (ITU-T X.667, <c>2.25.{uuid}</c>),
/// which needs no registration and cannot collide with anyone else's identifiers.
/// </summary>
public static class ProtocolOids
{
    private const string Arc = "2.25.107901543222868407942932342098493700269";

    /// <summary>CMS content type of a firmware image.</summary>
    public const string FirmwareImageContent = Arc + ".1";

    /// <summary>CMS content type of a reference-measurement list.</summary>
    public const string ReferenceMeasurementsContent = Arc + ".2";

    /// <summary>Extended key usage the manufacturer's firmware-signing certificate must carry.</summary>
    public const string FirmwareSigningUsage = Arc + ".3";

    /// <summary>Certificate extension in an attestation-key certificate: the firmware measurement and SVN the key was derived for (DICE TCB info).</summary>
    public const string DiceTcbInfoExtension = Arc + ".4";

    /// <summary>Extended key usage of an attestation-key certificate.</summary>
    public const string AttestationKeyUsage = Arc + ".5";

    /// <summary>CMS content type of a TCB recovery statement (the manufacturer's current minimum firmware SVN).</summary>
    public const string TcbRecoveryStatementContent = Arc + ".6";
}
