using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AscendCC.Device.Kernels;

/// <summary>How the Q8_0 kernels form int8 dot products; chosen from the hardware, overridable for tests.</summary>
internal enum Q8_0Isa
{
    /// <summary>
    /// AVX-VNNI's vpdpbusd on 256-bit vectors: 32 int8 products summed by fours into int32 in one
    /// instruction. (.NET 10 exposes the 512-bit form only with AVX10.2, so AVX-512 machines use this too.)
    /// </summary>
    AvxVnni,
    /// <summary>AVX2's vpmaddubsw then vpmaddwd: the same sums in two instructions, for CPUs without VNNI.</summary>
    Avx2,
    /// <summary>Plain integer arithmetic per block; runs anywhere.</summary>
    Portable,
}

/// <summary>
/// One block's int8 dot product as eight exact int32 lanes, lane i the sum of products 4i..4i+3.
/// Every implementation returns the same lanes, so the float arithmetic after it, and so the
/// kernel's result, is the same bit for bit whichever one runs.
/// </summary>
internal unsafe interface IQ8_0BlockDot
{
    /// <summary>Lanes of Σ w_j·x_j over the 32 int8 values at <paramref name="w"/> and <paramref name="x"/>.</summary>
    static abstract Vector256<int> Dot(sbyte* w, sbyte* x);
}

/// <summary>
/// The int8 products. vpdpbusd and vpmaddubsw multiply an unsigned byte by a signed one, so the
/// sign moves across as llama.cpp does it, but onto the activation: |w| (0..128, an exact unsigned
/// byte even for w = −128) times x with w's sign (|x| ≤ 127, so negating it never overflows). For
/// vpmaddubsw's int16 pair sums that is at most 2·128·127 = 32512, below saturation; the lanes are
/// exact in every form.
/// </summary>
internal static unsafe class Q8_0Dot
{
    /// <summary>The fastest form this machine runs.</summary>
    public static Q8_0Isa DefaultIsa { get; } = AvxVnni.IsSupported ? Q8_0Isa.AvxVnni : Avx2.IsSupported ? Q8_0Isa.Avx2 : Q8_0Isa.Portable;

    /// <summary>True when <paramref name="isa"/> runs on this machine.</summary>
    public static bool IsSupported(Q8_0Isa isa) => isa switch
    {
        Q8_0Isa.AvxVnni => AvxVnni.IsSupported,
        Q8_0Isa.Avx2 => Avx2.IsSupported,
        _ => true,
    };

    /// <summary>The whole block's sum, for tests that compare the forms' integers.</summary>
    public static int BlockSum<TDot>(sbyte* w, sbyte* x) where TDot : struct, IQ8_0BlockDot => Vector256.Sum(TDot.Dot(w, x));

    internal readonly struct AvxVnniDot : IQ8_0BlockDot
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(sbyte* w, sbyte* x)
        {
            Vector256<sbyte> wv = Vector256.Load(w);
            return AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Avx2.Abs(wv), Avx2.Sign(Vector256.Load(x), wv));
        }
    }

    internal readonly struct Avx2Dot : IQ8_0BlockDot
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(sbyte* w, sbyte* x)
        {
            Vector256<sbyte> wv = Vector256.Load(w);
            Vector256<short> pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(wv), Avx2.Sign(Vector256.Load(x), wv));
            return Avx2.MultiplyAddAdjacent(pairs, Vector256<short>.One);
        }
    }

    internal readonly struct PortableDot : IQ8_0BlockDot
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(sbyte* w, sbyte* x) => Vector256.Create(
            Quad(w, x, 0), Quad(w, x, 4), Quad(w, x, 8), Quad(w, x, 12),
            Quad(w, x, 16), Quad(w, x, 20), Quad(w, x, 24), Quad(w, x, 28));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Quad(sbyte* w, sbyte* x, int i) => (w[i] * x[i]) + (w[i + 1] * x[i + 1]) + (w[i + 2] * x[i + 2]) + (w[i + 3] * x[i + 3]);
    }
}
