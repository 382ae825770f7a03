using System.Security.Cryptography;

namespace AscendCC.Protocol.Keys;

/// <summary>
/// Derivations from the device-unique secret that the manufacturer (at provisioning) and the device
/// (at every boot) must compute identically. The secret never leaves the device after provisioning;
/// the manufacturer certifies only the derived public key.
/// </summary>
public static class DeviceKeyDerivation
{
    /// <summary>Size of the device-unique secret.</summary>
    public const int DeviceSecretSize = 32;

    /// <summary>Derives the device identity key (DICE DeviceID) from the device secret.</summary>
    public static ECDsa DeriveIdentityKey(ReadOnlySpan<byte> deviceSecret)
    {
        if (deviceSecret.Length != DeviceSecretSize)
        {
            throw new ArgumentException("The device secret is 32 bytes.", nameof(deviceSecret));
        }
        return DeterministicEcKey.DeriveP384(deviceSecret, "AscendCC UDS"u8, "AscendCC device identity key v1");
    }
}
