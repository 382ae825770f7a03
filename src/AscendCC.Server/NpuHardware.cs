using AscendCC.Device;

namespace AscendCC.Server;

/// <summary>
/// What a cloud gets from the NPU manufacturer: a manufacturer-signed firmware image and the fuse
/// images of the NPUs it bought (device secret and identity certificate burnt in at the factory; in
/// silicon the host cannot read them, here they stand for the chips). Never the manufacturer's keys.
/// Register one in the service collection before the server starts.
/// </summary>
public sealed class NpuHardware : IDisposable
{
    /// <summary>The hardware: <paramref name="signedFirmware"/> boots on every device of <paramref name="fuses"/>; the server owns the fuse images from now on.</summary>
    public NpuHardware(ReadOnlyMemory<byte> signedFirmware, IReadOnlyList<DeviceFuseImage> fuses)
    {
        ArgumentNullException.ThrowIfNull(fuses);
        if (fuses.Count == 0)
        {
            throw new ArgumentException("the hardware has no NPU: give at least one fuse image", nameof(fuses));
        }
        SignedFirmware = signedFirmware;
        Fuses = fuses;
    }

    /// <summary>The manufacturer-signed firmware image (CMS SignedData).</summary>
    public ReadOnlyMemory<byte> SignedFirmware { get; }

    /// <summary>One fuse image per NPU.</summary>
    public IReadOnlyList<DeviceFuseImage> Fuses { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (DeviceFuseImage f in Fuses)
        {
            f.Dispose();
        }
    }
}
