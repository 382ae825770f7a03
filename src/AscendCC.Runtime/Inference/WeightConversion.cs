using System.Runtime.InteropServices;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Inference;

/// <summary>
/// Converts checkpoint tensors to the precision kept in HBM: F16 and BF16 round to nearest even;
/// Q8_0 is quantized as llama.cpp's quantize_row_q8_0_ref does (or kept, when the tensor already is
/// Q8_0) and laid out as the device reads it (see <see cref="ToQ8_0"/>).
/// </summary>
public static class WeightConversion
{
    /// <summary>The tensor's values as little-endian bytes of <paramref name="precision"/>.</summary>
    public static byte[] Convert(TensorData tensor, WeightPrecision precision)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (precision == WeightPrecision.Q8_0)
        {
            return ToQ8_0(tensor);
        }
        if ((precision == WeightPrecision.F32 && tensor.DType == TensorDType.F32)
            || (precision == WeightPrecision.F16 && tensor.DType == TensorDType.F16)
            || (precision == WeightPrecision.BF16 && tensor.DType == TensorDType.BF16))
        {
            return tensor.Bytes.ToArray();
        }
        return FromFloat32(tensor.ToFloat32(), precision);
    }

    /// <summary>Float32 values as little-endian bytes of <paramref name="precision"/>.</summary>
    public static byte[] FromFloat32(ReadOnlySpan<float> values, WeightPrecision precision)
    {
        switch (precision)
        {
            case WeightPrecision.F32:
                return MemoryMarshal.AsBytes(values).ToArray();
            case WeightPrecision.BF16:
            {
                var half = new ushort[values.Length];
                for (int i = 0; i < values.Length; i++)
                {
                    half[i] = ToBFloat16(values[i]);
                }
                return MemoryMarshal.AsBytes(half.AsSpan()).ToArray();
            }
            case WeightPrecision.F16:
            {
                var half = new Half[values.Length];
                for (int i = 0; i < values.Length; i++)
                {
                    half[i] = (Half)values[i];
                }
                return MemoryMarshal.AsBytes(half.AsSpan()).ToArray();
            }
            case WeightPrecision.Q8_0:
                throw new ArgumentException("Q8_0 blocks run along a matrix's rows, so it needs the shape: use Convert(TensorData, WeightPrecision.Q8_0).", nameof(precision));
            default:
                throw new ArgumentOutOfRangeException(nameof(precision), precision, "unknown weight precision");
        }
    }

    /// <summary>
    /// A [rows, cols] matrix as the device keeps Q8_0 (the device's Kernels/MatMul/BlockMatrix, which
    /// must agree): first every weight's int8 q, row-major, then every block's f16 scale d,
    /// row-major, cols/32 per row; the value is d·q. A Q8_0 tensor (a GGUF file's blocks) only has
    /// its bytes moved into that order, bit for bit; any other is quantized per block of 32 exactly
    /// as llama.cpp's quantize_row_q8_0_ref: d = max|x|/127 (stored as f16), q = round(x·(1/d)) with
    /// halves away from zero (<see cref="GgufQuantization.QuantizeQ8_0"/>).
    /// </summary>
    public static byte[] ToQ8_0(TensorData tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Shape.Count != 2)
        {
            throw new ArgumentException($"tensor '{tensor.Name}' has shape [{string.Join(", ", tensor.Shape)}]; Q8_0 keeps matrices only (norms and biases stay F32).", nameof(tensor));
        }
        long rows = tensor.Shape[0], cols = tensor.Shape[1];
        if (cols % 32 != 0)
        {
            throw new ArgumentException(
                $"tensor '{tensor.Name}' has rows of {cols} weights, not whole Q8_0 blocks of 32, so it cannot be kept in Q8_0; load this model with WeightPrecision.BF16 (or F16, F32).",
                nameof(tensor));
        }
        int blocksPerRow = (int)(cols / 32);
        var planes = new byte[checked((rows * cols) + (rows * blocksPerRow * 2))];
        Span<byte> quants = planes.AsSpan(0, (int)(rows * cols));
        Span<byte> scales = planes.AsSpan((int)(rows * cols));
        byte[] rowBlocks = new byte[blocksPerRow * TensorDTypes.Q8_0BlockBytes];
        ReadOnlySpan<byte> stored = tensor.DType == TensorDType.Q8_0 ? tensor.Bytes.Span : default;
        float[]? values = tensor.DType == TensorDType.Q8_0 ? null : tensor.ToFloat32();
        for (long r = 0; r < rows; r++)
        {
            ReadOnlySpan<byte> blocks;
            if (values is null)
            {
                blocks = stored.Slice((int)(r * rowBlocks.Length), rowBlocks.Length);
            }
            else
            {
                GgufQuantization.QuantizeQ8_0(values.AsSpan((int)(r * cols), (int)cols), rowBlocks);
                blocks = rowBlocks;
            }
            for (int b = 0; b < blocksPerRow; b++)
            {
                ReadOnlySpan<byte> block = blocks.Slice(b * TensorDTypes.Q8_0BlockBytes, TensorDTypes.Q8_0BlockBytes);
                block[..2].CopyTo(scales.Slice((int)((r * blocksPerRow) + b) * 2, 2));
                block[2..].CopyTo(quants.Slice((int)((r * cols) + (b * 32)), 32));
            }
        }
        return planes;
    }

    /// <summary>float to bfloat16 bits, round to nearest even; NaN stays NaN.</summary>
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x40);
        }
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }
}
