using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// <see cref="Q4_0Format"/> in panels of sixteen rows (<see cref="ElementType.Q4_0Panels"/>): the same
/// nibbles and scales, the strips in pairs (<see cref="Q4Panels"/>).
/// </summary>
internal readonly unsafe struct Q4_0PanelFormat : IBlockFormat
{
    public static ElementType Type => ElementType.Q4_0Panels;

    public static int QuantBytes => Q4_0Format.QuantBytes;

    public static int Offset => Q4_0Format.Offset;

    public static bool InPanels => true;

    public static bool HasMins => false;

    public static bool PadsToWholeStrips => false;

    public static int ScaleBytesPerBlock => Q4_0Format.ScaleBytesPerBlock;

    public static bool PrefetchesScalePlane => Q4_0Format.PrefetchesScalePlane;

    /// <summary>Not used: a matrix in panels has no row-form rows (its rows are whole panels).</summary>
    public static Vector256<sbyte> Load(byte* quants) => throw new NotSupportedException("a Q4_0Panels matrix has no row-form blocks");

    /// <summary>Not used: see <see cref="Load"/>.</summary>
    public static int Quant(byte* quants, int i) => throw new NotSupportedException("a Q4_0Panels matrix has no row-form blocks");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> StripGroup(byte* stripBlock, int g) => Q4_0Format.Nibbles(stripBlock, g, BlockMatrix.PanelGroupStride);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> StripGroupPair(byte* first, byte* second, int g) => Q4Panels.Group(first, g);

    public static int StripQuant(byte* stripBlock, int r, int i) => Q4_0Format.Nibble(stripBlock, r, i, BlockMatrix.PanelGroupStride) - 8;

    public static void WriteStripRow(byte* stripBlock, int r, byte* ggufQuants) => Q4_0Format.WriteNibbles(stripBlock, r, ggufQuants, BlockMatrix.PanelGroupStride);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* ScalePlane(byte* matrix, long rows, long cols) => Q4_0Format.ScalePlane(matrix, rows, cols);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> StripScales(byte* plane, nint strip, int blocks, int block) => BlockMatrix.F16Scales8((ushort*)(plane + ScaleAt(strip, blocks, block)));

    /// <summary>A panel's block b keeps its sixteen rows' scales together: strip 2p's eight, then strip 2p + 1's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint ScaleAt(nint strip, int blocks, int block) =>
        ((((strip >> 1) * blocks) + block) * 2 * ScaleBytesPerBlock) + ((strip & 1) * ScaleBytesPerBlock);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> StripScalesPair(byte* plane, nint strip, int blocks, int block) => BlockMatrix.F16Scales16((ushort*)(plane + ScaleAt(strip, blocks, block)));

    public static Vector256<float> StripMins(byte* plane, nint strip, int blocks, int block) => Vector256<float>.Zero;
}

/// <summary>
/// The panel form of Q4_0 (<see cref="Q4_0PanelFormat"/>). A strip form keeps strip s's block b as four 32-byte groups
/// of eight rows; a panel form keeps strips 2p and 2p + 1 together, their block b as one 256-byte
/// panel block whose 64-byte group h is strip 2p's group h then strip 2p + 1's:
/// <code>
/// panel p, block b: [ 2p: h0 | 2p+1: h0 ][ 2p: h1 | 2p+1: h1 ][ … h2 … ][ … h3 … ]   (64 bytes each)
/// </code>
/// So a group of all sixteen rows is one aligned 64-byte load, where two strips side by side cost two
/// 32-byte loads and an insert into a 512-bit register, and a panel is one sequential stream where two
/// strips are two. The scale plane pairs them the same way: a panel's block b has its sixteen f16 scales
/// together (strip 2p's eight, then 2p + 1's), widened in one go where two strips' took two conversions
/// from two places. Bytes and values are the strip form's; only their order moves.
/// </summary>
internal static unsafe class Q4Panels
{
    /// <summary>Group <paramref name="g"/> of a panel block: sixteen rows' nibbles in one load.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Group(byte* panelBlock, int g) =>
        Q4_0Format.Nibbles(Vector512.Load(panelBlock + (BlockMatrix.PanelGroupStride * (g & 3))), g);

    /// <summary>Throws unless <paramref name="rows"/> are whole panels of sixteen.</summary>
    public static void RequireWholePanels(long rows, string what)
    {
        if (rows % BlockMatrix.PanelRows != 0)
        {
            throw new ArgumentException(
                $"{what} has {rows} rows, which are not whole panels of {BlockMatrix.PanelRows}; keep this matrix in Q4_0 (strips).");
        }
    }

    /// <summary>
    /// A Q4_0 matrix in strips (<paramref name="bytes"/> long: its quant plane the first
    /// rows·blocks·16 bytes, then its scale plane) rewritten into its panel form at <paramref name="destination"/>.
    /// </summary>
    public static void FromStrips(byte* strips, long bytes, long rows, long cols, byte* destination)
    {
        RequireWholePanels(rows, "a matrix in panels");
        long blocks = cols / BlockMatrix.BlockSize;
        const int stripBlock = BlockMatrix.StripRows * BlockMatrix.BlockSize / 2;
        const int half = BlockMatrix.PanelGroupStride / 2;
        for (long p = 0; p < rows / BlockMatrix.PanelRows; p++)
        {
            for (long b = 0; b < blocks; b++)
            {
                byte* even = strips + ((((2 * p) * blocks) + b) * stripBlock);
                byte* odd = strips + ((((2 * p) + 1) * blocks + b) * stripBlock);
                byte* panel = destination + (((p * blocks) + b) * 2 * stripBlock);
                for (int h = 0; h < 4; h++)
                {
                    Buffer.MemoryCopy(even + (h * half), panel + (h * BlockMatrix.PanelGroupStride), half, half);
                    Buffer.MemoryCopy(odd + (h * half), panel + (h * BlockMatrix.PanelGroupStride) + half, half, half);
                }
            }
        }
        long quantPlane = rows * blocks * (BlockMatrix.BlockSize / 2);
        const int scales = BlockMatrix.StripRows * sizeof(ushort);
        if (bytes != quantPlane + (rows * blocks * sizeof(ushort)))
        {
            throw new ArgumentException($"a [{rows}, {cols}] Q4_0 matrix is {quantPlane + (rows * blocks * sizeof(ushort))} bytes, not {bytes}", nameof(bytes));
        }
        for (long p = 0; p < rows / BlockMatrix.PanelRows; p++)
        {
            for (long b = 0; b < blocks; b++)
            {
                byte* panel = destination + quantPlane + (((p * blocks) + b) * 2 * scales);
                Buffer.MemoryCopy(strips + quantPlane + ((((2 * p) * blocks) + b) * scales), panel, scales, scales);
                Buffer.MemoryCopy(strips + quantPlane + (((((2 * p) + 1) * blocks) + b) * scales), panel + scales, scales, scales);
            }
        }
    }
}
