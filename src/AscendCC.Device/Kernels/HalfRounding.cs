using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Narrowing of f32 rows to bf16 or fp16 with round to nearest even, vectorised, for values the
/// device itself produces (the KV cache's keys and values). .NET exposes no vcvtneps2bf16 or
/// vcvtps2ph, so both are integer arithmetic on the binary32 bits; the vector and scalar forms are
/// the same arithmetic, so a row's result does not depend on where the vector loop ends.
/// </summary>
internal static unsafe class HalfRounding
{
    private const uint AbsMask = 0x7FFF_FFFF;
    private const uint F32Infinity = 0x7F80_0000;
    // Smallest binary32 that rounds to fp16 infinity or beyond its range: 2^16 (65520 is caught by the
    // normal path's carry into the exponent).
    private const uint F16Overflow = (127 + 16) << 23;
    // Below 2^-14 the result is an fp16 subnormal.
    private const uint F16MinNormal = 113 << 23;
    // 0.5f: adding it aligns the fp16 subnormal's bits at the bottom of the float's mantissa, and the
    // FPU's own round-to-nearest-even rounds them.
    private const uint SubnormalMagic = 126 << 23;
    // Rebias the exponent from 127 to 15 and add the rounding half (0xFFF) in one add.
    private const uint NormalRebias = unchecked((uint)((15 - 127) << 23) + 0xFFF);

    /// <summary>dst[i] = <paramref name="type"/>(src[i]) rounded to nearest even, for F16 or BF16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FromSingle(float* src, ElementType type, ushort* dst, int count)
    {
        if (type == ElementType.BF16)
        {
            ToBF16(src, dst, count);
        }
        else if (type == ElementType.F16)
        {
            ToF16(src, dst, count);
        }
        else
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "Only F16 and BF16 are narrowed here.");
        }
    }

    /// <summary>float bits to bf16 bits, round to nearest even; a NaN stays a quiet NaN of the same sign.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort BF16(uint bits)
    {
        if ((bits & AbsMask) > F32Infinity)
        {
            return (ushort)((bits >> 16) | 0x40);
        }
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    /// <summary>
    /// float bits to fp16 bits, round to nearest even (F. Giesen's float_to_half_fast3_rtne): overflow
    /// to infinity, subnormals rounded by the FPU, a NaN becomes the quiet NaN 0x7E00 of its sign.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort F16(uint bits)
    {
        uint f = bits & AbsMask;
        uint sign = (bits >> 16) & 0x8000;
        uint h;
        if (f >= F16Overflow)
        {
            h = f > F32Infinity ? 0x7E00u : 0x7C00u;
        }
        else if (f < F16MinNormal)
        {
            h = BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(f) + BitConverter.UInt32BitsToSingle(SubnormalMagic)) - SubnormalMagic;
        }
        else
        {
            uint mantissaOdd = (f >> 13) & 1;
            h = (f + NormalRebias + mantissaOdd) >> 13;
        }
        return (ushort)(h | sign);
    }

    private static void ToBF16(float* src, ushort* dst, int count)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= count - 32; i += 32)
            {
                Vector512.Narrow(BF16(Vector512.Load((uint*)src + i)), BF16(Vector512.Load((uint*)src + i + 16))).Store(dst + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= count - 16; i += 16)
            {
                Vector256.Narrow(BF16(Vector256.Load((uint*)src + i)), BF16(Vector256.Load((uint*)src + i + 8))).Store(dst + i);
            }
        }
        for (; i < count; i++)
        {
            dst[i] = BF16(((uint*)src)[i]);
        }
    }

    private static void ToF16(float* src, ushort* dst, int count)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= count - 32; i += 32)
            {
                Vector512.Narrow(F16(Vector512.Load((uint*)src + i)), F16(Vector512.Load((uint*)src + i + 16))).Store(dst + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= count - 16; i += 16)
            {
                Vector256.Narrow(F16(Vector256.Load((uint*)src + i)), F16(Vector256.Load((uint*)src + i + 8))).Store(dst + i);
            }
        }
        for (; i < count; i++)
        {
            dst[i] = F16(((uint*)src)[i]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> BF16(Vector512<uint> bits)
    {
        Vector512<uint> rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) >> 16;
        Vector512<uint> nan = (bits >> 16) | Vector512.Create(0x40u);
        return Vector512.ConditionalSelect(Vector512.GreaterThan(bits & Vector512.Create(AbsMask), Vector512.Create(F32Infinity)), nan, rounded);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> BF16(Vector256<uint> bits)
    {
        Vector256<uint> rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One)) >> 16;
        Vector256<uint> nan = (bits >> 16) | Vector256.Create(0x40u);
        return Vector256.ConditionalSelect(Vector256.GreaterThan(bits & Vector256.Create(AbsMask), Vector256.Create(F32Infinity)), nan, rounded);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> F16(Vector512<uint> bits)
    {
        Vector512<uint> f = bits & Vector512.Create(AbsMask);
        Vector512<uint> sign = (bits >> 16) & Vector512.Create(0x8000u);
        Vector512<uint> special = Vector512.ConditionalSelect(Vector512.GreaterThan(f, Vector512.Create(F32Infinity)), Vector512.Create(0x7E00u), Vector512.Create(0x7C00u));
        Vector512<uint> subnormal = (f.AsSingle() + Vector512.Create(SubnormalMagic).AsSingle()).AsUInt32() - Vector512.Create(SubnormalMagic);
        Vector512<uint> normal = (f + Vector512.Create(NormalRebias) + ((f >> 13) & Vector512<uint>.One)) >> 13;
        Vector512<uint> h = Vector512.ConditionalSelect(Vector512.LessThan(f, Vector512.Create(F16MinNormal)), subnormal, normal);
        h = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(f, Vector512.Create(F16Overflow)), special, h);
        return h | sign;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> F16(Vector256<uint> bits)
    {
        Vector256<uint> f = bits & Vector256.Create(AbsMask);
        Vector256<uint> sign = (bits >> 16) & Vector256.Create(0x8000u);
        Vector256<uint> special = Vector256.ConditionalSelect(Vector256.GreaterThan(f, Vector256.Create(F32Infinity)), Vector256.Create(0x7E00u), Vector256.Create(0x7C00u));
        Vector256<uint> subnormal = (f.AsSingle() + Vector256.Create(SubnormalMagic).AsSingle()).AsUInt32() - Vector256.Create(SubnormalMagic);
        Vector256<uint> normal = (f + Vector256.Create(NormalRebias) + ((f >> 13) & Vector256<uint>.One)) >> 13;
        Vector256<uint> h = Vector256.ConditionalSelect(Vector256.LessThan(f, Vector256.Create(F16MinNormal)), subnormal, normal);
        h = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(f, Vector256.Create(F16Overflow)), special, h);
        return h | sign;
    }
}
