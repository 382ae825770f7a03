using AscendCC.Protocol;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Measurements;
using AscendCC.Protocol.Pki;

namespace AscendCC.Device.Security;

/// <summary>The runtime configuration requested at boot.</summary>
/// <param name="Mode">CC mode to boot into.</param>
/// <param name="DebugRequested">Whether debug paths are wanted; ignored (forced locked) in <see cref="CcMode.On"/>.</param>
internal readonly record struct BootConfiguration(CcMode Mode, bool DebugRequested = false)
{
    /// <summary>Debug state the boot ROM will lock in: CC On always locks debug; DevTools and Off honour the request.</summary>
    public DebugState EffectiveDebugState =>
        Mode == CcMode.On || !DebugRequested ? DebugState.Locked : DebugState.Unlocked;

    /// <summary>Canonical encoding extended into the Configuration register.</summary>
    public byte[] Encode() => [(byte)'C', (byte)'F', (byte)'G', 1, (byte)Mode, DebugRequested ? (byte)1 : (byte)0];
}

/// <summary>
/// The immutable first stage. It measures itself, verifies the firmware's CMS signature against the
/// fused manufacturer root, refuses SVNs below the anti-rollback fuses, and only then extends the
/// Firmware, Configuration, DebugState and CcMode registers. Registers can only be extended, so a later
/// stage cannot make the device look as if it booted something else.
/// </summary>
internal static class BootRom
{
    public static VerifiedFirmware Boot(DeviceFuses fuses, ReadOnlySpan<byte> signedFirmware, BootConfiguration configuration, MeasurementRegisters registers, DateTime now)
    {
        ArgumentNullException.ThrowIfNull(fuses);
        ArgumentNullException.ThrowIfNull(registers);
        if (!Enum.IsDefined(configuration.Mode))
        {
            throw new ArgumentOutOfRangeException(nameof(configuration), "Unknown CC mode.");
        }

        registers.Extend(MeasurementRegisterId.BootRom, KnownBootRom.Identity);

        VerifiedFirmware firmware;
        try
        {
            firmware = VerifiedFirmware.Verify(signedFirmware, fuses.ManufacturerRoot, now);
        }
        catch (CmsSignatureException ex)
        {
            throw new FirmwareRejectedException(FirmwareRejection.Signature, "Firmware rejected: " + ex.Message, ex);
        }
        catch (ProtocolFormatException ex)
        {
            throw new FirmwareRejectedException(FirmwareRejection.Format, "Firmware rejected: " + ex.Message, ex);
        }

        if (firmware.Image.SecurityVersion < fuses.AntiRollbackCounter)
        {
            throw new FirmwareRejectedException(
                FirmwareRejection.Rollback,
                $"Firmware rejected: SVN {firmware.Image.SecurityVersion} is below the anti-rollback counter {fuses.AntiRollbackCounter}. Install firmware with SVN {fuses.AntiRollbackCounter} or later.");
        }

        registers.ExtendDigest(MeasurementRegisterId.Firmware, firmware.EventDigest.Span);
        registers.Extend(MeasurementRegisterId.Configuration, configuration.Encode());
        registers.Extend(MeasurementRegisterId.DebugState, [(byte)configuration.EffectiveDebugState]);
        registers.Extend(MeasurementRegisterId.CcMode, [(byte)configuration.Mode]);
        return firmware;
    }
}
