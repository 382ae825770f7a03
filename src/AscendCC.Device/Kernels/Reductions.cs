using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Row primitives shared by softmax, the norms, attention and sampling: reductions and fused
/// row updates over <c>ref float</c> starts, so callers can use span or pointer rows alike.
/// Each has a Vector512 path, a Vector256 path for machines without AVX-512, and a scalar tail.
/// </summary>
internal static class Reductions
{
    /// <summary>max(x[0..n)); -inf for an empty row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Max(ref float x, int n)
    {
        int i = 0;
        float max = float.NegativeInfinity;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var acc = Vector512.Create(float.NegativeInfinity);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                acc = Vector512.Max(acc, Vector512.LoadUnsafe(ref x, (nuint)i));
            }
            max = HorizontalMax(acc.GetLower(), acc.GetUpper());
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var acc = Vector256.Create(float.NegativeInfinity);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                acc = Vector256.Max(acc, Vector256.LoadUnsafe(ref x, (nuint)i));
            }
            max = HorizontalMax(acc, acc);
        }
        for (; i < n; i++)
        {
            max = MathF.Max(max, Unsafe.Add(ref x, i));
        }
        return max;
    }

    /// <summary>Σ x[i]·x[i], accumulated in float32 lanes (llama2.c's rmsnorm accumulates in float32 too).</summary>
    public static float SumOfSquares(ref float x, int n) => Dot(ref x, ref x, n);

    /// <summary>Σ x[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Sum(ref float x, int n)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var acc = Vector512<float>.Zero;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                acc += Vector512.LoadUnsafe(ref x, (nuint)i);
            }
            sum = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                acc += Vector256.LoadUnsafe(ref x, (nuint)i);
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++)
        {
            sum += Unsafe.Add(ref x, i);
        }
        return sum;
    }

    /// <summary>Σ a[i]·b[i], with fused multiply-adds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot(ref float a, ref float b, int n)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            // Two accumulators hide the FMA latency on the 64-128 element rows attention dots over.
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i <= n - 2 * Vector512<float>.Count; i += 2 * Vector512<float>.Count)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref a, (nuint)i), Vector512.LoadUnsafe(ref b, (nuint)i), acc0);
                acc1 = Vector512.FusedMultiplyAdd(
                    Vector512.LoadUnsafe(ref a, (nuint)(i + Vector512<float>.Count)), Vector512.LoadUnsafe(ref b, (nuint)(i + Vector512<float>.Count)), acc1);
            }
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref a, (nuint)i), Vector512.LoadUnsafe(ref b, (nuint)i), acc0);
            }
            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a, (nuint)i), Vector256.LoadUnsafe(ref b, (nuint)i), acc);
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++)
        {
            sum = MathF.FusedMultiplyAdd(Unsafe.Add(ref a, i), Unsafe.Add(ref b, i), sum);
        }
        return sum;
    }

    /// <summary>y[i] = exp(x[i] - shift); returns Σ y[i]. y may be x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float ExpShiftedSum(ref float x, ref float y, int n, float shift)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var acc = Vector512<float>.Zero;
            var s = Vector512.Create(shift);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var e = Vector512.Exp(Vector512.LoadUnsafe(ref x, (nuint)i) - s);
                e.StoreUnsafe(ref y, (nuint)i);
                acc += e;
            }
            sum = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var acc = Vector256<float>.Zero;
            var s = Vector256.Create(shift);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var e = Vector256.Exp(Vector256.LoadUnsafe(ref x, (nuint)i) - s);
                e.StoreUnsafe(ref y, (nuint)i);
                acc += e;
            }
            sum = Vector256.Sum(acc);
        }
        else if (!Vector256.IsHardwareAccelerated)
        {
            // No SIMD at all (DOTNET_EnableHWIntrinsic=0, or a CPU without AVX): a single float32
            // accumulator over a 32000-token vocabulary drifts by hundreds of ulp, where the vector paths'
            // 8 or 16 lanes stay within a few; a double keeps this path at least as accurate as those.
            double wide = 0;
            for (; i < n; i++)
            {
                float e = MathF.Exp(Unsafe.Add(ref x, i) - shift);
                Unsafe.Add(ref y, i) = e;
                wide += e;
            }
            return (float)wide;
        }
        for (; i < n; i++)
        {
            float e = MathF.Exp(Unsafe.Add(ref x, i) - shift);
            Unsafe.Add(ref y, i) = e;
            sum += e;
        }
        return sum;
    }

    /// <summary>x[i] *= s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScaleInPlace(ref float x, int n, float s)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                (Vector512.LoadUnsafe(ref x, (nuint)i) * s).StoreUnsafe(ref x, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                (Vector256.LoadUnsafe(ref x, (nuint)i) * s).StoreUnsafe(ref x, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            Unsafe.Add(ref x, i) *= s;
        }
    }

    /// <summary>y[i] += alpha · x[i], with fused multiply-adds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MultiplyAdd(ref float y, ref float x, int n, float alpha)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var a = Vector512.Create(alpha);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                Vector512.FusedMultiplyAdd(a, Vector512.LoadUnsafe(ref x, (nuint)i), Vector512.LoadUnsafe(ref y, (nuint)i)).StoreUnsafe(ref y, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var a = Vector256.Create(alpha);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Vector256.FusedMultiplyAdd(a, Vector256.LoadUnsafe(ref x, (nuint)i), Vector256.LoadUnsafe(ref y, (nuint)i)).StoreUnsafe(ref y, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            Unsafe.Add(ref y, i) = MathF.FusedMultiplyAdd(alpha, Unsafe.Add(ref x, i), Unsafe.Add(ref y, i));
        }
    }

    /// <summary>
    /// The largest lane of <paramref name="v"/> by vmaxps, halves then pairs then lanes (a NaN lane may be
    /// dropped, as vmaxps drops it). For AVX-512 paths: it uses the 256- and 128-bit max directly.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float MaxAcross(Vector512<float> v)
    {
        var max8 = Avx.Max(v.GetLower(), v.GetUpper());
        var max4 = Sse.Max(max8.GetLower(), max8.GetUpper());
        max4 = Sse.Max(max4, Sse.Shuffle(max4, max4, 0b01_00_11_10));
        max4 = Sse.Max(max4, Sse.Shuffle(max4, max4, 0b10_11_00_01));
        return max4.ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float HorizontalMax(Vector256<float> a, Vector256<float> b)
    {
        var m = Vector256.Max(a, b);
        var m128 = Vector128.Max(m.GetLower(), m.GetUpper());
        float r = m128.GetElement(0);
        for (int k = 1; k < Vector128<float>.Count; k++)
        {
            r = MathF.Max(r, m128.GetElement(k));
        }
        return r;
    }
}
