using System.Buffers.Binary;

namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// ggml's block formats to float32 and back, bit for bit as ggml-quants.c's reference rows
/// (dequantize_row_q8_0, _q4_0, _q4_1, _q5_0, _q5_1, _q2_K, _q3_K, _q4_K, _q5_K, _q6_K, _iq4_nl, _iq4_xs;
/// quantize_row_q8_0_ref, _q4_0_ref, _q4_K_ref). Allocation-free.
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
            case GgufTensorType.Q4_1:
                DequantizeQ4_1(source, destination);
                break;
            case GgufTensorType.Q5_0:
                DequantizeQ5(source, destination, withMin: false);
                break;
            case GgufTensorType.Q5_1:
                DequantizeQ5(source, destination, withMin: true);
                break;
            case GgufTensorType.Q2_K:
                DequantizeQ2_K(source, destination);
                break;
            case GgufTensorType.Q3_K:
                DequantizeQ3_K(source, destination);
                break;
            case GgufTensorType.IQ4_NL:
                DequantizeIQ4_NL(source, destination);
                break;
            case GgufTensorType.IQ4_XS:
                DequantizeIQ4_XS(source, destination);
                break;
            case GgufTensorType.Q4_K:
                DequantizeK4(source, destination, fifthBit: false);
                break;
            case GgufTensorType.Q5_K:
                DequantizeK4(source, destination, fifthBit: true);
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

    /// <summary>
    /// Quantizes whole super-blocks of 256 values to Q4_K byte for byte as ggml's
    /// quantize_row_q4_K_ref, which llama.cpp's quantizer (llama_model_quantize) uses for Q4_K
    /// tensors when it has no importance matrix: so a Q4_K file made here from f32 weights is the one
    /// llama-quantize writes. Each block of 144 bytes is f16 d, f16 dmin, 12 bytes of packed 6-bit
    /// scales and mins (the inverse of get_scale_min_k4), then 128 bytes of nibbles.
    /// </summary>
    /// <remarks>
    /// Per sub-block of 32, make_qkx2_quants(32, 15, x, av_x + |x|, …, −1, 0.1, 20) fits a scale and
    /// a min by weighted least squares over 21 trial grids (av_x = √(Σx²/32)); the eight scales and
    /// mins become 6-bit multiples of d = max scale / 63 and dmin = max min / 63 (stored as f16), and
    /// every value is then requantized to min(15, max(0, round((x + dmin·m) / (d·sc)))) against those
    /// rounded scales; a sub-block whose d·sc is zero keeps the fit's own quants, as ggml does. Byte j
    /// of each 32-byte group g holds element 64g + j in its low nibble and 64g + 32 + j in its high one.
    /// All arithmetic is float, in ggml's order, with no fused multiply-adds: the x86-64 builds of
    /// ggml-base (LLamaSharp 0.30.0's noavx, avx, avx2 and avx512 libggml-base.so alike) compile this
    /// code for baseline SSE2 and contain no FMA instruction, so a·b + c rounds twice there as here.
    /// Fusing any of the fit's trial error, its Σw·l·x, its determinant or Σx² makes a few of the
    /// 5760 super-blocks in Q4_KLlamaCppTests differ from llama.cpp's; the unfused form matches all.
    /// (A build that contracts to FMA, as GCC may on aarch64, can differ from both in rare ties.)
    /// </remarks>
    public static unsafe void QuantizeQ4_K(ReadOnlySpan<float> source, Span<byte> destination)
    {
        const int blockBytes = GgufTensorTypes.Q4_KBlockBytes;
        if (source.Length % 256 != 0 || destination.Length != source.Length / 256 * blockBytes)
        {
            throw new ArgumentException($"{source.Length} values do not make whole Q4_K super-blocks of 256 filling {destination.Length} bytes; pass a multiple of 256 values and {blockBytes} bytes per super-block.", nameof(destination));
        }
        // Super-blocks quantize independently, so a large input's runs of them go to every core: the
        // reference search is slow (a 1.1B model's matrices took 67 s on one core here, 38 s on two).
        const int superBlocksPerRun = 256;
        int superBlocks = source.Length / 256;
        if (superBlocks <= superBlocksPerRun)
        {
            QuantizeQ4_KBlocks(source, destination);
            return;
        }
        fixed (float* x = source)
        fixed (byte* y = destination)
        {
            nint px = (nint)x, py = (nint)y;
            Parallel.For(0, (superBlocks + superBlocksPerRun - 1) / superBlocksPerRun, run =>
            {
                int first = run * superBlocksPerRun, count = Math.Min(superBlocksPerRun, superBlocks - first);
                QuantizeQ4_KBlocks(new ReadOnlySpan<float>((float*)px + ((nint)first * 256), count * 256), new Span<byte>((byte*)py + ((nint)first * blockBytes), count * blockBytes));
            });
        }
    }

    private static void QuantizeQ4_KBlocks(ReadOnlySpan<float> source, Span<byte> destination)
    {
        const int blockBytes = GgufTensorTypes.Q4_KBlockBytes;
        Span<byte> quants = stackalloc byte[256];
        Span<byte> trial = stackalloc byte[32];
        Span<float> weights = stackalloc float[32];
        Span<float> scales = stackalloc float[8];
        Span<float> mins = stackalloc float[8];
        for (int b = 0; b < source.Length / 256; b++)
        {
            ReadOnlySpan<float> x = source.Slice(b * 256, 256);
            Span<byte> block = destination.Slice(b * blockBytes, blockBytes);
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 8; j++)
            {
                ReadOnlySpan<float> xj = x.Slice(32 * j, 32);
                float sumX2 = 0;
                for (int l = 0; l < 32; l++)
                {
                    sumX2 += xj[l] * xj[l];
                }
                float avX = MathF.Sqrt(sumX2 / 32);
                for (int l = 0; l < 32; l++)
                {
                    weights[l] = avX + MathF.Abs(xj[l]);
                }
                scales[j] = MakeQkx2Quants(15, xj, weights, quants.Slice(32 * j, 32), out mins[j], trial, -1f, 0.1f, 20);
                if (scales[j] > maxScale)
                {
                    maxScale = scales[j];
                }
                if (mins[j] > maxMin)
                {
                    maxMin = mins[j];
                }
            }

            float invScale = maxScale > 0 ? 63f / maxScale : 0f;
            float invMin = maxMin > 0 ? 63f / maxMin : 0f;
            Span<byte> packed = block.Slice(4, 12);
            for (int j = 0; j < 8; j++)
            {
                // uint8_t ls = nearest_int(…): C keeps the low byte before MIN(63, ·).
                int ls = Math.Min(63, (int)unchecked((byte)NearestInt(invScale * scales[j])));
                int lm = Math.Min(63, (int)unchecked((byte)NearestInt(invMin * mins[j])));
                if (j < 4)
                {
                    packed[j] = (byte)ls;
                    packed[j + 4] = (byte)lm;
                }
                else
                {
                    packed[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
                    packed[j - 4] |= (byte)((ls >> 4) << 6);
                    packed[j] |= (byte)((lm >> 4) << 6);
                }
            }
            var d16 = (Half)(maxScale / 63f);
            var dmin16 = (Half)(maxMin / 63f);
            BinaryPrimitives.WriteHalfLittleEndian(block, d16);
            BinaryPrimitives.WriteHalfLittleEndian(block.Slice(2), dmin16);

            float dAll = (float)d16, dminAll = (float)dmin16;
            for (int j = 0; j < 8; j++)
            {
                ScaleMinK4(j, packed, out int sc, out int m);
                float d = dAll * sc;
                if (d == 0)
                {
                    continue;
                }
                float dm = dminAll * m;
                for (int l = 0; l < 32; l++)
                {
                    quants[32 * j + l] = (byte)Math.Clamp(NearestInt((x[32 * j + l] + dm) / d), 0, 15);
                }
            }

            Span<byte> q = block.Slice(16, 128);
            for (int j = 0; j < 256; j += 64)
            {
                for (int l = 0; l < 32; l++)
                {
                    q[j / 2 + l] = (byte)(quants[j + l] | (quants[j + l + 32] << 4));
                }
            }
        }
    }

    /// <summary>
    /// ggml's nearest_int: round to nearest, ties to even, by adding 1.5·2^23 and reading the
    /// mantissa. Exact for |fval| ≤ 2^22 − 1; beyond that (ggml only asserts in debug builds) it
    /// returns the same meaningless value ggml does, which the callers' clamps then bound.
    /// </summary>
    private static int NearestInt(float fval)
    {
        float val = fval + 12582912f;
        return (BitConverter.SingleToInt32Bits(val) & 0x007FFFFF) - 0x00400000;
    }

    /// <summary>
    /// ggml's make_qkx2_quants with use_mad false: quants <paramref name="l"/> in [0, nmax] and the
    /// scale (returned) and min (<paramref name="theMin"/>, as a non-negative offset) minimising the
    /// weighted squared error, over the grid from the range and <paramref name="nstep"/> + 1 trial
    /// grids of (nmax + rmin + rdelta·is) steps, each refitted by least squares.
    /// </summary>
    private static float MakeQkx2Quants(int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> l, out float theMin, Span<byte> laux, float rmin, float rdelta, int nstep)
    {
        int n = x.Length;
        float min = x[0];
        float max = x[0];
        float sumW = weights[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min)
            {
                min = x[i];
            }
            if (x[i] > max)
            {
                max = x[i];
            }
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0)
        {
            min = 0;
        }
        if (max == min)
        {
            l.Slice(0, n).Clear();
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            l[i] = (byte)Math.Max(0, Math.Min(nmax, NearestInt(iscale * (x[i] - min))));
            float diff = scale * l[i] + min - x[i];
            diff *= diff;
            bestError += weights[i] * diff;
        }
        for (int step = 0; step <= nstep; step++)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++)
            {
                int q = Math.Max(0, Math.Min(nmax, NearestInt(iscale * (x[i] - min))));
                laux[i] = (byte)q;
                float w = weights[i];
                sumL += w * q;
                sumL2 += w * q * q;
                sumXL += w * q * x[i];
            }
            float det = sumW * sumL2 - sumL * sumL;
            if (det > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / det;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / det;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float curError = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * laux[i] + thisMin - x[i];
                    diff *= diff;
                    curError += weights[i] * diff;
                }
                if (curError < bestError)
                {
                    laux.Slice(0, n).CopyTo(l);
                    bestError = curError;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
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

    // ggml's dequantize_row_q4_1: low nibbles are elements 0..15, high nibbles 16..31; y = q·d + m.
    private static void DequantizeQ4_1(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int b = 0, o = 0; b < source.Length; b += GgufTensorTypes.Q4_1BlockBytes, o += 32)
        {
            float d = Half16(source.Slice(b, 2));
            float m = Half16(source.Slice(b + 2, 2));
            ReadOnlySpan<byte> qs = source.Slice(b + 4, 16);
            Span<float> y = destination.Slice(o, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = ((qs[j] & 0x0F) * d) + m;
                y[j + 16] = ((qs[j] >> 4) * d) + m;
            }
        }
    }

    // ggml's dequantize_row_q5_0 and _q5_1: the nibbles as Q4_0/Q4_1 order them, each with a fifth bit
    // from the block's 32-bit qh (bit j for element j); Q5_0's q is centred, (q − 16)·d, Q5_1's q·d + m.
    private static void DequantizeQ5(ReadOnlySpan<byte> source, Span<float> destination, bool withMin)
    {
        int blockBytes = withMin ? GgufTensorTypes.Q5_1BlockBytes : GgufTensorTypes.Q5_0BlockBytes;
        for (int b = 0, o = 0; b < source.Length; b += blockBytes, o += 32)
        {
            float d = Half16(source.Slice(b, 2));
            float m = withMin ? Half16(source.Slice(b + 2, 2)) : 0f;
            int at = b + (withMin ? 4 : 2);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(source.Slice(at, 4));
            ReadOnlySpan<byte> qs = source.Slice(at + 4, 16);
            Span<float> y = destination.Slice(o, 32);
            for (int j = 0; j < 16; j++)
            {
                int x0 = (qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
                int x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
                if (withMin)
                {
                    y[j] = (x0 * d) + m;
                    y[j + 16] = (x1 * d) + m;
                }
                else
                {
                    y[j] = (x0 - 16) * d;
                    y[j + 16] = (x1 - 16) * d;
                }
            }
        }
    }

    // ggml's dequantize_row_q2_K: per 128 weights, four 2-bit planes of the same 32 bytes (shift 0, 2,
    // 4, 6), each plane two runs of 16 with their own byte of scale (low nibble) and min (high nibble):
    // y = (d·sc)·q − dmin·m.
    private static void DequantizeQ2_K(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int b = 0, o = 0; b < source.Length; b += GgufTensorTypes.Q2_KBlockBytes, o += 256)
        {
            ReadOnlySpan<byte> scales = source.Slice(b, 16);
            float d = Half16(source.Slice(b + 80, 2));
            float min = Half16(source.Slice(b + 82, 2));
            int y = o, isc = 0;
            for (int n = 0; n < 2; n++)
            {
                ReadOnlySpan<byte> q = source.Slice(b + 16 + (n * 32), 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    for (int half = 0; half < 32; half += 16)
                    {
                        byte sc = scales[isc++];
                        float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                        for (int l = 0; l < 16; l++)
                        {
                            destination[y++] = (dl * ((q[half + l] >> shift) & 3)) - ml;
                        }
                    }
                }
            }
        }
    }

    // ggml's dequantize_row_q3_K: Q2_K's 2-bit planes, a third bit from hmask (clear means 4 less),
    // sixteen 6-bit scales (low nibbles in bytes 0..7, their top two bits in bytes 8..11) less 32:
    // y = (d·(sc − 32))·(q − 4·[bit clear]).
    private static void DequantizeQ3_K(ReadOnlySpan<byte> source, Span<float> destination)
    {
        Span<sbyte> sc = stackalloc sbyte[16];
        for (int b = 0, o = 0; b < source.Length; b += GgufTensorTypes.Q3_KBlockBytes, o += 256)
        {
            ReadOnlySpan<byte> hm = source.Slice(b, 32);
            ReadOnlySpan<byte> packed = source.Slice(b + 96, 12);
            float dAll = Half16(source.Slice(b + 108, 2));
            for (int j = 0; j < 16; j++)
            {
                int low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
                int high = (packed[8 + (j % 4)] >> (2 * (j / 4))) & 3;
                sc[j] = (sbyte)((low | (high << 4)) - 32);
            }
            int y = o, isc = 0, m = 1;
            for (int n = 0; n < 2; n++)
            {
                ReadOnlySpan<byte> q = source.Slice(b + 32 + (n * 32), 32);
                for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                {
                    for (int half = 0; half < 32; half += 16)
                    {
                        float dl = dAll * sc[isc++];
                        for (int l = 0; l < 16; l++)
                        {
                            destination[y++] = dl * (((q[half + l] >> shift) & 3) - ((hm[half + l] & m) != 0 ? 0 : 4));
                        }
                    }
                }
            }
        }
    }

    /// <summary>ggml's kvalues_iq4nl: IQ4_NL's and IQ4_XS's sixteen levels, denser near zero.</summary>
    private static ReadOnlySpan<sbyte> IQ4Levels => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    // ggml's dequantize_row_iq4_nl: Q4_0's nibble order, each nibble indexing IQ4Levels; y = d·level.
    private static void DequantizeIQ4_NL(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int b = 0, o = 0; b < source.Length; b += GgufTensorTypes.IQ4_NLBlockBytes, o += 32)
        {
            float d = Half16(source.Slice(b, 2));
            ReadOnlySpan<byte> qs = source.Slice(b + 2, 16);
            Span<float> y = destination.Slice(o, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = d * IQ4Levels[qs[j] & 0xF];
                y[j + 16] = d * IQ4Levels[qs[j] >> 4];
            }
        }
    }

    // ggml's dequantize_row_iq4_xs: eight IQ4_NL-ordered blocks of 32, each with a 6-bit scale (low
    // nibble from scales_l, top two bits from scales_h) less 32: y = (d·(ls − 32))·level.
    private static void DequantizeIQ4_XS(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int b = 0, o = 0; b < source.Length; b += GgufTensorTypes.IQ4_XSBlockBytes, o += 256)
        {
            float d = Half16(source.Slice(b, 2));
            int scalesHigh = BinaryPrimitives.ReadUInt16LittleEndian(source.Slice(b + 2, 2));
            ReadOnlySpan<byte> scalesLow = source.Slice(b + 4, 4);
            for (int ib = 0; ib < 8; ib++)
            {
                int ls = ((scalesLow[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((scalesHigh >> (2 * ib)) & 3) << 4);
                float dl = d * (ls - 32);
                ReadOnlySpan<byte> qs = source.Slice(b + 8 + (ib * 16), 16);
                Span<float> y = destination.Slice(o + (ib * 32), 32);
                for (int j = 0; j < 16; j++)
                {
                    y[j] = dl * IQ4Levels[qs[j] & 0xF];
                    y[j + 16] = dl * IQ4Levels[qs[j] >> 4];
                }
            }
        }
    }

    // ggml's dequantize_row_q4_K and dequantize_row_q5_K: y = d·sc·q − dmin·m per 32 weights, q the
    // nibble, and for Q5_K plus 16 where its fifth bit is set (qh bit 2i for the low nibbles of the
    // i-th 64-weight group, bit 2i + 1 for the high ones).
    private static void DequantizeK4(ReadOnlySpan<byte> source, Span<float> destination, bool fifthBit)
    {
        int blockBytes = fifthBit ? GgufTensorTypes.Q5_KBlockBytes : GgufTensorTypes.Q4_KBlockBytes;
        for (int b = 0, o = 0; b < source.Length; b += blockBytes, o += 256)
        {
            float d = Half16(source.Slice(b, 2));
            float min = Half16(source.Slice(b + 2, 2));
            ReadOnlySpan<byte> scales = source.Slice(b + 4, 12);
            ReadOnlySpan<byte> qh = fifthBit ? source.Slice(b + 16, 32) : default;
            ReadOnlySpan<byte> q = source.Slice(b + (fifthBit ? 48 : 16), 128);
            Span<float> y = destination.Slice(o, 256);
            for (int j = 0, isc = 0; j < 256; j += 64, isc += 2)
            {
                ScaleMinK4(isc, scales, out int sc1, out int m1);
                ScaleMinK4(isc + 1, scales, out int sc2, out int m2);
                float d1 = d * sc1, dm1 = min * m1, d2 = d * sc2, dm2 = min * m2;
                ReadOnlySpan<byte> qq = q.Slice(j / 2, 32);
                int low = 1 << isc, high = 2 << isc;
                for (int l = 0; l < 32; l++)
                {
                    int h1 = fifthBit && (qh[l] & low) != 0 ? 16 : 0, h2 = fifthBit && (qh[l] & high) != 0 ? 16 : 0;
                    y[j + l] = d1 * ((qq[l] & 0xF) + h1) - dm1;
                    y[j + 32 + l] = d2 * ((qq[l] >> 4) + h2) - dm2;
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
