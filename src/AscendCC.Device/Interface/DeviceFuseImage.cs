using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AscendCC.Device;

/// <summary>
/// What the manufacturer burns into an NPU's fuses: the device-unique secret, the device identity
/// certificate, the manufacturer root it trusts, and the anti-rollback counter. Given once, when the
/// simulated chip is made; the device keeps its own copy and the caller should dispose this one.
/// </summary>
public sealed class DeviceFuseImage : IDisposable
{
    private readonly byte[] _secret;

    /// <summary>Creates a fuse image.</summary>
    /// <param name="deviceSecret">The device-unique secret (at least 32 bytes).</param>
    /// <param name="identityCertificate">DER of the device identity certificate.</param>
    /// <param name="manufacturerRoot">DER of the manufacturer root certificate.</param>
    /// <param name="antiRollbackCounter">Lowest firmware security version the boot ROM accepts.</param>
    public DeviceFuseImage(ReadOnlySpan<byte> deviceSecret, ReadOnlySpan<byte> identityCertificate, ReadOnlySpan<byte> manufacturerRoot, uint antiRollbackCounter = 0)
    {
        if (deviceSecret.Length < 32)
        {
            throw new ArgumentException("The device secret must be at least 32 bytes.", nameof(deviceSecret));
        }
        _secret = GC.AllocateArray<byte>(deviceSecret.Length, pinned: true);
        deviceSecret.CopyTo(_secret);
        IdentityCertificate = identityCertificate.ToArray();
        ManufacturerRoot = manufacturerRoot.ToArray();
        AntiRollbackCounter = antiRollbackCounter;
    }

    /// <summary>DER of the device identity certificate.</summary>
    public ReadOnlyMemory<byte> IdentityCertificate { get; }

    /// <summary>DER of the manufacturer root certificate.</summary>
    public ReadOnlyMemory<byte> ManufacturerRoot { get; }

    /// <summary>Lowest firmware security version the boot ROM accepts.</summary>
    public uint AntiRollbackCounter { get; }

    internal ReadOnlySpan<byte> Secret => _secret;

    internal Security.DeviceFuses ToFuses() => new(
        _secret,
        X509CertificateLoader.LoadCertificate(IdentityCertificate.Span),
        X509CertificateLoader.LoadCertificate(ManufacturerRoot.Span),
        AntiRollbackCounter);

    /// <summary>Zeroes the secret.</summary>
    public void Dispose() => CryptographicOperations.ZeroMemory(_secret);
}

/// <summary>What the device boots: a signed firmware image and the runtime configuration registers.</summary>
/// <param name="SignedFirmware">The CMS-signed firmware image.</param>
/// <param name="Mode">Confidential-computing mode.</param>
/// <param name="DebugRequested">Ask for debug features (granted only outside CC mode On, and visible in attestation).</param>
/// <param name="CommitSecurityVersion">
/// A security update: once this firmware has passed the boot ROM, advance the anti-rollback fuses to
/// its security version, so no image with a lower SVN boots again. Fuses only move up; the worst a
/// host can do with this is refuse itself old firmware.
/// </param>
public sealed record DeviceBootOptions(ReadOnlyMemory<byte> SignedFirmware, Protocol.Attestation.CcMode Mode, bool DebugRequested = false, bool CommitSecurityVersion = false);
