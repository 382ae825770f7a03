using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Vectorised widening of weights to f32, in the form the matrix kernels consume them. bf16 is the
/// upper half of a binary32, so widening is a zero-extend and a shift. .NET exposes no vcvtph2ps, so
/// fp16 is rebuilt with integer ops: the half moved to the top of the lane and shifted back by 3
/// arithmetically puts sign, exponent and mantissa in binary32 position at once (the sign's copies
/// masked off), and multiplying by 2^112 rebiases normals and renormalises subnormals in one exact
/// multiply, the sign riding along; inf/NaN (exponent all ones) are patched with a select. Eight
/// operations a vector where masking sign and exponent+mantissa apart took nine: fp16 KV caches
/// widen every key and value they are read with (bench -- attention, f16 cache, 12 heads, alternated
/// three times: decode at 2048 0.183–0.185 → 0.171–0.172 ms, at 512 0.048–0.058 → 0.043–0.045).
/// </summary>
internal static unsafe class WeightConversion
{
    // After (h << 16) >> 3 (arithmetic): the sign at bit 31, its copies at 30..28, exponent and mantissa at 27..13.
    private const uint F16PlacedMask = 0x8FFFE000;
    private const uint AbsMask = 0x7FFFFFFF;
    private const uint F16InfShifted = 0x7C00u << 13;
    // The three exponent bits the placement leaves clear: with the five above them set, all ones.
    private const uint F32ExpTopBits = 0x70000000;
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
        Vector512<uint> placed = Vector512.ShiftRightArithmetic((h << 16).AsInt32(), 3).AsUInt32() & Vector512.Create(F16PlacedMask);
        Vector512<uint> finite = (placed.AsSingle() * Vector512.Create(RebiasBits).AsSingle()).AsUInt32();
        Vector512<uint> isSpecial = Vector512.GreaterThanOrEqual(placed & Vector512.Create(AbsMask), Vector512.Create(F16InfShifted));
        return Vector512.ConditionalSelect(isSpecial, placed | Vector512.Create(F32ExpTopBits), finite).AsSingle();
    }

    /// <summary>
    /// <see cref="F16ToSingle(Vector512{uint})"/> of halves loaded sign-extended (vpmovsxwd): shifted left
    /// by 13 they are already in binary32 position with the sign's copies above, one shift where the
    /// zero-extended form takes two.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> F16ToSingle(Vector512<int> signExtended)
    {
        Vector512<uint> placed = (signExtended << 13).AsUInt32() & Vector512.Create(F16PlacedMask);
        Vector512<uint> finite = (placed.AsSingle() * Vector512.Create(RebiasBits).AsSingle()).AsUInt32();
        Vector512<uint> isSpecial = Vector512.GreaterThanOrEqual(placed & Vector512.Create(AbsMask), Vector512.Create(F16InfShifted));
        return Vector512.ConditionalSelect(isSpecial, placed | Vector512.Create(F32ExpTopBits), finite).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> F16ToSingle(Vector256<uint> h)
    {
        Vector256<uint> placed = Vector256.ShiftRightArithmetic((h << 16).AsInt32(), 3).AsUInt32() & Vector256.Create(F16PlacedMask);
        Vector256<uint> finite = (placed.AsSingle() * Vector256.Create(RebiasBits).AsSingle()).AsUInt32();
        Vector256<uint> isSpecial = Vector256.GreaterThanOrEqual(placed & Vector256.Create(AbsMask), Vector256.Create(F16InfShifted));
        return Vector256.ConditionalSelect(isSpecial, placed | Vector256.Create(F32ExpTopBits), finite).AsSingle();
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
