using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AscendCC.Device.Kernels;

/// <summary>
/// e^x for sixteen floats in float arithmetic, for the kernels whose exponentials are a large part of
/// their work (the attention softmax, SiLU). CoreLib's <see cref="Vector512.Exp(Vector512{float})"/> widens
/// to double and is a call, not inlined: 5.05 ns a vector against 3.3–3.5 for this on this machine (one
/// core, from L1), and inside the kernels' loops the call's spills cost more (docs/architecture.md,
/// "Exponentials, and a decode row's own work").
/// </summary>
/// <remarks>
/// Cody–Waite reduction x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 split in two so n·ln2_hi is exact),
/// Cephes' expf polynomial for e^r, and the power of two applied by vscalefps, which rounds to denormals,
/// 0 and +∞ as IEEE multiplication would: within 1 ulp of the correctly rounded result over the whole range
/// (checked against double-precision exp in the tests). x is clamped to [−104, 89] first — beyond it e^x is
/// 0 or +∞ in float either way — so −∞ gives 0 and +∞ gives +∞; NaN stays NaN.
/// </remarks>
internal static class VectorExp
{
    /// <summary>True when <see cref="Exp"/> runs on this machine (it needs AVX-512F's rounding and scaling).</summary>
    public static bool IsSupported => Avx512F.IsSupported;

    /// <summary>e^x per lane; CoreLib's <see cref="Vector512.Exp(Vector512{float})"/> where <see cref="IsSupported"/> is false.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        if (!Avx512F.IsSupported)
        {
            return Vector512.Exp(x);
        }
        // vminps/vmaxps return their second operand when either is NaN, so a NaN x passes through.
        var t = Avx512F.Max(Vector512.Create(-104f), Avx512F.Min(Vector512.Create(89f), x));
        // n = round-to-nearest(x / ln 2); imm 0 = nearest, even on ties.
        var n = Avx512F.RoundScale(t * Vector512.Create(1.44269504088896341f), 0);
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), t);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1.9875691500E-4f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894E-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459E-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201E-1f));
        p = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512<float>.One;
        return Avx512F.Scale(p, n);
    }
}
