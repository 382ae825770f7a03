namespace AscendCC.Device;

/// <summary>Build-time parameters of a simulated NPU.</summary>
public sealed class NpuDeviceOptions
{
    /// <summary>HBM capacity in bytes; backed lazily, region by region. Default 32 GiB (Ascend 910A).</summary>
    public long HbmCapacity { get; init; } = 32L << 30;

    /// <summary>Number of hardware streams. Default 32.</summary>
    public int StreamCount { get; init; } = 32;

    /// <summary>Number of hardware events. Default 1024.</summary>
    public int EventCount { get; init; } = 1024;

    /// <summary>Bytes per stream task buffer. Default 4 MiB.</summary>
    public int TaskBufferBytes { get; init; } = 4 << 20;

    /// <summary>AI Cores; 0 means one per CPU thread.</summary>
    public int AiCoreCount { get; init; }

    /// <summary>Device index reported in the name.</summary>
    public int DeviceIndex { get; init; }

    /// <summary>The manufacturer's fuses (secret, identity, root). Without them the device has no root of trust and runs with confidential computing off.</summary>
    public DeviceFuseImage? Fuses { get; init; }

    /// <summary>What to boot at power-on (needs <see cref="Fuses"/>).</summary>
    public DeviceBootOptions? Boot { get; init; }
}
