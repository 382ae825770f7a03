using System.Runtime.CompilerServices;

namespace AscendCC.Device.Kernels;

/// <summary>
/// A Q8_0 weight matrix in HBM. The values are llama.cpp's block_q8_0 exactly: each row of
/// <c>cols</c> weights is cut into blocks of 32, and weight i of block b is <c>d_b · q_i</c> with
/// d_b an IEEE binary16 scale and q_i an int8. The bytes are laid out as two planes:
/// <code>
/// [ q: rows × cols int8, row-major ][ d: rows × (cols/32) binary16, row-major ]
/// </code>
/// Why not GGUF's own interleaving of 34-byte blocks (d, then 32 q): there every other block's 32
/// quants straddle a 64-byte cache line and sit two bytes off any vector boundary, and the scales
/// are scattered among the quants one per block. In planes, each block's quants are one aligned
/// 32-byte load, a row's quants are one unbroken stream for the hardware prefetchers, and eight
/// consecutive scales of a row are one 16-byte load widened to f32 together. The size is GGUF's
/// (34 bytes per 32 weights, 8.5 bits a weight), and converting GGUF blocks to planes moves bytes
/// only, so a Q8_0 file's values reach HBM bit for bit. Blocks run along the input dimension, so a
/// permutation of whole rows (as llama.cpp's converter applies to q/k) permutes whole rows of blocks.
/// The host writes this layout in <c>AscendCC.Runtime.Inference.WeightConversion</c>; the two must agree.
/// </summary>
internal static unsafe class Q8_0Matrix
{
    /// <summary>Weights per block (ggml's QK8_0).</summary>
    public const int BlockSize = 32;

    /// <summary>Bytes of a [rows, cols] matrix: one byte per weight and two per block.</summary>
    public static long Bytes(long rows, long cols)
    {
        RequireWholeBlocks(cols, "the Q8_0 weight");
        return rows * cols + rows * (cols / BlockSize) * 2;
    }

    /// <summary>Throws unless rows of <paramref name="cols"/> weights are whole blocks.</summary>
    public static void RequireWholeBlocks(long cols, string what)
    {
        if (cols % BlockSize != 0)
        {
            throw new ArgumentException(
                $"{what} has rows of {cols} weights, which are not whole Q8_0 blocks of {BlockSize}; keep this matrix in F32, F16 or BF16, or pad its input dimension to a multiple of {BlockSize}.");
        }
    }

    /// <summary>The quant plane: row r starts at <c>Quants(m) + r·cols</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static sbyte* Quants(byte* matrix) => (sbyte*)matrix;

    /// <summary>The scale plane of a [rows, cols] matrix: row r's scales start at <c>Scales(m, rows, cols) + r·cols/32</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort* Scales(byte* matrix, long rows, long cols) => (ushort*)(matrix + rows * cols);

    /// <summary>Row <paramref name="row"/> of a [rows, cols] matrix widened to f32: d·q, exact (an 11-bit significand times a 7-bit integer).</summary>
    public static void DequantizeRow(byte* matrix, long rows, long cols, long row, float* destination)
    {
        sbyte* q = Quants(matrix) + row * cols;
        ushort* d = Scales(matrix, rows, cols) + row * (cols / BlockSize);
        for (long b = 0; b < cols / BlockSize; b++)
        {
            float scale = ElementTypes.F16ToSingle(d[b]);
            for (int i = 0; i < BlockSize; i++)
            {
                destination[b * BlockSize + i] = q[b * BlockSize + i] * scale;
            }
        }
    }
}
