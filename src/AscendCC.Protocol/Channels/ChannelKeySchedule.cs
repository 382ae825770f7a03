using System.Security.Cryptography;

namespace AscendCC.Protocol.Channels;

/// <summary>
/// The channel key schedule. transcript = SHA-384("AscendCC channel v1" || role || report digest ||
/// device share || party share); PRK = HKDF-Extract(salt = transcript, IKM = ECDH secret); each
/// direction's traffic secret = HKDF-Expand(PRK, label). Because the report digest is in the
/// transcript, keys exist only for the report the party verified (key binding); because the role and
/// fresh party share are too, every party's session has independent keys.
/// </summary>
internal static class ChannelKeySchedule
{
    public const int SecretSize = SHA384.HashSizeInBytes;

    public static byte[] Transcript(ChannelRole role, ReadOnlySpan<byte> reportDigest, ReadOnlySpan<byte> deviceShare, ReadOnlySpan<byte> partyShare)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA384);
        hash.AppendData("AscendCC channel v1"u8);
        hash.AppendData([(byte)role]);
        hash.AppendData(reportDigest);
        hash.AppendData(deviceShare);
        hash.AppendData(partyShare);
        return hash.GetHashAndReset();
    }

    /// <summary>Derives (device→party, party→device) traffic secrets from the ECDH agreement.</summary>
    public static void Derive(ECDiffieHellman own, ECDiffieHellman peerPublic, ReadOnlySpan<byte> transcript, Span<byte> deviceToParty, Span<byte> partyToDevice)
    {
        byte[] shared = own.DeriveRawSecretAgreement(peerPublic.PublicKey);
        Span<byte> prk = stackalloc byte[SecretSize];
        try
        {
            HKDF.Extract(HashAlgorithmName.SHA384, shared, transcript, prk);
            HKDF.Expand(HashAlgorithmName.SHA384, prk, deviceToParty, "AscendCC channel v1 device to party"u8);
            HKDF.Expand(HashAlgorithmName.SHA384, prk, partyToDevice, "AscendCC channel v1 party to device"u8);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
            CryptographicOperations.ZeroMemory(prk);
        }
    }

    /// <summary>The key-confirmation payload the device sends first: proves it derived the same keys from the same transcript.</summary>
    public static byte[] Confirmation(ReadOnlySpan<byte> transcript)
    {
        byte[] payload = new byte[8 + transcript.Length];
        "ACCFIN01"u8.CopyTo(payload);
        transcript.CopyTo(payload.AsSpan(8));
        return payload;
    }
}
