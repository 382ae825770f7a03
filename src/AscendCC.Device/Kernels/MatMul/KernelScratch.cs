using System.Runtime.InteropServices;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Per-thread packing buffers for the matrix kernels. Every AI Core is a long-lived thread, so a
/// [ThreadStatic] buffer is effectively per-core scratch ("L1/L0 buffers"): allocated on first use,
/// reused by every later launch, and freed by the finalizer when a (non-grid) thread that borrowed
/// it dies. 64-byte alignment keeps every packed panel on cache-line and zmm boundaries.
/// </summary>
internal static unsafe class KernelScratch
{
    /// <summary>Depth of one packed k-slice (floats per packed A/B column).</summary>
    public const int KC = 256;

    /// <summary>Largest row block of A packed at once; a multiple of every MR.</summary>
    public const int MCMax = 192;

    /// <summary>Widest column slice of B packed at once; a multiple of every NR.</summary>
    public const int NCMax = 4096;

    /// <summary>Floats in the edge tile buffer: one MR×NR tile for the largest geometry.</summary>
    public const int EdgeTileFloats = 16 * 32;

    [ThreadStatic] private static NativeFloats? t_packA;
    [ThreadStatic] private static NativeFloats? t_packB;
    [ThreadStatic] private static NativeFloats? t_small;
    [ThreadStatic] private static NativeFloats? t_launch;

    /// <summary>MCMax × KC floats for a packed block of A.</summary>
    public static float* PackA => (t_packA ??= new NativeFloats(MCMax * KC)).Pointer;

    /// <summary>KC × NCMax floats for a packed slice of B.</summary>
    public static float* PackB => (t_packB ??= new NativeFloats(KC * NCMax)).Pointer;

    /// <summary>An edge tile followed by a KC-float row buffer for converting half-precision weights.</summary>
    public static float* Small => (t_small ??= new NativeFloats(EdgeTileFloats + KC)).Pointer;

    /// <summary>
    /// At least <paramref name="bytes"/> bytes for what a launch prepares before its blocks run: the
    /// quantized activations of a block-quantized linear, the token-minor activations of a
    /// <see cref="PanelGemv"/>. Only the launching thread fills it, and the launch waits for its blocks,
    /// so the workers may read it. It grows to the largest launch seen and is then reused, so
    /// steady-state launches allocate nothing.
    /// </summary>
    public static byte* LaunchScratch(long bytes)
    {
        long floats = (bytes + 3) / 4;
        if (t_launch is not { } buffer || buffer.Count < floats)
        {
            t_launch = null;
            buffer = t_launch = new NativeFloats(checked((int)Math.Max(floats, 4096)));
        }
        return (byte*)buffer.Pointer;
    }

    private sealed class NativeFloats
    {
        public NativeFloats(int count)
        {
            Pointer = (float*)NativeMemory.AlignedAlloc((nuint)count * sizeof(float), 64);
            Count = count;
        }

        public int Count { get; }

        public float* Pointer { get; }

        ~NativeFloats() => NativeMemory.AlignedFree(Pointer);
    }
}
