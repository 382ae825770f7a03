using System.Security.Cryptography;
using System.Text;

namespace AscendCC.Protocol.Keys;

/// <summary>
/// Derives an ECDSA P-384 key deterministically from secret input keying material: HKDF-SHA384
/// produces 48-byte candidates and the first one in [1, n-1] becomes the private scalar (the
/// "testing candidates" method of FIPS 186-5 A.2.2, so the scalar is unbiased). This is how a root of
/// trust turns a fused secret into the same key on every boot without storing the key.
/// </summary>
public static class DeterministicEcKey
{
    // Order n of the NIST P-384 group (FIPS 186-5 / SEC 2), big-endian.
    private static ReadOnlySpan<byte> P384Order =>
    [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC7, 0x63, 0x4D, 0x81, 0xF4, 0x37, 0x2D, 0xDF,
        0x58, 0x1A, 0x0D, 0xB2, 0x48, 0xB0, 0xA7, 0x7A, 0xEC, 0xEC, 0x19, 0x6A, 0xCC, 0xC5, 0x29, 0x73,
    ];

    /// <summary>Size of a P-384 private scalar.</summary>
    public const int ScalarSize = 48;

    /// <summary>Derives the key for <paramref name="label"/> from <paramref name="inputKeyMaterial"/> and <paramref name="salt"/>.</summary>
    /// <param name="inputKeyMaterial">Secret input (at least 32 bytes).</param>
    /// <param name="salt">Public context mixed into extraction (e.g. a measurement).</param>
    /// <param name="label">Purpose label; different labels give unrelated keys.</param>
    /// <returns>An ECDSA P-384 key the caller must dispose.</returns>
    public static ECDsa DeriveP384(ReadOnlySpan<byte> inputKeyMaterial, ReadOnlySpan<byte> salt, string label)
    {
        if (inputKeyMaterial.Length < 32)
        {
            throw new ArgumentException("Input keying material must be at least 32 bytes.", nameof(inputKeyMaterial));
        }
        ArgumentException.ThrowIfNullOrEmpty(label);

        Span<byte> prk = stackalloc byte[SHA384.HashSizeInBytes];
        byte[] scalar = new byte[ScalarSize];
        byte[] labelBytes = System.Text.Encoding.UTF8.GetBytes(label);
        byte[] info = new byte[labelBytes.Length + 4];
        labelBytes.CopyTo(info, 0);
        try
        {
            HKDF.Extract(HashAlgorithmName.SHA384, inputKeyMaterial, salt, prk);
            for (uint counter = 0; ; counter++)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(info.AsSpan(labelBytes.Length), counter);
                HKDF.Expand(HashAlgorithmName.SHA384, prk, scalar, info);
                if (IsValidScalar(scalar))
                {
                    break;
                }
            }
            var parameters = new ECParameters { Curve = ECCurve.NamedCurves.nistP384, D = scalar };
            return ECDsa.Create(parameters);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
            CryptographicOperations.ZeroMemory(scalar);
        }
    }

    private static bool IsValidScalar(ReadOnlySpan<byte> candidate) =>
        candidate.SequenceCompareTo(P384Order) < 0 && candidate.ContainsAnyExcept((byte)0);
}
