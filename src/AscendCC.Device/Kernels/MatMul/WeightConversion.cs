using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Vectorised widening of weights to f32, in the form the matrix kernels consume them. bf16 is the
/// upper half of a binary32, so widening is a zero-extend and a shift. .NET exposes no vcvtph2ps, so
/// fp16 is rebuilt with integer ops: shifting exponent+mantissa into binary32 position and multiplying
/// by 2^112 rebiases normals and renormalises subnormals in one exact multiply; inf/NaN (exponent all
/// ones) are patched with a select.
/// </summary>
internal static unsafe class WeightConversion
{
    private const uint F16ExpMantMask = 0x7FFF;
    private const uint F16SignMask = 0x8000;
    private const uint F16InfShifted = 0x7C00u << 13;
    private const uint F32ExpMask = 0x7F800000;
    // 2^112 as bits: a constant (not a static readonly float) so the JIT hoists it instead of
    // re-checking class initialisation inside the GEMV loop.
    private const uint RebiasBits = (127 + 112) << 23;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> BF16ToSingle(Vector512<uint> widened) => (widened << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> BF16ToSingle(Vector256<uint> widened) => (widened << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> F16ToSingle(Vector512<uint> h)
    {
        Vector512<uint> expMant = (h & Vector512.Create(F16ExpMantMask)) << 13;
        Vector512<uint> sign = (h & Vector512.Create(F16SignMask)) << 16;
        Vector512<uint> finite = (expMant.AsSingle() * Vector512.Create(RebiasBits).AsSingle()).AsUInt32();
        Vector512<uint> special = expMant | Vector512.Create(F32ExpMask);
        Vector512<uint> isSpecial = Vector512.GreaterThanOrEqual(expMant, Vector512.Create(F16InfShifted));
        return (Vector512.ConditionalSelect(isSpecial, special, finite) | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> F16ToSingle(Vector256<uint> h)
    {
        Vector256<uint> expMant = (h & Vector256.Create(F16ExpMantMask)) << 13;
        Vector256<uint> sign = (h & Vector256.Create(F16SignMask)) << 16;
        Vector256<uint> finite = (expMant.AsSingle() * Vector256.Create(RebiasBits).AsSingle()).AsUInt32();
        Vector256<uint> special = expMant | Vector256.Create(F32ExpMask);
        Vector256<uint> isSpecial = Vector256.GreaterThanOrEqual(expMant, Vector256.Create(F16InfShifted));
        return (Vector256.ConditionalSelect(isSpecial, special, finite) | sign).AsSingle();
    }

    /// <summary>Widens <paramref name="count"/> elements of <paramref name="type"/> at <paramref name="src"/> to f32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ToSingle(void* src, ElementType type, float* dst, int count)
    {
        int i = 0;
        if (type == ElementType.F32)
        {
            Buffer.MemoryCopy(src, dst, (long)count * sizeof(float), (long)count * sizeof(float));
            return;
        }
        ushort* h = (ushort*)src;
        bool bf16 = type == ElementType.BF16;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= count - 32; i += 32)
            {
                (Vector512<uint> lo, Vector512<uint> hi) = Vector512.Widen(Vector512.Load(h + i));
                (bf16 ? BF16ToSingle(lo) : F16ToSingle(lo)).Store(dst + i);
                (bf16 ? BF16ToSingle(hi) : F16ToSingle(hi)).Store(dst + i + 16);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= count - 16; i += 16)
            {
                (Vector256<uint> lo, Vector256<uint> hi) = Vector256.Widen(Vector256.Load(h + i));
                (bf16 ? BF16ToSingle(lo) : F16ToSingle(lo)).Store(dst + i);
                (bf16 ? BF16ToSingle(hi) : F16ToSingle(hi)).Store(dst + i + 8);
            }
        }
        for (; i < count; i++)
        {
            dst[i] = bf16 ? ElementTypes.BF16ToSingle(h[i]) : ElementTypes.F16ToSingle(h[i]);
        }
    }
}
