using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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

    public static Vector512<float> StripMinsPair(byte* plane, nint strip, int blocks, int block) => Vector512<float>.Zero;

    public static Vector256<float> StripMins(byte* plane, nint strip, int blocks, int block) => Vector256<float>.Zero;
}

/// <summary>
/// <see cref="Q4_KFormat"/> in panels of sixteen rows (<see cref="ElementType.Q4_KPanels"/>): the nibbles as
/// Q4_0's panels pair them, and each panel's super-block record (384 bytes) the two strips' records
/// merged lane by lane — d f32[16], dmin f32[16], sc u8[8 blocks][16 rows], m u8[8][16] — so a block's
/// sixteen scales and mins are one load and one widening each.
/// </summary>
internal readonly unsafe struct Q4_KPanelFormat : IBlockFormat
{
    /// <summary>Bytes of a panel's super-block record: two strips' (<see cref="Q4_KMatrix.RecordBytes"/>).</summary>
    public const int RecordBytes = 2 * Q4_KMatrix.RecordBytes;

    private const int DminAt = BlockMatrix.PanelRows * sizeof(float);
    private const int ScAt = 2 * DminAt;
    private const int MAt = ScAt + (Q4_KMatrix.BlocksPerSuper * BlockMatrix.PanelRows);

    public static ElementType Type => ElementType.Q4_KPanels;

    public static int QuantBytes => Q4_KFormat.QuantBytes;

    public static int Offset => Q4_KFormat.Offset;

    public static bool InPanels => true;

    public static bool HasMins => true;

    public static bool PadsToWholeStrips => true;

    public static int ScaleBytesPerBlock => Q4_KFormat.ScaleBytesPerBlock;

    public static bool PrefetchesScalePlane => false;

    /// <summary>Not used: every row of a Q4_K matrix is in a strip.</summary>
    public static Vector256<sbyte> Load(byte* quants) => throw new NotSupportedException("a Q4_KPanels matrix has no row-form blocks");

    /// <summary>Not used: see <see cref="Load"/>.</summary>
    public static int Quant(byte* quants, int i) => throw new NotSupportedException("a Q4_KPanels matrix has no row-form blocks");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> StripGroup(byte* stripBlock, int g) => Q4_0Format.Nibbles(stripBlock, g, BlockMatrix.PanelGroupStride);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> StripGroupPair(byte* first, byte* second, int g) => Q4Panels.Group(first, g);

    public static int StripQuant(byte* stripBlock, int r, int i) => Q4_0Format.Nibble(stripBlock, r, i, BlockMatrix.PanelGroupStride);

    public static void WriteStripRow(byte* stripBlock, int r, byte* ggufQuants) => Q4_0Format.WriteNibbles(stripBlock, r, ggufQuants, BlockMatrix.PanelGroupStride);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* ScalePlane(byte* matrix, long rows, long cols) => Q4_KMatrix.ScalePlane(matrix, rows, cols);

    /// <summary>The record of <paramref name="strip"/>'s panel holding block <paramref name="block"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* Record(byte* plane, nint strip, int blocks, int block) =>
        plane + ((((strip >> 1) * (nint)((uint)blocks / Q4_KMatrix.BlocksPerSuper)) + (nint)((uint)block / Q4_KMatrix.BlocksPerSuper)) * RecordBytes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> StripScales(byte* plane, nint strip, int blocks, int block)
    {
        byte* record = Record(plane, strip, blocks, block);
        nint half = strip & 1;
        return Vector256.Load((float*)record + (half * BlockMatrix.StripRows))
            * Q4_KMatrix.Widen(record + ScAt + ((uint)block % Q4_KMatrix.BlocksPerSuper * BlockMatrix.PanelRows) + (half * BlockMatrix.StripRows));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> StripMins(byte* plane, nint strip, int blocks, int block)
    {
        byte* record = Record(plane, strip, blocks, block);
        nint half = strip & 1;
        return Vector256.Load((float*)(record + DminAt) + (half * BlockMatrix.StripRows))
            * Q4_KMatrix.Widen(record + MAt + ((uint)block % Q4_KMatrix.BlocksPerSuper * BlockMatrix.PanelRows) + (half * BlockMatrix.StripRows));
    }

    /// <summary>Where the panel's record starts: used only to place prefetches, which this format does not ask for.</summary>
    public static nint ScaleAt(nint strip, int blocks, int block) =>
        (((strip >> 1) * (nint)((uint)blocks / Q4_KMatrix.BlocksPerSuper)) + (nint)((uint)block / Q4_KMatrix.BlocksPerSuper)) * RecordBytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> StripScalesPair(byte* plane, nint strip, int blocks, int block)
    {
        byte* record = Record(plane, strip, blocks, block);
        return Vector512.Load((float*)record) * Widen16(record + ScAt + ((uint)block % Q4_KMatrix.BlocksPerSuper * BlockMatrix.PanelRows));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> StripMinsPair(byte* plane, nint strip, int blocks, int block)
    {
        byte* record = Record(plane, strip, blocks, block);
        return Vector512.Load((float*)(record + DminAt)) * Widen16(record + MAt + ((uint)block % Q4_KMatrix.BlocksPerSuper * BlockMatrix.PanelRows));
    }

    /// <summary>Sixteen unsigned bytes as f32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen16(byte* sixteen) => Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load(sixteen)));

    /// <summary>
    /// Merges the strip form's records (<see cref="Q4_KMatrix"/>: per strip and super-block, d f32[8],
    /// dmin f32[8], sc u8[8][8], m u8[8][8]) of strips 2p and 2p + 1 into panel p's.
    /// </summary>
    internal static void MergeRecords(byte* even, byte* odd, byte* panel)
    {
        const int rows = BlockMatrix.StripRows;
        Buffer.MemoryCopy(even, panel, rows * sizeof(float), rows * sizeof(float));
        Buffer.MemoryCopy(odd, panel + (rows * sizeof(float)), rows * sizeof(float), rows * sizeof(float));
        Buffer.MemoryCopy(even + (rows * sizeof(float)), panel + DminAt, rows * sizeof(float), rows * sizeof(float));
        Buffer.MemoryCopy(odd + (rows * sizeof(float)), panel + DminAt + (rows * sizeof(float)), rows * sizeof(float), rows * sizeof(float));
        for (int j = 0; j < Q4_KMatrix.BlocksPerSuper; j++)
        {
            Buffer.MemoryCopy(even + Q4_KMatrix.ScalesAt + (j * rows), panel + ScAt + (j * BlockMatrix.PanelRows), rows, rows);
            Buffer.MemoryCopy(odd + Q4_KMatrix.ScalesAt + (j * rows), panel + ScAt + (j * BlockMatrix.PanelRows) + rows, rows, rows);
            Buffer.MemoryCopy(even + Q4_KMatrix.MinsAt + (j * rows), panel + MAt + (j * BlockMatrix.PanelRows), rows, rows);
            Buffer.MemoryCopy(odd + Q4_KMatrix.MinsAt + (j * rows), panel + MAt + (j * BlockMatrix.PanelRows) + rows, rows, rows);
        }
    }
}

/// <summary>
/// The panel forms of the 4-bit formats (<see cref="Q4_0PanelFormat"/>, <see cref="Q4_KPanelFormat"/>). A strip form keeps strip s's block b as four 32-byte groups
/// of eight rows; a panel form keeps strips 2p and 2p + 1 together, their block b as one 256-byte
/// panel block whose 64-byte group h is strip 2p's group h then strip 2p + 1's:
/// <code>
/// panel p, block b: [ 2p: h0 | 2p+1: h0 ][ 2p: h1 | 2p+1: h1 ][ … h2 … ][ … h3 … ]   (64 bytes each)
/// </code>
/// So a group of all sixteen rows is one aligned 64-byte load, where two strips side by side cost two
/// 32-byte loads and an insert into a 512-bit register, and a panel is one sequential stream where two
/// strips are two. The scales pair them the same way: Q4_0's panel block b has its sixteen f16 scales
/// together (strip 2p's eight, then 2p + 1's), Q4_K's panel super-block one record of sixteen lanes,
/// each widened in one go where two strips' took two conversions from two places. Bytes and values are
/// the strip form's; only their order moves.
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
                $"{what} has {rows} rows, which are not whole panels of {BlockMatrix.PanelRows}; keep this matrix in strips (Q4_0 or Q4_K).");
        }
    }

    /// <summary>
    /// A 4-bit matrix in strips (<paramref name="bytes"/> long: its quant plane the first rows·blocks·16
    /// bytes, then its scale plane or records) rewritten into its panel form at <paramref name="destination"/>.
    /// </summary>
    public static void FromStrips(ElementType stripType, byte* strips, long bytes, long rows, long cols, byte* destination)
    {
        RequireWholePanels(rows, $"a {stripType} matrix in panels");
        long blocks = cols / BlockMatrix.BlockSize;
        long quantPlane = rows * blocks * (BlockMatrix.BlockSize / 2);
        if (bytes != ElementTypes.MatrixBytes(stripType, rows, cols))
        {
            throw new ArgumentException($"a [{rows}, {cols}] {stripType} matrix is {ElementTypes.MatrixBytes(stripType, rows, cols)} bytes, not {bytes}", nameof(bytes));
        }
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
        if (stripType == ElementType.Q4_K)
        {
            long supers = cols / Q4_KMatrix.SuperBlockSize;
            for (long p = 0; p < rows / BlockMatrix.PanelRows; p++)
            {
                for (long sb = 0; sb < supers; sb++)
                {
                    byte* even = strips + quantPlane + ((((2 * p) * supers) + sb) * Q4_KMatrix.RecordBytes);
                    byte* odd = strips + quantPlane + (((((2 * p) + 1) * supers) + sb) * Q4_KMatrix.RecordBytes);
                    Q4_KPanelFormat.MergeRecords(even, odd, destination + quantPlane + (((p * supers) + sb) * Q4_KPanelFormat.RecordBytes));
                }
            }
            return;
        }
        const int scales = BlockMatrix.StripRows * sizeof(ushort);
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
