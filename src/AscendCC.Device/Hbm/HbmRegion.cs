using System.Runtime.InteropServices;

namespace AscendCC.Device.Hbm;

/// <summary>
/// One allocated range of device addresses and the host memory that backs it: a slice of the
/// device's <see cref="HbmArena"/>, or (where there is none) its own allocation. Either way it starts
/// zeroed and is zeroed when freed, so no region ever shows a previous owner's bytes.
/// </summary>
internal sealed unsafe class HbmRegion : IDisposable
{
    private readonly HbmArena? _arena;

    public HbmRegion(ulong address, long size, RegionTag tag, HbmArena? arena)
    {
        Address = address;
        Size = size;
        Tag = tag;
        if (arena is not null)
        {
            _arena = arena;
            Data = arena.Data + (long)(address - HbmMemory.BaseAddress);
        }
        else
        {
            Data = HbmBacking.Allocate((nuint)size);
            if (Data == null)
            {
                throw new InsufficientMemoryException($"the simulating host has no memory left for a {size}-byte HBM region");
            }
        }
        HostAccess = DmaAccess.ReadWrite;
    }

    /// <summary>First device address.</summary>
    public ulong Address { get; }

    /// <summary>Bytes.</summary>
    public long Size { get; }

    /// <summary>One past the last device address.</summary>
    public ulong End => Address + (ulong)Size;

    /// <summary>What the region holds.</summary>
    public RegionTag Tag { get; }

    /// <summary>The backing memory.</summary>
    public byte* Data { get; private set; }

    /// <summary>What the SMMU lets the host do with this region.</summary>
    public DmaAccess HostAccess { get; set; }

    /// <summary>True once the region holds a loaded operator binary: nothing may write it again.</summary>
    public bool Sealed { get; set; }

    /// <summary>
    /// Confidential mode: the region is locked away from the host (R2). Its SMMU mapping is gone and
    /// cannot be restored; only a free or a device reset (both scrub) ends the lock.
    /// </summary>
    public bool Locked { get; set; }

    /// <summary>The package item a confidential unlock decrypted into this region, or null.</summary>
    public string? ItemName { get; set; }

    /// <summary>
    /// Confidential mode: the context this region's plaintext belongs to — set by <c>package_unlock</c>
    /// for weights and by attestation for the activations, KV cache and workspace a verified task list
    /// binds — or null while it belongs to none. Never changes until the region is freed (which scrubs).
    /// </summary>
    public Confidential.ConfidentialContext? Owner { get; set; }

    /// <summary>
    /// True while the region holds exactly one record sealed for a party and nothing else (R3): set by
    /// the sealing AI CPU operator, which fills the whole region; cleared by every other write (host DMA,
    /// device copy, memset, kernel output).
    /// </summary>
    public bool CiphertextOnly { get; set; }

    /// <summary>Number of verified models whose task lists bind this region; it may not be freed while pinned.</summary>
    public int PinCount { get; set; }

    /// <summary>The bytes from <paramref name="address"/> for <paramref name="length"/> bytes; the caller has checked the range.</summary>
    public Span<byte> Slice(ulong address, long length) => new(Data + (long)(address - Address), checked((int)length));

    /// <summary>True when [address, address+length) lies inside this region.</summary>
    public bool Contains(ulong address, long length) =>
        address >= Address && length >= 0 && address <= End && (ulong)length <= End - address;

    /// <summary>Zeroes the backing memory.</summary>
    public void Scrub() => NativeMemory.Clear(Data, (nuint)Size);

    public void Dispose()
    {
        if (Data == null)
        {
            return;
        }
        if (_arena is not null)
        {
            _arena.Release((long)(Address - HbmMemory.BaseAddress), Size);
        }
        else
        {
            // Scrub before the memory returns to the process allocator.
            Scrub();
            HbmBacking.Free(Data, (nuint)Size);
        }
        Data = null;
    }
}
