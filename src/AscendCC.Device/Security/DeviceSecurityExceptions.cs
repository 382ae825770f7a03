namespace AscendCC.Device.Security;

/// <summary>Why the boot ROM refused a firmware image.</summary>
internal enum FirmwareRejection
{
    /// <summary>Not signed by a firmware-signing certificate under the fused root, or modified.</summary>
    Signature,

    /// <summary>Signed content is not a valid firmware image.</summary>
    Format,

    /// <summary>SVN below the fused anti-rollback counter.</summary>
    Rollback,
}

/// <summary>The boot ROM refused the firmware; the device stays unbooted and cannot attest.</summary>
internal sealed class FirmwareRejectedException : Exception
{
    public FirmwareRejectedException(FirmwareRejection reason, string message, Exception? inner = null)
        : base(message, inner)
    {
        Reason = reason;
    }

    public FirmwareRejection Reason { get; }
}

/// <summary>A CC-mode change was requested without a reset; leaving or entering CC mode requires a reset with scrub.</summary>
internal sealed class ModeChangeRequiresResetException : InvalidOperationException
{
    public ModeChangeRequiresResetException(string message)
        : base(message)
    {
    }
}

/// <summary>An operation was refused because of the device's security state (not booted, wrong mode, wrong session role, policy not met).</summary>
internal sealed class DeviceSecurityException : InvalidOperationException
{
    public DeviceSecurityException(string message)
        : base(message)
    {
    }
}
