using System.Runtime.InteropServices;
using AscendCC.Runtime.Models;

namespace AscendCC.Runtime.Inference;

/// <summary>Converts checkpoint tensors to the precision kept in HBM (round to nearest even).</summary>
public static class WeightConversion
{
    /// <summary>The tensor's values as little-endian bytes of <paramref name="precision"/>.</summary>
    public static byte[] Convert(TensorData tensor, WeightPrecision precision)
    {
        ArgumentNullException.ThrowIfNull(tensor);
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
            default:
                throw new ArgumentOutOfRangeException(nameof(precision), precision, "unknown weight precision");
        }
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
