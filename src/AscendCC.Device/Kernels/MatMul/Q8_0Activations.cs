using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Activations quantized for the int8 dot products with Q8_0 and Q4_0 weights, as llama.cpp
/// quantizes the other operand of its Q8_0×Q8_0 and Q4_0×Q8_0 vec_dot: per block of 32 values, d = max|x| / 127 and q = x / d rounded to
/// nearest (ties to even, as its vectorised quantize_row_q8_0 rounds), so |q| ≤ 127. Unlike llama.cpp,
/// d stays f32 rather than being rounded to f16: it is never stored in HBM, and the f32 scale keeps
/// the product's only quantization error the rounding of q.
/// </summary>
internal static unsafe class Q8_0Activations
{
    /// <summary>
    /// Rows [<paramref name="firstRow"/>, <paramref name="endRow"/>) of x[·, k] into q (int8) and d (f32);
    /// k a multiple of 32. Row-major, q[·, k] and d[·, k/32], when <paramref name="blockRows"/> is 0;
    /// otherwise block-major over that many rows, q[k/32, blockRows, 32] and d[k/32, blockRows] (the
    /// strip GEMV's layout). When <paramref name="offsetBinary"/> is set, q is stored as the unsigned
    /// byte q + 128 (the GEMM's dpbusd operand).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void QuantizeRows(float* x, int k, int firstRow, int endRow, sbyte* q, float* d, bool offsetBinary, int blockRows = 0)
    {
        int blocks = k / BlockMatrix.BlockSize;
        // Element offsets of block b of row r: q at b·qBlock + r·qRow, d at b·dBlock + r·dRow.
        nint qBlock = blockRows == 0 ? BlockMatrix.BlockSize : (nint)blockRows * BlockMatrix.BlockSize, qRow = blockRows == 0 ? k : BlockMatrix.BlockSize;
        nint dBlock = blockRows == 0 ? 1 : blockRows, dRow = blockRows == 0 ? blocks : 1;
        for (int r = firstRow; r < endRow; r++)
        {
            float* xr = x + (nint)r * k;
            sbyte* qr = q + (r * qRow);
            float* dr = d + (r * dRow);
            for (int b = 0; b < blocks; b++)
            {
                dr[b * dBlock] = QuantizeBlock(xr + b * BlockMatrix.BlockSize, qr + (b * qBlock), offsetBinary);
            }
        }
    }

    /// <summary>
    /// For the block-major q and d of <paramref name="rows"/> rows (see <see cref="QuantizeRows"/>), each
    /// block's start for the strip GEMV, −<paramref name="offset"/>·Σq (its products with q + offset are
    /// then exact), into s[k/32, rows], and when <paramref name="mins"/> is not null the block's min
    /// term (<see cref="QuantizedLinear.MinTerm"/> of d and Σq) into mins[k/32, rows].
    /// </summary>
    public static void BlockStarts(sbyte* q, float* d, int k, int rows, int offset, int* s, float* mins)
    {
        long count = (long)k / BlockMatrix.BlockSize * rows;
        for (long i = 0; i < count; i++)
        {
            (Vector256<short> lo, Vector256<short> hi) = Vector256.Widen(Vector256.Load(q + (i * BlockMatrix.BlockSize)));
            int sum = Vector256.Sum(lo + hi);
            s[i] = -offset * sum;
            if (mins != null)
            {
                mins[i] = QuantizedLinear.MinTerm(d[i], sum);
            }
        }
    }

    /// <summary>
    /// Per block of the GEMM's row-major q of <paramref name="rows"/> rows (stored offset-binary, q + 128,
    /// see <see cref="QuantizeRows"/>), Σ q over its 32 values, into s[rows, k/32]: the blocks with mins
    /// (Q4_K) take −d·Σq times the min.
    /// </summary>
    public static void BlockSums(sbyte* q, int k, int rows, int* s)
    {
        Vector256<sbyte> flip = Vector256.Create(unchecked((sbyte)0x80));
        long count = (long)k / BlockMatrix.BlockSize * rows;
        for (long i = 0; i < count; i++)
        {
            (Vector256<short> lo, Vector256<short> hi) = Vector256.Widen(Vector256.Load(q + (i * BlockMatrix.BlockSize)) ^ flip);
            s[i] = Vector256.Sum(lo + hi);
        }
    }

    /// <summary>Quantizes 32 values; returns their scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float QuantizeBlock(float* x, sbyte* q, bool offsetBinary)
    {
        Vector256<float> v0 = Vector256.Load(x), v1 = Vector256.Load(x + 8), v2 = Vector256.Load(x + 16), v3 = Vector256.Load(x + 24);
        Vector256<float> amax8 = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
        float amax = amax8.GetElement(0);
        for (int i = 1; i < 8; i++)
        {
            amax = MathF.Max(amax, amax8.GetElement(i));
        }
        float d = amax / 127f;
        float id = d != 0f ? 1f / d : 0f;
        Vector256<float> scale = Vector256.Create(id);
        Vector256<int> q0 = Vector256.ConvertToInt32(Vector256.Round(v0 * scale));
        Vector256<int> q1 = Vector256.ConvertToInt32(Vector256.Round(v1 * scale));
        Vector256<int> q2 = Vector256.ConvertToInt32(Vector256.Round(v2 * scale));
        Vector256<int> q3 = Vector256.ConvertToInt32(Vector256.Round(v3 * scale));
        Vector256<sbyte> packed = Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3));
        if (offsetBinary)
        {
            packed ^= Vector256.Create(unchecked((sbyte)0x80));
        }
        packed.Store(q);
        return d;
    }
}
