using System.Buffers.Binary;

namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// ggml's block formats to float32 and back, bit for bit as ggml-quants.c's reference rows
/// (dequantize_row_q8_0, _q4_0, _q4_K, _q6_K; quantize_row_q8_0_ref). Allocation-free.
/// </summary>
public static class GgufQuantization
{
    /// <summary>
    /// Widens <paramref name="source"/> (whole blocks of <paramref name="type"/>) into
    /// <paramref name="destination"/>, which must hold exactly the blocks' elements.
    /// </summary>
    public static void Dequantize(GgufTensorType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        int blockBytes = GgufTensorTypes.BlockBytes(type);
        int blockSize = GgufTensorTypes.BlockSize(type);
        if (source.Length % blockBytes != 0 || (long)source.Length / blockBytes * blockSize != destination.Length)
        {
            throw new ArgumentException($"{source.Length} bytes of {type} (blocks of {blockBytes} bytes, {blockSize} values) do not fill {destination.Length} floats; pass whole blocks and a destination of their element count.", nameof(destination));
        }
        switch (type)
        {
            case GgufTensorType.F32:
                TensorDTypes.ToFloat32(TensorDType.F32, source, destination);
                break;
            case GgufTensorType.F16:
                TensorDTypes.ToFloat32(TensorDType.F16, source, destination);
                break;
            case GgufTensorType.BF16:
                TensorDTypes.ToFloat32(TensorDType.BF16, source, destination);
                break;
            case GgufTensorType.Q8_0:
                DequantizeQ8_0(source, destination);
                break;
            case GgufTensorType.Q4_0:
                DequantizeQ4_0(source, destination);
                break;
            case GgufTensorType.Q4_K:
                DequantizeQ4_K(source, destination);
                break;
            case GgufTensorType.Q6_K:
                DequantizeQ6_K(source, destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, $"GGUF tensor type {GgufTensorTypes.Name(type)} is not read.");
        }
    }

    /// <summary>
    /// Quantizes whole blocks of 32 values to Q8_0 as ggml's quantize_row_q8_0_ref: d = max|x| / 127
    /// stored as f16, q = round(x / d) half away from zero (the reciprocal is of the f32 d, as ggml does).
    /// </summary>
    public static void QuantizeQ8_0(ReadOnlySpan<float> source, Span<byte> destination)
    {
        if (source.Length % 32 != 0 || destination.Length != source.Length / 32 * GgufTensorTypes.Q8_0BlockBytes)
        {
            throw new ArgumentException($"{source.Length} values do not make whole Q8_0 blocks of 32 filling {destination.Length} bytes; pass a multiple of 32 values and {GgufTensorTypes.Q8_0BlockBytes} bytes per block.", nameof(destination));
        }
        for (int b = 0; b < source.Length / 32; b++)
        {
            ReadOnlySpan<float> x = source.Slice(b * 32, 32);
            Span<byte> block = destination.Slice(b * GgufTensorTypes.Q8_0BlockBytes, GgufTensorTypes.Q8_0BlockBytes);
            float amax = 0;
            foreach (float v in x)
            {
                amax = MathF.Max(amax, MathF.Abs(v));
            }
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
            for (int j = 0; j < 32; j++)
            {
                block[2 + j] = unchecked((byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero));
            }
        }
    }

    /// <summary>
    /// Quantizes whole blocks of 32 values to Q4_0 as ggml's quantize_row_q4_0_ref: the value of
    /// largest magnitude m (its sign kept) gives d = m / −8 stored as f16, and each value becomes the
    /// nibble min(15, (int)(x·(1/d) + 8.5)), truncated toward zero as C's cast does; byte j holds
    /// value j in its low nibble and value j + 16 in its high one.
    /// </summary>
    public static void QuantizeQ4_0(ReadOnlySpan<float> source, Span<byte> destination)
    {
        if (source.Length % 32 != 0 || destination.Length != source.Length / 32 * GgufTensorTypes.Q4_0BlockBytes)
        {
            throw new ArgumentException($"{source.Length} values do not make whole Q4_0 blocks of 32 filling {destination.Length} bytes; pass a multiple of 32 values and {GgufTensorTypes.Q4_0BlockBytes} bytes per block.", nameof(destination));
        }
        for (int b = 0; b < source.Length / 32; b++)
        {
            ReadOnlySpan<float> x = source.Slice(b * 32, 32);
            Span<byte> block = destination.Slice(b * GgufTensorTypes.Q4_0BlockBytes, GgufTensorTypes.Q4_0BlockBytes);
            float amax = 0, max = 0;
            foreach (float v in x)
            {
                if (amax < MathF.Abs(v))
                {
                    amax = MathF.Abs(v);
                    max = v;
                }
            }
            float d = max / -8f;
            float id = d != 0 ? 1f / d : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
            for (int j = 0; j < 16; j++)
            {
                int low = Math.Min(15, (int)((x[j] * id) + 8.5f));
                int high = Math.Min(15, (int)((x[j + 16] * id) + 8.5f));
                block[2 + j] = (byte)(low | (high << 4));
            }
        }
    }

    private static float Half16(ReadOnlySpan<byte> bytes) => (float)BinaryPrimitives.ReadHalfLittleEndian(bytes);

    private static void DequantizeQ8_0(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int b = 0, o = 0; b < source.Length; b += GgufTensorTypes.Q8_0BlockBytes, o += 32)
        {
            float d = Half16(source.Slice(b, 2));
            ReadOnlySpan<byte> qs = source.Slice(b + 2, 32);
            Span<float> y = destination.Slice(o, 32);
            for (int j = 0; j < 32; j++)
            {
                y[j] = (sbyte)qs[j] * d;
            }
        }
    }

    private static void DequantizeQ4_0(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int b = 0, o = 0; b < source.Length; b += GgufTensorTypes.Q4_0BlockBytes, o += 32)
        {
            float d = Half16(source.Slice(b, 2));
            ReadOnlySpan<byte> qs = source.Slice(b + 2, 16);
            Span<float> y = destination.Slice(o, 32);
            // Low nibbles are elements 0..15, high nibbles 16..31 (not interleaved).
            for (int j = 0; j < 16; j++)
            {
                y[j] = ((qs[j] & 0x0F) - 8) * d;
                y[j + 16] = ((qs[j] >> 4) - 8) * d;
            }
        }
    }

    private static void DequantizeQ4_K(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int b = 0, o = 0; b < source.Length; b += GgufTensorTypes.Q4_KBlockBytes, o += 256)
        {
            float d = Half16(source.Slice(b, 2));
            float min = Half16(source.Slice(b + 2, 2));
            ReadOnlySpan<byte> scales = source.Slice(b + 4, 12);
            ReadOnlySpan<byte> q = source.Slice(b + 16, 128);
            Span<float> y = destination.Slice(o, 256);
            for (int j = 0, isc = 0; j < 256; j += 64, isc += 2)
            {
                ScaleMinK4(isc, scales, out int sc1, out int m1);
                ScaleMinK4(isc + 1, scales, out int sc2, out int m2);
                float d1 = d * sc1, dm1 = min * m1, d2 = d * sc2, dm2 = min * m2;
                ReadOnlySpan<byte> qq = q.Slice(j / 2, 32);
                for (int l = 0; l < 32; l++)
                {
                    y[j + l] = d1 * (qq[l] & 0xF) - dm1;
                    y[j + 32 + l] = d2 * (qq[l] >> 4) - dm2;
                }
            }
        }
    }

    /// <summary>ggml's get_scale_min_k4: eight 6-bit scales and eight 6-bit mins packed in 12 bytes.</summary>
    private static void ScaleMinK4(int j, ReadOnlySpan<byte> q, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    private static void DequantizeQ6_K(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int b = 0, o = 0; b < source.Length; b += GgufTensorTypes.Q6_KBlockBytes, o += 256)
        {
            ReadOnlySpan<byte> block = source.Slice(b, GgufTensorTypes.Q6_KBlockBytes);
            float d = Half16(block.Slice(208, 2));
            for (int n = 0; n < 2; n++)
            {
                ReadOnlySpan<byte> ql = block.Slice(n * 64, 64);
                ReadOnlySpan<byte> qh = block.Slice(128 + n * 32, 32);
                ReadOnlySpan<byte> sc = block.Slice(192 + n * 8, 8);
                Span<float> y = destination.Slice(o + n * 128, 128);
                for (int l = 0; l < 32; l++)
                {
                    int isc = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * (sbyte)sc[isc] * q1;
                    y[l + 32] = d * (sbyte)sc[isc + 2] * q2;
                    y[l + 64] = d * (sbyte)sc[isc + 4] * q3;
                    y[l + 96] = d * (sbyte)sc[isc + 6] * q4;
                }
            }
        }
    }
}
