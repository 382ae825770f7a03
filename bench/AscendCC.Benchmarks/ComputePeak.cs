using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AscendCC.Benchmarks;

/// <summary>
/// The machine's multiply-accumulate rate as the linear kernels can use it: <c>threads</c> threads
/// (the device's AI Cores run 2), started together, each issuing independent chains of the
/// instruction a kernel's inner loop is made of — f32 FMA on 512-bit vectors (bf16/f32 weights),
/// vpdpbusd on 256-bit vectors (Q8_0 on AVX-VNNI) or vpmaddubsw on 512-bit vectors (the 4-bit formats
/// on AVX-512BW) — with nothing else in the loop; the
/// best of a few repetitions. No kernel that also loads, widens and scales can beat it, so it bounds
/// what a batched decode step, whose linears are compute-bound at eight tokens, can reach.
/// </summary>
internal static class ComputePeak
{
    private const long Iterations = 50_000_000;

    /// <summary>f32 multiply-adds per second on <paramref name="threads"/> threads (16 per 512-bit FMA).</summary>
    public static double F32MacsPerSecond(int threads = 2, int repetitions = 3) =>
        Vector512.IsHardwareAccelerated ? Measure(threads, repetitions, () => Fma512(Iterations), Iterations * 10 * 16) : 0;

    /// <summary>int8 multiply-adds per second on <paramref name="threads"/> threads (32 per 256-bit vpdpbusd), or 0 without AVX-VNNI.</summary>
    public static double Int8MacsPerSecond(int threads = 2, int repetitions = 3) =>
        AvxVnni.IsSupported ? Measure(threads, repetitions, () => Vnni256(Iterations), Iterations * 10 * 32) : 0;

    /// <summary>u8×s8 multiply-adds per second on <paramref name="threads"/> threads (64 per 512-bit vpmaddubsw), or 0 without AVX-512BW.</summary>
    public static double NibbleMacsPerSecond(int threads = 2, int repetitions = 3) =>
        Avx512BW.IsSupported ? Measure(threads, repetitions, () => Maddubsw512(Iterations), Iterations * 10 * 64) : 0;

    private static double Measure(int threads, int repetitions, Func<float> work, long macsPerThread)
    {
        double best = 0;
        var results = new float[threads];
        for (int rep = 0; rep < repetitions; rep++)
        {
            double seconds = Together.Seconds(threads, index => results[index] = work());
            best = Math.Max(best, (double)macsPerThread * threads / seconds);
        }
        // The chains' results are what the instructions were for; they are never NaN for these inputs.
        if (results.Any(float.IsNaN))
        {
            throw new InvalidOperationException("compute probe: a chain came out NaN");
        }
        return best;
    }

    // Ten independent chains hide the FMA latency (4 cycles) at two issues a cycle. Fully optimised
    // from the first call: a probe run a few times would otherwise time tier-0 or OSR code.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Fma512(long n)
    {
        Vector512<float> x = Vector512.Create(0.999f), y = Vector512.Create(0.001f);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default;
        Vector512<float> a5 = default, a6 = default, a7 = default, a8 = default, a9 = default;
        for (long i = 0; i < n; i++)
        {
            a0 = Vector512.FusedMultiplyAdd(a0, x, y);
            a1 = Vector512.FusedMultiplyAdd(a1, x, y);
            a2 = Vector512.FusedMultiplyAdd(a2, x, y);
            a3 = Vector512.FusedMultiplyAdd(a3, x, y);
            a4 = Vector512.FusedMultiplyAdd(a4, x, y);
            a5 = Vector512.FusedMultiplyAdd(a5, x, y);
            a6 = Vector512.FusedMultiplyAdd(a6, x, y);
            a7 = Vector512.FusedMultiplyAdd(a7, x, y);
            a8 = Vector512.FusedMultiplyAdd(a8, x, y);
            a9 = Vector512.FusedMultiplyAdd(a9, x, y);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9);
    }

    // Each chain feeds its pair sums back in as the next unsigned operand, so no product is loop-invariant.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Maddubsw512(long n)
    {
        Vector512<sbyte> s = Vector512.Create((sbyte)1);
        Vector512<short> a0 = Vector512.Create((short)1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
        for (long i = 0; i < n; i++)
        {
            a0 = Avx512BW.MultiplyAddAdjacent(a0.AsByte(), s);
            a1 = Avx512BW.MultiplyAddAdjacent(a1.AsByte(), s);
            a2 = Avx512BW.MultiplyAddAdjacent(a2.AsByte(), s);
            a3 = Avx512BW.MultiplyAddAdjacent(a3.AsByte(), s);
            a4 = Avx512BW.MultiplyAddAdjacent(a4.AsByte(), s);
            a5 = Avx512BW.MultiplyAddAdjacent(a5.AsByte(), s);
            a6 = Avx512BW.MultiplyAddAdjacent(a6.AsByte(), s);
            a7 = Avx512BW.MultiplyAddAdjacent(a7.AsByte(), s);
            a8 = Avx512BW.MultiplyAddAdjacent(a8.AsByte(), s);
            a9 = Avx512BW.MultiplyAddAdjacent(a9.AsByte(), s);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Vnni256(long n)
    {
        Vector256<byte> u = Vector256.Create((byte)3);
        Vector256<sbyte> s = Vector256.Create((sbyte)-1);
        Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default;
        Vector256<int> a5 = default, a6 = default, a7 = default, a8 = default, a9 = default;
        for (long i = 0; i < n; i++)
        {
            a0 = AvxVnni.MultiplyWideningAndAdd(a0, u, s);
            a1 = AvxVnni.MultiplyWideningAndAdd(a1, u, s);
            a2 = AvxVnni.MultiplyWideningAndAdd(a2, u, s);
            a3 = AvxVnni.MultiplyWideningAndAdd(a3, u, s);
            a4 = AvxVnni.MultiplyWideningAndAdd(a4, u, s);
            a5 = AvxVnni.MultiplyWideningAndAdd(a5, u, s);
            a6 = AvxVnni.MultiplyWideningAndAdd(a6, u, s);
            a7 = AvxVnni.MultiplyWideningAndAdd(a7, u, s);
            a8 = AvxVnni.MultiplyWideningAndAdd(a8, u, s);
            a9 = AvxVnni.MultiplyWideningAndAdd(a9, u, s);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9);
    }
}
