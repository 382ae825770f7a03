using System.Security.Cryptography;

namespace AscendCC.Protocol.Channels;

/// <summary>
/// Encodes ECDH P-384 public keys as uncompressed points (0x04 || X || Y, 97 bytes) and imports them
/// with on-curve validation, so an invalid-curve point from the host is rejected before key agreement.
/// </summary>
public static class KeyShare
{
    /// <summary>Size of an encoded key share.</summary>
    public const int Size = 97;

    private const int CoordinateSize = 48;

    /// <summary>Encodes the public part of <paramref name="key"/>.</summary>
    public static byte[] Export(ECDiffieHellman key)
    {
        ArgumentNullException.ThrowIfNull(key);
        ECParameters p = key.ExportParameters(includePrivateParameters: false);
        if (p.Q.X is null || p.Q.Y is null || p.Q.X.Length != CoordinateSize || p.Q.Y.Length != CoordinateSize)
        {
            throw new ArgumentException("Only P-384 keys can be exported as key shares.", nameof(key));
        }
        byte[] share = new byte[Size];
        share[0] = 0x04;
        p.Q.X.CopyTo(share, 1);
        p.Q.Y.CopyTo(share, 1 + CoordinateSize);
        return share;
    }

    /// <summary>Imports an encoded key share as a P-384 public key.</summary>
    /// <exception cref="ProtocolFormatException">The bytes are not an uncompressed point on P-384.</exception>
    public static ECDiffieHellman Import(ReadOnlySpan<byte> share)
    {
        if (share.Length != Size || share[0] != 0x04)
        {
            throw new ProtocolFormatException("key share", "point", "is not a 97-byte uncompressed P-384 point");
        }
        var parameters = new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP384,
            Q = new ECPoint { X = share.Slice(1, CoordinateSize).ToArray(), Y = share.Slice(1 + CoordinateSize, CoordinateSize).ToArray() },
        };
        try
        {
            parameters.Validate();
            return ECDiffieHellman.Create(parameters);
        }
        catch (CryptographicException ex)
        {
            throw new ProtocolFormatException("Malformed key share: the point is not on P-384.", ex);
        }
    }
}
