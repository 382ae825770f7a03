using System.Runtime.InteropServices;

namespace AscendCC.Device.Hbm;

/// <summary>
/// The host memory behind all of a device's HBM on Linux: one reservation of the whole capacity,
/// where device address <c>BaseAddress + offset</c> is host byte <c>offset</c>, as HBM is one
/// physical range on the silicon. The reservation costs nothing until touched (no swap is
/// reserved), is advised into transparent huge pages as a whole, and is zero wherever no region
/// lives: a freed region is zeroed before it returns (whole pages are handed back to the kernel,
/// which gives them back zeroed; the ragged edges are cleared in place).
/// <para>
/// Backing regions one by one instead left the huge-page coverage of each region to where it
/// happened to land and to its ragged ends (a 1.1 MiB projection or the tail of a 3 MiB one sat in
/// 4 KiB pages), so two devices running the same kernels on the same weights differed by a few
/// percent depending on their allocation history. One arena gives every device the same layout
/// and huge pages throughout. (Identical devices can still differ by a few percent in decode on a
/// virtual machine: that spread comes from how the host backs the guest's memory, below anything
/// this process controls; the CC-overhead benchmark measures it with twin devices.)
/// </para>
/// </summary>
internal sealed unsafe class HbmArena : IDisposable
{
    private const nuint HugePage = 1 << 21, PageSize = 4096;

    private byte* _raw;
    private readonly nuint _rawBytes;

    private HbmArena(byte* raw, nuint rawBytes, byte* data)
    {
        _raw = raw;
        _rawBytes = rawBytes;
        Data = data;
    }

    /// <summary>Host byte 0 of the arena (2 MiB aligned).</summary>
    public byte* Data { get; }

    /// <summary>Reserves <paramref name="capacity"/> bytes; null where the host cannot (not Linux, or no address space).</summary>
    public static HbmArena? TryReserve(long capacity)
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
        {
            return null;
        }
        nuint span = (((nuint)capacity + HugePage - 1) & ~(HugePage - 1)) + HugePage;
        byte* raw = (byte*)LibC.mmap(null, span, LibC.ProtRead | LibC.ProtWrite, LibC.MapPrivate | LibC.MapAnonymous | LibC.MapNoReserve, -1, 0);
        if (raw == (byte*)-1)
        {
            return null;
        }
        byte* data = (byte*)(((nuint)raw + HugePage - 1) & ~(HugePage - 1));
        _ = LibC.madvise(data, span - (nuint)(data - raw), LibC.MadvHugepage);
        return new HbmArena(raw, span, data);
    }

    /// <summary>
    /// Zeroes [<paramref name="offset"/>, +<paramref name="size"/>) and returns its whole pages to
    /// the kernel: a freed region leaves no bytes behind and no resident memory.
    /// </summary>
    public void Release(long offset, long size)
    {
        byte* start = Data + offset, end = start + size;
        byte* firstPage = (byte*)(((nuint)start + PageSize - 1) & ~(PageSize - 1));
        byte* lastPage = (byte*)((nuint)end & ~(PageSize - 1));
        if (firstPage >= lastPage)
        {
            NativeMemory.Clear(start, (nuint)size);
            return;
        }
        NativeMemory.Clear(start, (nuint)(firstPage - start));
        NativeMemory.Clear(lastPage, (nuint)(end - lastPage));
        if (LibC.madvise(firstPage, (nuint)(lastPage - firstPage), LibC.MadvDontNeed) != 0)
        {
            NativeMemory.Clear(firstPage, (nuint)(lastPage - firstPage));
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_raw != null)
        {
            _ = LibC.munmap(_raw, _rawBytes);
            _raw = null;
        }
    }
}
