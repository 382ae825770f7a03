using System.Runtime.InteropServices;

namespace AscendCC.Device.Hbm;

/// <summary>The few Linux memory calls that back HBM (anonymous mappings, huge-page advice, page release).</summary>
internal static unsafe partial class LibC
{
    public const int ProtRead = 1, ProtWrite = 2, MapPrivate = 2, MapAnonymous = 0x20, MapNoReserve = 0x4000;
    public const int MadvDontNeed = 4, MadvHugepage = 14;

    [LibraryImport("libc", SetLastError = true)]
    public static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int munmap(void* addr, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int madvise(void* addr, nuint length, int advice);
}
