using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol.Keys;

namespace AscendCC.Device.Security;

/// <summary>
/// The one-time-programmable state the manufacturer burns into the NPU: the device-unique secret,
/// the identity certificate for the key derived from it, the manufacturer root the boot ROM trusts,
/// and the anti-rollback counter, which can only move up.
/// </summary>
internal sealed class DeviceFuses : IDisposable
{
    private readonly byte[] _deviceSecret = GC.AllocateArray<byte>(DeviceKeyDerivation.DeviceSecretSize, pinned: true);
    private bool _disposed;

    /// <summary>Burns the fuses.</summary>
    /// <param name="deviceSecret">32-byte device-unique secret.</param>
    /// <param name="identityCertificate">Manufacturer-issued certificate of the identity key derived from the secret.</param>
    /// <param name="manufacturerRoot">The root the boot ROM verifies firmware against.</param>
    /// <param name="antiRollbackCounter">Lowest firmware SVN the device will boot.</param>
    public DeviceFuses(ReadOnlySpan<byte> deviceSecret, X509Certificate2 identityCertificate, X509Certificate2 manufacturerRoot, uint antiRollbackCounter = 0)
    {
        ArgumentNullException.ThrowIfNull(identityCertificate);
        ArgumentNullException.ThrowIfNull(manufacturerRoot);
        if (deviceSecret.Length != DeviceKeyDerivation.DeviceSecretSize)
        {
            throw new ArgumentException("The device secret is 32 bytes.", nameof(deviceSecret));
        }
        deviceSecret.CopyTo(_deviceSecret);

        // Only the public parts of certificates are fused; a certificate object holding a private key
        // would be a second copy of key material.
        IdentityCertificate = X509CertificateLoader.LoadCertificate(identityCertificate.RawDataMemory.Span);
        ManufacturerRoot = X509CertificateLoader.LoadCertificate(manufacturerRoot.RawDataMemory.Span);
        AntiRollbackCounter = antiRollbackCounter;
    }

    /// <summary>Identity certificate (public).</summary>
    public X509Certificate2 IdentityCertificate { get; }

    /// <summary>The pinned manufacturer root.</summary>
    public X509Certificate2 ManufacturerRoot { get; }

    /// <summary>Lowest bootable SVN.</summary>
    public uint AntiRollbackCounter { get; private set; }

    /// <summary>The device secret, readable only inside the root of trust.</summary>
    internal ReadOnlySpan<byte> DeviceSecret
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _deviceSecret;
        }
    }

    /// <summary>Blows rollback fuses up to <paramref name="securityVersion"/>; a lower value is ignored because fuses cannot be un-blown.</summary>
    public void AdvanceAntiRollbackCounter(uint securityVersion)
    {
        if (securityVersion > AntiRollbackCounter)
        {
            AntiRollbackCounter = securityVersion;
        }
    }

    /// <summary>Zeroes the secret (simulation teardown).</summary>
    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_deviceSecret);
        IdentityCertificate.Dispose();
        ManufacturerRoot.Dispose();
        _disposed = true;
    }
}
