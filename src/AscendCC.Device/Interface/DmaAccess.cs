namespace AscendCC.Device;

/// <summary>How the host may reach a device region by DMA, as the SMMU enforces it.</summary>
[Flags]
public enum DmaAccess : uint
{
    /// <summary>Not mapped: every host DMA to the region faults.</summary>
    None = 0,
    /// <summary>The host may read the region (device-to-host copies).</summary>
    Read = 1,
    /// <summary>The host may write the region (host-to-device copies).</summary>
    Write = 2,
    /// <summary>Read and write.</summary>
    ReadWrite = Read | Write,
}
