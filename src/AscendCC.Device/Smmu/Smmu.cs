using AscendCC.Device.Hbm;

namespace AscendCC.Device.Smmu;

/// <summary>Why the SMMU refused a DMA.</summary>
internal enum DmaFaultCause
{
    None,
    Unmapped,
    NotReadable,
    NotWritable,
    CrossesRegion,
    HostBufferRange,
    Sealed,
}

/// <summary>
/// The device's SMMU: it decides which HBM the host can reach by DMA. Every host↔device transfer is
/// translated here before a byte moves; a refusal is reported as a fault with the address and cause,
/// and nothing is copied.
/// </summary>
internal sealed class Smmu
{
    private readonly HbmMemory _hbm;

    public Smmu(HbmMemory hbm) => _hbm = hbm;

    /// <summary>
    /// Translates a host DMA of <paramref name="length"/> bytes at <paramref name="address"/>; on success
    /// returns the region, otherwise null with the fault's cause.
    /// </summary>
    public HbmRegion? Translate(ulong address, long length, DmaAccess access, out DmaFaultCause cause)
    {
        HbmRegion? region = _hbm.Find(address, 0);
        if (region is null)
        {
            cause = DmaFaultCause.Unmapped;
            return null;
        }
        if (!region.Contains(address, length))
        {
            cause = DmaFaultCause.CrossesRegion;
            return null;
        }
        if ((region.HostAccess & access) != access)
        {
            cause = access == DmaAccess.Write ? DmaFaultCause.NotWritable : DmaFaultCause.NotReadable;
            if (region.HostAccess == DmaAccess.None)
            {
                cause = DmaFaultCause.Unmapped;
            }
            return null;
        }
        if (access.HasFlag(DmaAccess.Write) && region.Sealed)
        {
            cause = DmaFaultCause.Sealed;
            return null;
        }
        cause = DmaFaultCause.None;
        return region;
    }

    /// <summary>Sets the host's access to a region; false when no region starts at <paramref name="address"/>.</summary>
    public bool SetAccess(ulong address, DmaAccess access)
    {
        HbmRegion? region = _hbm.Find(address, 0);
        if (region is null || region.Address != address)
        {
            return false;
        }
        region.HostAccess = access;
        return true;
    }

    public static string Describe(DmaFaultCause cause) => cause switch
    {
        DmaFaultCause.Unmapped => "address is not mapped for host DMA",
        DmaFaultCause.NotReadable => "region is not mapped readable for the host",
        DmaFaultCause.NotWritable => "region is not mapped writable for the host",
        DmaFaultCause.CrossesRegion => "transfer runs past the end of its region",
        DmaFaultCause.HostBufferRange => "transfer runs outside the registered host buffer",
        DmaFaultCause.Sealed => "region holds a sealed operator binary",
        _ => "no fault",
    };
}
