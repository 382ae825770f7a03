using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// llama.cpp's block_q4_0 in meaning: 32 weights d·(n − 8) with an f16 d and n a 4-bit unsigned
/// nibble, 4.5 bits a weight. A row-form block's 16 bytes keep GGUF's order: byte j holds element j
/// in its low nibble and element j + 16 in its high one. A strip block is the eight rows' GGUF bytes
/// four at a time: byte 32h + 4r + c is row r's GGUF byte 4h + c, so one 32-byte load masked gives
/// group h (elements 4h..4h+3 of every row) and shifted gives group h + 4 (elements 16 + 4h…).
/// </summary>
internal readonly unsafe struct Q4_0Format : IBlockFormat
{
    public static ElementType Type => ElementType.Q4_0;

    public static int QuantBytes => BlockMatrix.BlockSize / 2;

    public static int Offset => 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Load(byte* quants)
    {
        Vector128<byte> packed = Vector128.Load(quants);
        Vector128<byte> nibble = Vector128.Create((byte)0x0F);
        return (Vector256.Create(packed & nibble, Vector128.ShiftRightLogical(packed, 4) & nibble) - Vector256.Create((byte)8)).AsSByte();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Quant(byte* quants, int i) => (i < 16 ? quants[i] & 0x0F : quants[i - 16] >> 4) - 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> StripGroup(byte* stripBlock, int g) => Nibbles(stripBlock, g, 32);

    /// <summary>
    /// Group <paramref name="g"/> of two strip blocks side by side in one 512-bit vector (<paramref name="first"/>'s
    /// eight rows in the lower half): <see cref="StripGroup"/> of each, with one mask or shift for both.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> StripGroupPair(byte* first, byte* second, int g) =>
        Nibbles(Vector512.Create(Vector256.Load(first + (32 * (g & 3))), Vector256.Load(second + (32 * (g & 3)))), g);

    public static int StripQuant(byte* stripBlock, int r, int i) => Nibble(stripBlock, r, i, 32) - 8;

    public static void WriteStripRow(byte* stripBlock, int r, byte* ggufQuants) => WriteNibbles(stripBlock, r, ggufQuants, 32);

    /// <summary>Group <paramref name="g"/> of a strip block whose four 32-byte groups are <paramref name="groupStride"/> bytes apart: the low nibbles for g &lt; 4, the high ones after.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> Nibbles(byte* stripBlock, int g, int groupStride)
    {
        Vector256<byte> packed = Vector256.Load(stripBlock + (groupStride * (g & 3)));
        return (g < 4 ? packed : Vector256.ShiftRightLogical(packed.AsUInt16(), 4).AsByte()) & Vector256.Create((byte)0x0F);
    }

    /// <summary>The low (g &lt; 4) or high nibbles of 64 packed bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<byte> Nibbles(Vector512<byte> packed, int g) =>
        (g < 4 ? packed : Vector512.ShiftRightLogical(packed.AsUInt16(), 4).AsByte()) & Vector512.Create((byte)0x0F);

    /// <summary>Nibble n (0..15) of element <paramref name="i"/> of row <paramref name="r"/> of a strip block with groups <paramref name="groupStride"/> bytes apart.</summary>
    internal static int Nibble(byte* stripBlock, int r, int i, int groupStride)
    {
        int j = i % 16;
        byte packed = stripBlock[(j / 4 * groupStride) + (r * 4) + (j % 4)];
        return i < 16 ? packed & 0x0F : packed >> 4;
    }

    /// <summary>Writes row <paramref name="r"/>'s 16 GGUF bytes into a strip block with groups <paramref name="groupStride"/> bytes apart.</summary>
    internal static void WriteNibbles(byte* stripBlock, int r, byte* ggufQuants, int groupStride)
    {
        for (int j = 0; j < 16; j++)
        {
            stripBlock[(j / 4 * groupStride) + (r * 4) + (j % 4)] = ggufQuants[j];
        }
    }

    public static bool InPanels => false;

    public static bool HasMins => false;

    public static bool PadsToWholeStrips => false;

    public static int ScaleBytesPerBlock => BlockMatrix.StripRows * sizeof(ushort);

    public static bool PrefetchesScalePlane => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* ScalePlane(byte* matrix, long rows, long cols) => (byte*)BlockMatrix<Q4_0Format>.Scales(matrix, rows, cols);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> StripScales(byte* plane, nint strip, int blocks, int block) => BlockMatrix.F16StripScales(plane, strip, blocks, block);

    public static Vector256<float> StripMins(byte* plane, nint strip, int blocks, int block) => Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint ScaleAt(nint strip, int blocks, int block) => ((strip * blocks) + block) * ScaleBytesPerBlock;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> StripScalesPair(byte* plane, nint strip, int blocks, int block) =>
        Vector512.Create(StripScales(plane, strip, blocks, block), StripScales(plane, strip + 1, blocks, block));

    public static Vector512<float> StripMinsPair(byte* plane, nint strip, int blocks, int block) => Vector512<float>.Zero;
}
