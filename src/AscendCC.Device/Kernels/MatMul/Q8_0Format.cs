using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// llama.cpp's block_q8_0 in meaning: 32 weights d·q with an f16 d and q an int8, 8.5 bits a weight.
/// A row-form block's q are its 32 bytes as GGUF stores them. A strip block stores q + 128 (q's bits
/// with the sign bit flipped), the unsigned operand of vpdpbusd: byte 32g + 4r + c is row r's
/// element 4g + c.
/// </summary>
internal readonly unsafe struct Q8_0Format : IBlockFormat
{
    public static ElementType Type => ElementType.Q8_0;

    public static int QuantBytes => BlockMatrix.BlockSize;

    public static int Offset => 128;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Load(byte* quants) => Vector256.Load((sbyte*)quants);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Quant(byte* quants, int i) => ((sbyte*)quants)[i];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> StripGroup(byte* stripBlock, int g) => Vector256.Load(stripBlock + (32 * g));

    public static int StripQuant(byte* stripBlock, int r, int i) => (sbyte)(stripBlock[At(r, i)] ^ 0x80);

    public static void WriteStripRow(byte* stripBlock, int r, byte* ggufQuants)
    {
        for (int i = 0; i < BlockMatrix.BlockSize; i++)
        {
            stripBlock[At(r, i)] = (byte)(ggufQuants[i] ^ 0x80);
        }
    }

    public static bool InPanels => false;

    /// <summary>Not used: Q8_0's unsigned q + 128 would saturate vpmaddubsw's int16 pair sums, so its strips are read one at a time.</summary>
    public static Vector512<byte> StripGroupPair(byte* first, byte* second, int g) => throw new NotSupportedException("Q8_0 strips are not read in pairs");

    public static bool HasMins => false;

    public static bool PadsToWholeStrips => false;

    public static int ScaleBytesPerBlock => BlockMatrix.StripRows * sizeof(ushort);

    public static bool PrefetchesScalePlane => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* ScalePlane(byte* matrix, long rows, long cols) => (byte*)BlockMatrix<Q8_0Format>.Scales(matrix, rows, cols);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> StripScales(byte* plane, nint strip, int blocks, int block) => BlockMatrix.F16StripScales(plane, strip, blocks, block);

    public static Vector256<float> StripMins(byte* plane, nint strip, int blocks, int block) => Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint ScaleAt(nint strip, int blocks, int block) => ((strip * blocks) + block) * ScaleBytesPerBlock;

    /// <summary>Not used: see <see cref="StripGroupPair"/>.</summary>
    public static Vector512<float> StripScalesPair(byte* plane, nint strip, int blocks, int block) => throw new NotSupportedException("Q8_0 strips are not read in pairs");

    /// <summary>Not used: see <see cref="StripGroupPair"/>.</summary>
    public static Vector512<float> StripMinsPair(byte* plane, nint strip, int blocks, int block) => throw new NotSupportedException("Q8_0 strips are not read in pairs");

    private static int At(int r, int i) => (i / 4 * 32) + (r * 4) + (i % 4);
}
