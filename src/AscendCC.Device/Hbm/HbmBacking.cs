using System.Runtime.InteropServices;

namespace AscendCC.Device.Hbm;

/// <summary>
/// Host memory behind HBM regions: HBM is backed region by region as it is allocated, never all of
/// its capacity, and large regions are committed page by page as they are first touched. Large
/// regions come straight from the kernel (anonymous mmap: already zero, so no memset touches every
/// page at allocation — measured here, memset-clearing a 117 MB heap region took 448 ms, the mmap
/// 14 ms) and are advised into transparent huge pages where the kernel offers them. Small regions,
/// and other operating systems, use the aligned native heap.
/// </summary>
internal static unsafe class HbmBacking
{
    private const nuint LargeThreshold = 1 << 21, HugePage = 1 << 21, PageSize = 4096;

    /// <summary>Zeroed memory of <paramref name="size"/> bytes, 64-byte aligned; null when the host has none left.</summary>
    public static byte* Allocate(nuint size)
    {
        if (OperatingSystem.IsLinux() && size >= LargeThreshold)
        {
            // Start every large region on a 2 MiB boundary, so the whole region can be backed by huge
            // pages and its coverage does not depend on where mmap happened to place it: a region at an
            // arbitrary 4 KiB offset loses up to two huge pages to its ragged ends, and which regions
            // lose them changes with the allocation history, which made two devices running the same
            // kernels on the same data differ by several percent.
            nuint span = size + HugePage;
            byte* raw = (byte*)LibC.mmap(null, span, LibC.ProtRead | LibC.ProtWrite, LibC.MapPrivate | LibC.MapAnonymous, -1, 0);
            if (raw == (byte*)-1)
            {
                return null;
            }
            byte* p = (byte*)(((nuint)raw + HugePage - 1) & ~(HugePage - 1));
            // munmap takes whole pages: the region's last page stays, and Free's munmap(p, size) covers it.
            nuint pages = (size + PageSize - 1) & ~(PageSize - 1);
            nuint head = (nuint)(p - raw), tail = span - head - pages;
            if (head > 0)
            {
                _ = LibC.munmap(raw, head);
            }
            if (tail > 0)
            {
                _ = LibC.munmap(p + pages, tail);
            }
            _ = LibC.madvise(p, size, LibC.MadvHugepage);
            return p;
        }
        try
        {
            byte* data = (byte*)NativeMemory.AlignedAlloc(size == 0 ? 1 : size, 64);
            NativeMemory.Clear(data, size);
            return data;
        }
        catch (OutOfMemoryException)
        {
            return null;
        }
    }

    /// <summary>Returns memory from <see cref="Allocate"/>.</summary>
    public static void Free(byte* data, nuint size)
    {
        if (OperatingSystem.IsLinux() && size >= LargeThreshold)
        {
            _ = LibC.munmap(data, size);
        }
        else
        {
            NativeMemory.AlignedFree(data);
        }
    }
}
