using System.Runtime.InteropServices;
using AscendCC.Device;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Inference;

/// <summary>
/// Converts checkpoint tensors to the precision kept in HBM: F16 and BF16 round to nearest even;
/// Q8_0, Q4_0 and Q4_K are quantized as llama.cpp's reference quantizers do (or kept, when the tensor
/// already is in that format) and laid out as the device reads them (see <see cref="ToQ8_0"/>).
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
        if (precision == WeightPrecision.Q4_0)
        {
            return ToQ4_0(tensor);
        }
        if (precision == WeightPrecision.Q4_K)
        {
            return ToQ4_K(tensor);
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
            case WeightPrecision.Q8_0 or WeightPrecision.Q4_0 or WeightPrecision.Q4_K:
                throw new ArgumentException($"{precision} blocks run along a matrix's rows, so it needs the shape: use Convert(TensorData, WeightPrecision.{precision}).", nameof(precision));
            default:
                throw new ArgumentOutOfRangeException(nameof(precision), precision, "unknown weight precision");
        }
    }

    /// <summary>
    /// A [rows, cols] matrix in bf16 as the device's batched programs keep their layer matrices
    /// (<see cref="PanelWeightLayout"/>: panels of 32 rows stored column by column); the values are
    /// <see cref="Convert"/>'s BF16 ones.
    /// </summary>
    /// <exception cref="ArgumentException">The tensor is not a matrix, or its rows are not whole panels of 32.</exception>
    public static byte[] ToBF16Panels(TensorData tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Shape.Count != 2)
        {
            throw new ArgumentException($"a BF16 panel matrix needs a 2-d tensor, not shape [{string.Join(", ", tensor.Shape)}]", nameof(tensor));
        }
        return PanelWeightLayout.FromBF16Rows(Convert(tensor, WeightPrecision.BF16), checked((int)tensor.Shape[0]), checked((int)tensor.Shape[1]));
    }

    /// <summary>
    /// A [rows, cols] matrix as the device keeps Q8_0 (<see cref="QuantizedWeightLayout"/>: strips of
    /// eight rows laid out for int8 dot products, then the scales); the value is d·q. A Q8_0 tensor (a
    /// GGUF file's blocks) only has its blocks moved into that form, exactly; any other is quantized per block of 32 exactly
    /// as llama.cpp's quantize_row_q8_0_ref: d = max|x|/127 (stored as f16), q = round(x·(1/d)) with
    /// halves away from zero (<see cref="GgufQuantization.QuantizeQ8_0"/>).
    /// </summary>
    public static byte[] ToQ8_0(TensorData tensor) => ToPlanes(tensor, TensorDType.Q8_0);

    /// <summary>
    /// A [rows, cols] matrix as the device keeps Q4_0 (<see cref="QuantizedWeightLayout"/>). A Q4_0
    /// tensor's blocks are moved exactly; any other is quantized as llama.cpp's quantize_row_q4_0_ref
    /// (<see cref="GgufQuantization.QuantizeQ4_0"/>).
    /// </summary>
    public static byte[] ToQ4_0(TensorData tensor) => ToPlanes(tensor, TensorDType.Q4_0);

    /// <summary>
    /// <see cref="ToQ4_0"/> with the strips in pairs (<see cref="QuantizedWeightLayout.Q4_0PanelsFromQ4_0"/>):
    /// what a batched program keeps its Q4_0 layer matrices in. The rows must be whole panels of 16.
    /// </summary>
    public static byte[] ToQ4_0Panels(TensorData tensor) =>
        QuantizedWeightLayout.Q4_0PanelsFromQ4_0(ToQ4_0(tensor), tensor.Shape[0], tensor.Shape[1]);

    /// <summary>
    /// <see cref="ToQ4_K"/> in panels of 16 rows (<see cref="QuantizedWeightLayout.Q4_KPanelsFromQ4_K"/>):
    /// what a batched program keeps its Q4_K layer matrices in. The rows must be whole panels of 16.
    /// </summary>
    public static byte[] ToQ4_KPanels(TensorData tensor) =>
        QuantizedWeightLayout.Q4_KPanelsFromQ4_K(ToQ4_K(tensor), tensor.Shape[0], tensor.Shape[1]);

    /// <summary>
    /// A [rows, cols] matrix as the device keeps Q4_K (<see cref="QuantizedWeightLayout.Q4_KFromGguf"/>).
    /// A Q4_K tensor's super-blocks are moved exactly; any other (Q6_K included) is quantized as
    /// llama.cpp's quantize_row_q4_K_ref (<see cref="GgufQuantization.QuantizeQ4_K"/>).
    /// </summary>
    public static byte[] ToQ4_K(TensorData tensor) => ToPlanes(tensor, TensorDType.Q4_K);

    private static byte[] ToPlanes(TensorData tensor, TensorDType format)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Shape.Count != 2)
        {
            throw new ArgumentException($"tensor '{tensor.Name}' has shape [{string.Join(", ", tensor.Shape)}]; {format} keeps matrices only (norms and biases stay F32).", nameof(tensor));
        }
        long rows = tensor.Shape[0], cols = tensor.Shape[1];
        int blockValues = TensorDTypes.BlockValues(format);
        if (cols % blockValues != 0)
        {
            throw new ArgumentException(
                $"tensor '{tensor.Name}' has rows of {cols} weights, not whole {format} blocks of {blockValues}, so it cannot be kept in {format}; load this model with {(format == TensorDType.Q4_K ? "WeightPrecision.Q8_0 or Q4_0 (blocks of 32), or " : "")}WeightPrecision.BF16 (or F16, F32).",
                nameof(tensor));
        }
        int blocksPerRow = (int)(cols / blockValues), blockBytes = TensorDTypes.BlockBytes(format);
        ReadOnlyMemory<byte> blocks = tensor.Bytes;
        if (tensor.DType != format)
        {
            float[] values = tensor.ToFloat32();
            byte[] quantized = new byte[checked(rows * blocksPerRow * blockBytes)];
            // Rows are whole blocks, so the matrix is one run of blocks, GGUF's row-major order (Q4_K
            // spreads its slow reference search over every core itself).
            switch (format)
            {
                case TensorDType.Q8_0:
                    GgufQuantization.QuantizeQ8_0(values, quantized);
                    break;
                case TensorDType.Q4_0:
                    GgufQuantization.QuantizeQ4_0(values, quantized);
                    break;
                default:
                    GgufQuantization.QuantizeQ4_K(values, quantized);
                    break;
            }
            blocks = quantized;
        }
        return format switch
        {
            TensorDType.Q8_0 => QuantizedWeightLayout.Q8_0FromGguf(blocks.Span, rows, cols),
            TensorDType.Q4_0 => QuantizedWeightLayout.Q4_0FromGguf(blocks.Span, rows, cols),
            _ => QuantizedWeightLayout.Q4_KFromGguf(blocks.Span, rows, cols),
        };
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
