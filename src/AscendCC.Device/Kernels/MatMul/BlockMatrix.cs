using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// A llama.cpp block format the device keeps weights in: blocks of 32 weights along a row, each an
/// f16 scale d and 32 small integers q, weight = d·q. The formats differ only in how q is packed.
/// </summary>
internal unsafe interface IBlockFormat
{
    /// <summary>The element type the launches name it by.</summary>
    static abstract ElementType Type { get; }

    /// <summary>Bytes of one block's q in the quant plane.</summary>
    static abstract int QuantBytes { get; }

    /// <summary>The block's 32 q as int8, in element order.</summary>
    static abstract Vector256<sbyte> Load(byte* quants);

    /// <summary>q of element <paramref name="i"/> (0..31) of the block.</summary>
    static abstract int Quant(byte* quants, int i);

    /// <summary>
    /// True when q = n − 8 for an unsigned 4-bit n (Q4_0): the GEMV then multiplies n itself, an
    /// unsigned operand vpdpbusd takes as it is, and starts each block's sums at −8·Σx instead of
    /// moving signs and subtracting 8 for every weight row.
    /// </summary>
    static abstract bool OffsetBy8 { get; }

    /// <summary>The block's 32 n (q + 8), in element order; only when <see cref="OffsetBy8"/>.</summary>
    static abstract Vector256<byte> LoadOffset(byte* quants);
}

/// <summary>
/// A block-quantized [rows, cols] matrix in HBM, as two planes:
/// <code>
/// [ q: rows × (cols/32) blocks of QuantBytes, row-major ][ d: rows × (cols/32) binary16, row-major ]
/// </code>
/// Why not GGUF's interleaving of whole blocks (d, then q): there a block is 34 (Q8_0) or 18 (Q4_0)
/// bytes, so its quants sit two bytes off every vector boundary, every other Q8_0 block straddles
/// a 64-byte cache line, and the scales are scattered one per block among the data the vector loads
/// stream over. In planes each block's quants are one aligned load, a row's quants are one unbroken
/// stream for the hardware prefetchers, and eight consecutive scales of a row are one 16-byte load
/// widened to f32 together. The size is GGUF's, and converting GGUF blocks to planes moves bytes
/// only, so a file's values reach HBM bit for bit. Blocks run along the input dimension, so a
/// permutation of whole rows (as llama.cpp's converter applies to q/k) permutes whole rows of blocks.
/// The host writes this layout in <c>AscendCC.Runtime.Inference.WeightConversion</c>; the two must agree.
/// </summary>
internal static unsafe class BlockMatrix<TFormat> where TFormat : IBlockFormat
{
    /// <summary>Bytes of a [rows, cols] matrix: the quant plane and two bytes a block.</summary>
    public static long Bytes(long rows, long cols)
    {
        BlockMatrix.RequireWholeBlocks(cols, $"the {TFormat.Type} weight");
        return rows * RowQuantBytes(cols) + rows * (cols / BlockMatrix.BlockSize) * 2;
    }

    /// <summary>Bytes of one row in the quant plane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long RowQuantBytes(long cols) => cols / BlockMatrix.BlockSize * TFormat.QuantBytes;

    /// <summary>The quant plane: row r starts at <c>Quants(m) + r·RowQuantBytes(cols)</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Quants(byte* matrix) => matrix;

    /// <summary>The scale plane of a [rows, cols] matrix: row r's scales start at <c>Scales(m, rows, cols) + r·cols/32</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort* Scales(byte* matrix, long rows, long cols) => (ushort*)(matrix + rows * RowQuantBytes(cols));

    /// <summary>Row <paramref name="row"/> widened to f32: d·q, exact (an 11-bit significand times an integer of at most 8 bits).</summary>
    public static void DequantizeRow(byte* matrix, long rows, long cols, long row, float* destination)
    {
        byte* q = Quants(matrix) + row * RowQuantBytes(cols);
        ushort* d = Scales(matrix, rows, cols) + row * (cols / BlockMatrix.BlockSize);
        for (long b = 0; b < cols / BlockMatrix.BlockSize; b++)
        {
            float scale = ElementTypes.F16ToSingle(d[b]);
            for (int i = 0; i < BlockMatrix.BlockSize; i++)
            {
                destination[b * BlockMatrix.BlockSize + i] = TFormat.Quant(q + b * TFormat.QuantBytes, i) * scale;
            }
        }
    }
}

/// <summary>What every block format shares: the block length, and the refusal of widths that are not whole blocks.</summary>
internal static class BlockMatrix
{
    /// <summary>Weights per block (ggml's QK8_0 and QK4_0).</summary>
    public const int BlockSize = 32;

    /// <summary>Throws unless rows of <paramref name="cols"/> weights are whole blocks.</summary>
    public static void RequireWholeBlocks(long cols, string what)
    {
        if (cols % BlockSize != 0)
        {
            throw new ArgumentException(
                $"{what} has rows of {cols} weights, which are not whole blocks of {BlockSize}; keep this matrix in F32, F16 or BF16, or pad its input dimension to a multiple of {BlockSize}.");
        }
    }
}
