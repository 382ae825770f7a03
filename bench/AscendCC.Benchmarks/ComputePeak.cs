using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using AscendCC.Device.Kernels;

namespace AscendCC.Benchmarks;

/// <summary>
/// The machine's multiply-accumulate rate as the linear kernels can use it: <c>threads</c> threads
/// (the device's AI Cores run 2), started together, each issuing independent chains of the
/// instruction a kernel's inner loop is made of — f32 FMA on 512-bit vectors (bf16/f32 weights),
/// vpdpbusd on 256-bit vectors (Q8_0 on AVX-VNNI) or vpmaddubsw on 512-bit vectors (the 4-bit formats
/// on AVX-512BW) — with nothing else in the loop; the
/// best of a few repetitions. No kernel that also loads, widens and scales can beat it, so it bounds
/// what a batched decode step, whose linears are compute-bound at eight tokens, can reach.
/// <para>
/// A kernel's inner loop needs more than its multiplies, though: the activations broadcast, partial sums
/// added, the block's integer sum converted and scaled. <see cref="InnerLoopMacsPerSecond"/> runs the
/// batched GEMV's own per-token step at eight tokens — QuantizedLinear's TokenBlock as StripPair (4-bit)
/// and StripTokens (Q8_0) call it, and the instructions PanelGemv's Panel (BF16) issues for a position —
/// with every operand in registers or L1 and nothing else (no weight stream, unpacking, scale loads or
/// prefetches): the rate that kernel design reaches at best on this machine.
/// </para>
/// </summary>
internal static unsafe class ComputePeak
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

    /// <summary>
    /// Multiply-adds per second of the batched GEMV's inner loop for <paramref name="precision"/>'s kernel on
    /// <paramref name="threads"/> threads (see the class summary), or 0 where this machine runs another form.
    /// </summary>
    public static double InnerLoopMacsPerSecond(AscendCC.Runtime.Inference.WeightPrecision precision, int threads = 2, int repetitions = 3)
    {
        const long Steps = 5_000_000;
        return precision switch
        {
            AscendCC.Runtime.Inference.WeightPrecision.BF16 when Vector512.IsHardwareAccelerated =>
                Measure(threads, repetitions, () => WithOperands(p => PanelPositions(Steps, p)), Steps * 8 * 32),
            AscendCC.Runtime.Inference.WeightPrecision.Q4_0 or AscendCC.Runtime.Inference.WeightPrecision.Q4_K when Avx512BW.IsSupported && AvxVnni.IsSupported =>
                Measure(threads, repetitions, () => WithOperands(p => NibblePairBlocks(Steps, p)), Steps * 8 * 16 * 32),
            AscendCC.Runtime.Inference.WeightPrecision.Q8_0 when AvxVnni.IsSupported =>
                Measure(threads, repetitions, () => WithOperands(p => ByteStripBlocks(Steps, p)), Steps * 8 * 8 * 32),
            _ => 0,
        };
    }

    /// <summary>Runs <paramref name="loop"/> over 8 KiB of this thread's own plausible operands (nibbles, int8 activations, small scales), freed after.</summary>
    private static float WithOperands(Func<nint, float> loop)
    {
        byte* p = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(OperandBytes, 64);
        try
        {
            var random = new Random(5);
            for (int i = 0; i < 4096; i++)
            {
                p[i] = (byte)random.Next(256);
            }
            for (int i = 0; i < 512; i++)
            {
                ((int*)(p + 4096))[i] = -8 * random.Next(-4000, 4000);
                ((float*)(p + 6144))[i] = (float)(0.5 + random.NextDouble()) / 1024;
            }
            return loop((nint)p);
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(p);
        }
    }

    private const int OperandBytes = 8192;

    // Operands: weights (or bf16 halves) at 0, eight tokens' activations at 1024 + 256·(step mod 8), their
    // block starts at 4096, their scales at 6144; the accumulators stay in registers, as the kernels keep them.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float NibblePairBlocks(long n, nint operands)
    {
        byte* p = (byte*)operands;
        Vector512<byte> nibble = Vector512.Create((byte)15);
        Vector512<byte> g0 = Vector512.Load(p) & nibble, g1 = Vector512.Load(p + 64) & nibble, g2 = Vector512.Load(p + 128) & nibble, g3 = Vector512.Load(p + 192) & nibble;
        Vector512<byte> g4 = Vector512.Load(p + 256) & nibble, g5 = Vector512.Load(p + 320) & nibble, g6 = Vector512.Load(p + 384) & nibble, g7 = Vector512.Load(p + 448) & nibble;
        Vector512<float> dw = Vector512.Load((float*)(p + 6144));
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
        int* xs = (int*)(p + 4096);
        float* xd = (float*)(p + 6144);
        for (long i = 0; i < n; i++)
        {
            sbyte* x = (sbyte*)p + 1024 + ((i & 7) << 8);
            s0 = Nibble(s0, g0, g1, g2, g3, g4, g5, g6, g7, x, xs, xd, dw);
            s1 = Nibble(s1, g0, g1, g2, g3, g4, g5, g6, g7, x + 32, xs + 1, xd + 1, dw);
            s2 = Nibble(s2, g0, g1, g2, g3, g4, g5, g6, g7, x + 64, xs + 2, xd + 2, dw);
            s3 = Nibble(s3, g0, g1, g2, g3, g4, g5, g6, g7, x + 96, xs + 3, xd + 3, dw);
            s4 = Nibble(s4, g0, g1, g2, g3, g4, g5, g6, g7, x + 128, xs + 4, xd + 4, dw);
            s5 = Nibble(s5, g0, g1, g2, g3, g4, g5, g6, g7, x + 160, xs + 5, xd + 5, dw);
            s6 = Nibble(s6, g0, g1, g2, g3, g4, g5, g6, g7, x + 192, xs + 6, xd + 6, dw);
            s7 = Nibble(s7, g0, g1, g2, g3, g4, g5, g6, g7, x + 224, xs + 7, xd + 7, dw);
        }
        return Vector512.Sum(s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7);
    }

    /// <summary>The Q4_0 panel GEMV's own step for one token and block pair (QuantizedLinear's StripPair).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Nibble(Vector512<float> sum, Vector512<byte> g0, Vector512<byte> g1, Vector512<byte> g2, Vector512<byte> g3,
        Vector512<byte> g4, Vector512<byte> g5, Vector512<byte> g6, Vector512<byte> g7, sbyte* x, int* xs, float* xd, Vector512<float> dw) =>
        QuantizedLinear.GemvKernel<Q4_0PanelFormat, Int8Dot.AvxVnniDot>.TokenBlock(sum, g0, g1, g2, g3, g4, g5, g6, g7, x, xs, xd, null, dw, default);

    /// <summary>The Q8_0 strip GEMV's own step for one token and strip block (QuantizedLinear's StripTokens).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Byte(Vector256<float> sum, Vector256<byte> g0, Vector256<byte> g1, Vector256<byte> g2, Vector256<byte> g3,
        Vector256<byte> g4, Vector256<byte> g5, Vector256<byte> g6, Vector256<byte> g7, sbyte* x, int* xs, float* xd, Vector256<float> dw) =>
        QuantizedLinear.GemvKernel<Q8_0Format, Int8Dot.AvxVnniDot>.TokenBlock(sum, g0, g1, g2, g3, g4, g5, g6, g7, x, xs, xd, null, dw, default);

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float ByteStripBlocks(long n, nint operands)
    {
        byte* p = (byte*)operands;
        Vector256<byte> g0 = Vector256.Load(p), g1 = Vector256.Load(p + 32), g2 = Vector256.Load(p + 64), g3 = Vector256.Load(p + 96);
        Vector256<byte> g4 = Vector256.Load(p + 128), g5 = Vector256.Load(p + 160), g6 = Vector256.Load(p + 192), g7 = Vector256.Load(p + 224);
        Vector256<float> dw = Vector256.Load((float*)(p + 6144));
        Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
        int* xs = (int*)(p + 4096);
        float* xd = (float*)(p + 6144);
        for (long i = 0; i < n; i++)
        {
            sbyte* x = (sbyte*)p + 1024 + ((i & 7) << 8);
            s0 = Byte(s0, g0, g1, g2, g3, g4, g5, g6, g7, x, xs, xd, dw);
            s1 = Byte(s1, g0, g1, g2, g3, g4, g5, g6, g7, x + 32, xs + 1, xd + 1, dw);
            s2 = Byte(s2, g0, g1, g2, g3, g4, g5, g6, g7, x + 64, xs + 2, xd + 2, dw);
            s3 = Byte(s3, g0, g1, g2, g3, g4, g5, g6, g7, x + 96, xs + 3, xd + 3, dw);
            s4 = Byte(s4, g0, g1, g2, g3, g4, g5, g6, g7, x + 128, xs + 4, xd + 4, dw);
            s5 = Byte(s5, g0, g1, g2, g3, g4, g5, g6, g7, x + 160, xs + 5, xd + 5, dw);
            s6 = Byte(s6, g0, g1, g2, g3, g4, g5, g6, g7, x + 192, xs + 6, xd + 6, dw);
            s7 = Byte(s7, g0, g1, g2, g3, g4, g5, g6, g7, x + 224, xs + 7, xd + 7, dw);
        }
        return Vector256.Sum(s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7);
    }

    /// <summary>PanelGemv's Panel at eight tokens: per position 32 bf16 weights widened to two zmm, then per token a broadcast and two FMAs.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float PanelPositions(long n, nint operands)
    {
        byte* p = (byte*)operands;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
        for (long i = 0; i < n; i++)
        {
            // bf16 halves of magnitude below 2 (exponent bits masked), so the sums stay finite.
            ushort* w = (ushort*)(p + ((i & 63) << 6));
            Vector512<float> lo = ((Vector512.WidenLower(Vector256.Load(w).ToVector512()) & Vector512.Create(0xBFFFu)) << 16).AsSingle();
            Vector512<float> hi = ((Vector512.WidenLower(Vector256.Load(w + 16).ToVector512()) & Vector512.Create(0xBFFFu)) << 16).AsSingle();
            float* x = (float*)(p + 6144) + ((i & 7) << 3);
            Vector512<float> u = Vector512.Create(x[0]);
            a0 = Vector512.FusedMultiplyAdd(lo, u, a0);
            b0 = Vector512.FusedMultiplyAdd(hi, u, b0);
            u = Vector512.Create(x[1]);
            a1 = Vector512.FusedMultiplyAdd(lo, u, a1);
            b1 = Vector512.FusedMultiplyAdd(hi, u, b1);
            u = Vector512.Create(x[2]);
            a2 = Vector512.FusedMultiplyAdd(lo, u, a2);
            b2 = Vector512.FusedMultiplyAdd(hi, u, b2);
            u = Vector512.Create(x[3]);
            a3 = Vector512.FusedMultiplyAdd(lo, u, a3);
            b3 = Vector512.FusedMultiplyAdd(hi, u, b3);
            u = Vector512.Create(x[4]);
            a4 = Vector512.FusedMultiplyAdd(lo, u, a4);
            b4 = Vector512.FusedMultiplyAdd(hi, u, b4);
            u = Vector512.Create(x[5]);
            a5 = Vector512.FusedMultiplyAdd(lo, u, a5);
            b5 = Vector512.FusedMultiplyAdd(hi, u, b5);
            u = Vector512.Create(x[6]);
            a6 = Vector512.FusedMultiplyAdd(lo, u, a6);
            b6 = Vector512.FusedMultiplyAdd(hi, u, b6);
            u = Vector512.Create(x[7]);
            a7 = Vector512.FusedMultiplyAdd(lo, u, a7);
            b7 = Vector512.FusedMultiplyAdd(hi, u, b7);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + b0 + b1 + b2 + b3 + b4 + b5 + b6 + b7);
    }

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
