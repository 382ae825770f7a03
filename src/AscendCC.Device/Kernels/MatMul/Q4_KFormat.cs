using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AscendCC.Device.Kernels;

/// <summary>
/// llama.cpp's block_q4_K in meaning: super-blocks of 256 weights along a row, each with an f16 d and
/// an f16 dmin, and eight blocks of 32 with a 6-bit scale sc and a 6-bit min m each, weight =
/// d·sc·q − dmin·m for a 4-bit q. On the device a block of 32 is a strip block of eight rows exactly as
/// <see cref="Q4_0Format"/> lays its nibbles out (q itself, 0..15, so no offset), and the scales and
/// mins live in <see cref="Q4_KMatrix"/>'s per-strip super-block records.
/// </summary>
internal readonly unsafe struct Q4_KFormat : IBlockFormat
{
    public static ElementType Type => ElementType.Q4_K;

    public static int QuantBytes => BlockMatrix.BlockSize / 2;

    public static int Offset => 0;

    public static bool HasMins => true;

    public static bool PadsToWholeStrips => true;

    public static int ScaleBytesPerBlock => Q4_KMatrix.RecordBytes / Q4_KMatrix.BlocksPerSuper;

    public static bool PrefetchesScalePlane => false;

    /// <summary>Not used: every row of a Q4_K matrix is in a strip (rows are padded to whole strips).</summary>
    public static Vector256<sbyte> Load(byte* quants) => throw new NotSupportedException("a Q4_K matrix has no row-form blocks");

    /// <summary>Not used: see <see cref="Load"/>.</summary>
    public static int Quant(byte* quants, int i) => throw new NotSupportedException("a Q4_K matrix has no row-form blocks");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> StripGroup(byte* stripBlock, int g) => Q4_0Format.StripGroup(stripBlock, g);

    public static int StripQuant(byte* stripBlock, int r, int i) => Q4_0Format.StripQuant(stripBlock, r, i) + 8;

    public static void WriteStripRow(byte* stripBlock, int r, byte* ggufQuants) => Q4_0Format.WriteStripRow(stripBlock, r, ggufQuants);

    public static bool InPanels => false;

    /// <summary>Where the strip's share of its super-block record would start at this block's rate: used only to place prefetches, which Q4_K does not ask for (<see cref="PrefetchesScalePlane"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint ScaleAt(nint strip, int blocks, int block) => ((strip * blocks) + block) * ScaleBytesPerBlock;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> StripScalesPair(byte* plane, nint strip, int blocks, int block) =>
        Vector512.Create(StripScales(plane, strip, blocks, block), StripScales(plane, strip + 1, blocks, block));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> StripMinsPair(byte* plane, nint strip, int blocks, int block) =>
        Vector512.Create(StripMins(plane, strip, blocks, block), StripMins(plane, strip + 1, blocks, block));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> StripGroupPair(byte* first, byte* second, int g) => Q4_0Format.StripGroupPair(first, second, g);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* ScalePlane(byte* matrix, long rows, long cols) => Q4_KMatrix.ScalePlane(matrix, rows, cols);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> StripScales(byte* plane, nint strip, int blocks, int block)
    {
        byte* record = Q4_KMatrix.Record(plane, strip, blocks, block);
        return Vector256.Load((float*)record) * Q4_KMatrix.Widen(record + Q4_KMatrix.ScalesAt + ((uint)block % Q4_KMatrix.BlocksPerSuper * BlockMatrix.StripRows));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> StripMins(byte* plane, nint strip, int blocks, int block)
    {
        byte* record = Q4_KMatrix.Record(plane, strip, blocks, block);
        return Vector256.Load((float*)record + BlockMatrix.StripRows) * Q4_KMatrix.Widen(record + Q4_KMatrix.MinsAt + ((uint)block % Q4_KMatrix.BlocksPerSuper * BlockMatrix.StripRows));
    }
}

/// <summary>
/// A Q4_K [rows, cols] matrix in HBM. Rows go in strips of eight, the last one padded with zero rows:
/// <code>
/// quants: [ strip 0: block 0 | block 1 | … ][ strip 1 … ] …     (128 bytes a strip block, as Q4_0's)
/// records: [ strip 0: super-block 0 | super-block 1 | … ][ strip 1 … ] …
/// record (192 bytes): d f32[8 rows] | dmin f32[8] | sc u8[8 blocks][8 rows] | m u8[8 blocks][8 rows]
/// </code>
/// d and dmin are GGUF's f16 values widened (exact), so a block's eight row scales are one load times
/// one byte-widening, d·sc and dmin·m are exact products, and no f16 conversion runs in the loop.
/// 4.75 bits a weight against GGUF's 4.5: the f32 d/dmin and unpacked 6-bit sc/m cost a quarter bit,
/// bought back by never unpacking them per token. Columns must be whole super-blocks of 256.
/// </summary>
internal static unsafe class Q4_KMatrix
{
    /// <summary>Weights per super-block (ggml's QK_K).</summary>
    public const int SuperBlockSize = 256;

    /// <summary>Blocks of 32 per super-block.</summary>
    public const int BlocksPerSuper = SuperBlockSize / BlockMatrix.BlockSize;

    /// <summary>Bytes of one strip's super-block record.</summary>
    public const int RecordBytes = (2 * BlockMatrix.StripRows * sizeof(float)) + (2 * BlocksPerSuper * BlockMatrix.StripRows);

    /// <summary>Where a record's sc bytes start.</summary>
    public const int ScalesAt = 2 * BlockMatrix.StripRows * sizeof(float);

    /// <summary>Where a record's m bytes start.</summary>
    public const int MinsAt = ScalesAt + (BlocksPerSuper * BlockMatrix.StripRows);

    /// <summary>GGUF bytes of one Q4_K super-block: f16 d, f16 dmin, 12 bytes of packed 6-bit scales and mins, 128 bytes of nibbles.</summary>
    public const int GgufBlockBytes = 2 + 2 + 12 + 128;

    /// <summary>Strips of a matrix of <paramref name="rows"/> rows: the last one padded.</summary>
    public static long Strips(long rows) => (rows + BlockMatrix.StripRows - 1) / BlockMatrix.StripRows;

    /// <summary>Bytes of a [rows, cols] matrix.</summary>
    public static long Bytes(long rows, long cols)
    {
        RequireWholeSuperBlocks(cols, "the Q4_K weight");
        long strips = Strips(rows);
        return (strips * (cols / BlockMatrix.BlockSize) * BlockMatrix<Q4_KFormat>.StripBlockBytes) + (strips * (cols / SuperBlockSize) * RecordBytes);
    }

    /// <summary>Throws unless rows of <paramref name="cols"/> weights are whole super-blocks of 256.</summary>
    public static void RequireWholeSuperBlocks(long cols, string what)
    {
        if (cols % SuperBlockSize != 0)
        {
            throw new ArgumentException(
                $"{what} has rows of {cols} weights, which are not whole Q4_K super-blocks of {SuperBlockSize}; keep this matrix in Q8_0, Q4_0, F16 or BF16, or pad its input dimension to a multiple of {SuperBlockSize}.");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* ScalePlane(byte* matrix, long rows, long cols) => matrix + (Strips(rows) * (cols / BlockMatrix.BlockSize) * BlockMatrix<Q4_KFormat>.StripBlockBytes);

    /// <summary>The record holding block <paramref name="block"/> of strip <paramref name="strip"/> (<paramref name="blocks"/> blocks of 32 a row).</summary>
    /// <remarks>Counts are never negative; dividing them as unsigned makes each division one shift (signed division by 8 takes four instructions, and the kernels do this every block).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Record(byte* plane, nint strip, int blocks, int block) =>
        plane + (((strip * (nint)((uint)blocks / BlocksPerSuper)) + (nint)((uint)block / BlocksPerSuper)) * RecordBytes);

    /// <summary>Eight unsigned bytes as f32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Widen(byte* eight) => Avx2.IsSupported
        ? Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(eight))
        : Vector256.ConvertToSingle(Vector256.WidenLower(Vector128.WidenLower(Vector128.CreateScalar(*(ulong*)eight).AsByte()).ToVector256()).AsInt32());

    /// <summary>Row <paramref name="row"/> widened to f32: d·sc·q − dmin·m, as ggml's dequantize_row_q4_K rounds it.</summary>
    public static void DequantizeRow(byte* matrix, long rows, long cols, long row, float* destination)
    {
        int blocks = (int)(cols / BlockMatrix.BlockSize);
        nint strip = (nint)(row / BlockMatrix.StripRows);
        int r = (int)(row % BlockMatrix.StripRows);
        byte* plane = ScalePlane(matrix, rows, cols);
        for (int b = 0; b < blocks; b++)
        {
            byte* record = Record(plane, strip, blocks, b);
            float d = ((float*)record)[r] * record[ScalesAt + ((b % BlocksPerSuper) * BlockMatrix.StripRows) + r];
            float m = ((float*)record)[BlockMatrix.StripRows + r] * record[MinsAt + ((b % BlocksPerSuper) * BlockMatrix.StripRows) + r];
            byte* stripBlock = matrix + (((strip * blocks) + b) * BlockMatrix<Q4_KFormat>.StripBlockBytes);
            for (int i = 0; i < BlockMatrix.BlockSize; i++)
            {
                destination[(b * BlockMatrix.BlockSize) + i] = (d * Q4_KFormat.StripQuant(stripBlock, r, i)) - m;
            }
        }
    }

    /// <summary>
    /// Lays out a [rows, cols] matrix given as GGUF Q4_K super-blocks (row-major) into
    /// <paramref name="destination"/> (<see cref="Bytes"/> long; padding rows zero).
    /// </summary>
    public static void FromGgufBlocks(byte* gguf, long rows, long cols, byte* destination)
    {
        int blocks = (int)(cols / BlockMatrix.BlockSize);
        long supers = cols / SuperBlockSize;
        new Span<byte>(destination, checked((int)Bytes(rows, cols))).Clear();
        byte* plane = ScalePlane(destination, rows, cols);
        byte* ordered = stackalloc byte[BlockMatrix.BlockSize / 2];
        for (long row = 0; row < rows; row++)
        {
            nint strip = (nint)(row / BlockMatrix.StripRows);
            int r = (int)(row % BlockMatrix.StripRows);
            for (long s = 0; s < supers; s++)
            {
                byte* source = gguf + (((row * supers) + s) * GgufBlockBytes);
                byte* record = Record(plane, strip, blocks, (int)(s * BlocksPerSuper));
                ((float*)record)[r] = ElementTypes.F16ToSingle(*(ushort*)source);
                ((float*)record)[BlockMatrix.StripRows + r] = ElementTypes.F16ToSingle(*(ushort*)(source + 2));
                byte* packed = source + 4;
                byte* qs = source + 16;
                for (int j = 0; j < BlocksPerSuper; j++)
                {
                    (int sc, int m) = ScaleMin(j, packed);
                    record[ScalesAt + (j * BlockMatrix.StripRows) + r] = (byte)sc;
                    record[MinsAt + (j * BlockMatrix.StripRows) + r] = (byte)m;
                    // Block j's 32 nibbles: the low (even j) or high (odd j) halves of bytes 32·(j/2)..+31,
                    // reordered as Q4_0 orders a block (element l low, element l + 16 high).
                    byte* q = qs + (32 * (j / 2));
                    int shift = 4 * (j % 2);
                    for (int l = 0; l < 16; l++)
                    {
                        ordered[l] = (byte)(((q[l] >> shift) & 0x0F) | (((q[l + 16] >> shift) & 0x0F) << 4));
                    }
                    int b = (int)(s * BlocksPerSuper) + j;
                    Q4_KFormat.WriteStripRow(destination + (((strip * blocks) + b) * BlockMatrix<Q4_KFormat>.StripBlockBytes), r, ordered);
                }
            }
        }
    }

    /// <summary>ggml's get_scale_min_k4: block <paramref name="j"/>'s 6-bit scale and min from the 12 packed bytes.</summary>
    private static (int Scale, int Min) ScaleMin(int j, byte* q) => j < 4
        ? (q[j] & 63, q[j + 4] & 63)
        : ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4));
}
