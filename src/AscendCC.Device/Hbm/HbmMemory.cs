namespace AscendCC.Device.Hbm;

/// <summary>
/// The device's HBM: an address space of <see cref="Capacity"/> bytes carved into tagged regions.
/// Touched only by the task scheduler's thread, plus counters read by the host through registers.
/// </summary>
internal sealed class HbmMemory : IDisposable
{
    /// <summary>HBM's first device address: nonzero, so that 0 can mean "no buffer".</summary>
    public const ulong BaseAddress = 0x1_0000_0000;

    /// <summary>Smallest alignment handed out; a cache line and one Vector512.</summary>
    public const int MinAlignment = 64;

    /// <summary>Regions of this size and more start on a 2 MiB device address (a huge page of the arena).</summary>
    private const long LargeRegion = 1 << 21;

    private readonly List<HbmRegion> _regions = new(); // sorted by address
    private readonly HbmArena? _arena;
    private readonly object _gate = new();
    private long _allocated;
    private long _peak;

    public HbmMemory(long capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1 << 20);
        Capacity = capacity;
        _arena = HbmArena.TryReserve(capacity);
    }

    public long Capacity { get; }

    public DeviceMemoryInfo Info
    {
        get
        {
            lock (_gate)
            {
                return new DeviceMemoryInfo(Capacity, _allocated, _peak, _regions.Count);
            }
        }
    }

    /// <summary>Allocates a zeroed region, or returns null when no gap of that size is left.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Size or alignment out of range.</exception>
    public HbmRegion? Allocate(long size, long alignment, RegionTag tag)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        alignment = Math.Max(alignment, MinAlignment);
        if ((alignment & (alignment - 1)) != 0 || alignment > (1 << 30))
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "alignment must be a power of two up to 1 GiB");
        }
        if (size >= LargeRegion && _arena is not null)
        {
            // So a large tensor's huge pages, and its offsets within them, are the same on every device.
            alignment = Math.Max(alignment, LargeRegion);
        }
        lock (_gate)
        {
            if (size > Capacity - _allocated)
            {
                return null;
            }
            // First fit over the gaps between live regions.
            ulong end = BaseAddress + (ulong)Capacity;
            ulong candidate = BaseAddress;
            int index = 0;
            for (; index <= _regions.Count; index++)
            {
                candidate = AlignUp(candidate, (ulong)alignment);
                ulong gapEnd = index < _regions.Count ? _regions[index].Address : end;
                if (candidate <= gapEnd && gapEnd - candidate >= (ulong)size)
                {
                    break;
                }
                if (index < _regions.Count)
                {
                    candidate = _regions[index].End;
                }
            }
            if (index > _regions.Count)
            {
                return null;
            }
            HbmRegion region;
            try
            {
                region = new HbmRegion(candidate, size, tag, _arena);
            }
            catch (OutOfMemoryException)
            {
                // The simulating host ran out before the simulated HBM did: same answer to the caller.
                return null;
            }
            _regions.Insert(index, region);
            _allocated += size;
            _peak = Math.Max(_peak, _allocated);
            return region;
        }
    }

    /// <summary>Frees (and scrubs) the region starting at <paramref name="address"/>; false if there is none.</summary>
    public bool Free(ulong address)
    {
        lock (_gate)
        {
            int i = IndexOf(address);
            if (i < 0 || _regions[i].Address != address)
            {
                return false;
            }
            HbmRegion region = _regions[i];
            _regions.RemoveAt(i);
            _allocated -= region.Size;
            region.Dispose();
            return true;
        }
    }

    /// <summary>The region that holds all of [address, address+length), or null.</summary>
    public HbmRegion? Find(ulong address, long length)
    {
        lock (_gate)
        {
            int i = IndexOf(address);
            if (i < 0)
            {
                return null;
            }
            HbmRegion region = _regions[i];
            return region.Contains(address, length) ? region : null;
        }
    }

    /// <summary>Live regions, in address order (a snapshot).</summary>
    public HbmRegion[] Regions()
    {
        lock (_gate)
        {
            return _regions.ToArray();
        }
    }

    /// <summary>Resets the peak counter to the current allocation.</summary>
    public void ResetPeak()
    {
        lock (_gate)
        {
            _peak = _allocated;
        }
    }

    /// <summary>Frees and scrubs every region (device reset).</summary>
    public void Clear()
    {
        lock (_gate)
        {
            foreach (HbmRegion r in _regions)
            {
                r.Dispose();
            }
            _regions.Clear();
            _allocated = 0;
            _peak = 0;
        }
    }

    public void Dispose()
    {
        Clear();
        _arena?.Dispose();
    }

    // Index of the region whose start is the greatest ≤ address, or -1.
    private int IndexOf(ulong address)
    {
        int lo = 0, hi = _regions.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_regions[mid].Address <= address)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return found;
    }

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);
}
