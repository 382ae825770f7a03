using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Encoding;

namespace AscendCC.Protocol.Packaging;

/// <summary>
/// The model provider's conditions for releasing a model key, signed inside the manifest. CC mode On
/// and debug Locked are not options: a model key is never released to a device that could leak it.
/// </summary>
public sealed class ReleasePolicy
{
    private const int MaxMeasurements = 256;

    /// <summary>Creates a policy.</summary>
    /// <param name="minimumSvn">Lowest acceptable firmware SVN.</param>
    /// <param name="requiredFirmwareMeasurements">Acceptable Firmware register values (48 bytes each); at least one.</param>
    /// <param name="allowedManufacturerRootSha256">SHA-256 of the DER of the only manufacturer root accepted.</param>
    public ReleasePolicy(uint minimumSvn, IEnumerable<ReadOnlyMemory<byte>> requiredFirmwareMeasurements, ReadOnlySpan<byte> allowedManufacturerRootSha256)
    {
        ArgumentNullException.ThrowIfNull(requiredFirmwareMeasurements);
        byte[][] measurements = requiredFirmwareMeasurements.Select(m => m.ToArray()).ToArray();
        if (measurements.Length == 0 || measurements.Length > MaxMeasurements || measurements.Any(m => m.Length != SHA384.HashSizeInBytes))
        {
            throw new ArgumentException("A release policy lists 1 to 256 firmware measurements of 48 bytes.", nameof(requiredFirmwareMeasurements));
        }
        if (allowedManufacturerRootSha256.Length != SHA256.HashSizeInBytes)
        {
            throw new ArgumentException("The root is named by its 32-byte SHA-256 digest.", nameof(allowedManufacturerRootSha256));
        }
        MinimumSvn = minimumSvn;
        RequiredFirmwareMeasurements = measurements.Select(m => (ReadOnlyMemory<byte>)m).ToArray();
        AllowedManufacturerRootSha256 = allowedManufacturerRootSha256.ToArray();
    }

    /// <summary>Lowest acceptable firmware SVN.</summary>
    public uint MinimumSvn { get; }

    /// <summary>Acceptable Firmware register values.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> RequiredFirmwareMeasurements { get; }

    /// <summary>SHA-256 of the accepted manufacturer root certificate.</summary>
    public ReadOnlyMemory<byte> AllowedManufacturerRootSha256 { get; }

    /// <summary>Always <see cref="CcMode.On"/>.</summary>
    public static CcMode RequiredCcMode => CcMode.On;

    /// <summary>Always true.</summary>
    public static bool RequireDebugLocked => true;

    /// <summary>SHA-256 of a root certificate, as named by <see cref="AllowedManufacturerRootSha256"/>.</summary>
    public static byte[] RootDigest(X509Certificate2 root)
    {
        ArgumentNullException.ThrowIfNull(root);
        return SHA256.HashData(root.RawDataMemory.Span);
    }

    internal void WriteTo(CanonicalWriter writer)
    {
        writer.WriteUInt32(MinimumSvn);
        writer.WriteByte((byte)RequiredCcMode);
        writer.WriteByte(1);
        writer.WriteFixed(AllowedManufacturerRootSha256.Span);
        writer.WriteUInt16((ushort)RequiredFirmwareMeasurements.Count);
        foreach (ReadOnlyMemory<byte> m in RequiredFirmwareMeasurements)
        {
            writer.WriteFixed(m.Span);
        }
    }

    internal static ReleasePolicy ReadFrom(ref CanonicalReader reader)
    {
        uint svn = reader.ReadUInt32("policy.minimumSvn");
        if (reader.ReadEnum<CcMode>("policy.requiredCcMode") != CcMode.On)
        {
            throw reader.Fail("policy.requiredCcMode", "is not On");
        }
        if (reader.ReadByte("policy.requireDebugLocked") != 1)
        {
            throw reader.Fail("policy.requireDebugLocked", "is not set");
        }
        byte[] root = reader.ReadFixed(SHA256.HashSizeInBytes, "policy.allowedRoot").ToArray();
        ushort count = reader.ReadUInt16("policy.firmwareMeasurementCount");
        if (count == 0 || count > MaxMeasurements)
        {
            throw reader.Fail("policy.firmwareMeasurementCount", "is outside 1..256");
        }
        var list = new List<ReadOnlyMemory<byte>>(count);
        for (int i = 0; i < count; i++)
        {
            list.Add(reader.ReadFixed(SHA384.HashSizeInBytes, "policy.firmwareMeasurement").ToArray());
        }
        return new ReleasePolicy(svn, list, root);
    }
}
