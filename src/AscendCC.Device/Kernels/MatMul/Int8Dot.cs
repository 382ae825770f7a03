using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AscendCC.Device.Kernels;

/// <summary>How the quantized kernels form int8 dot products; chosen from the hardware, overridable for tests.</summary>
internal enum Int8DotIsa
{
    /// <summary>
    /// <see cref="AvxVnni"/>, and for 4-bit weights (Q4_0, Q4_K) in the GEMV two strips at once on
    /// 512-bit vectors with AVX-512BW's vpmaddubsw: 64 products a instruction into int16 pair sums,
    /// a block's eight groups added in int16 (a nibble is at most 15 and |x| at most 127, so the eight
    /// pair sums of a lane stay within 8·2·15·127 = 30480, below saturation), then one vpmaddwd to
    /// int32. The lanes are the same exact integers as the other forms', so the results are the same bits.
    /// </summary>
    Avx512Bw,
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
internal interface IInt8BlockDot
{
    /// <summary>Lanes of Σ w_j·x_j over the 32 int8 values of <paramref name="w"/> and <paramref name="x"/> (x in −127..127).</summary>
    static abstract Vector256<int> Dot(Vector256<sbyte> w, Vector256<sbyte> x);

    /// <summary><paramref name="init"/> plus the lanes of Σ u_j·x_j for unsigned <paramref name="u"/> (0..255) and x in −127..127: vpdpbusd's meaning, exact.</summary>
    static abstract Vector256<int> DotUnsigned(Vector256<int> init, Vector256<byte> u, Vector256<sbyte> x);
}

/// <summary>
/// The int8 products. vpdpbusd and vpmaddubsw multiply an unsigned byte by a signed one, so the
/// sign moves across as llama.cpp does it, but onto the activation: |w| (0..128, an exact unsigned
/// byte even for w = −128) times x with w's sign (|x| ≤ 127, so negating it never overflows). For
/// vpmaddubsw's int16 pair sums that is at most 2·128·127 = 32512, below saturation; the lanes are
/// exact in every form.
/// </summary>
internal static class Int8Dot
{
    /// <summary>The fastest form this machine runs.</summary>
    public static Int8DotIsa DefaultIsa { get; } =
        IsSupported(Int8DotIsa.Avx512Bw) ? Int8DotIsa.Avx512Bw : AvxVnni.IsSupported ? Int8DotIsa.AvxVnni : Avx2.IsSupported ? Int8DotIsa.Avx2 : Int8DotIsa.Portable;

    /// <summary>True when <paramref name="isa"/> runs on this machine.</summary>
    public static bool IsSupported(Int8DotIsa isa) => isa switch
    {
        Int8DotIsa.Avx512Bw => Avx512BW.IsSupported && AvxVnni.IsSupported,
        Int8DotIsa.AvxVnni => AvxVnni.IsSupported,
        Int8DotIsa.Avx2 => Avx2.IsSupported,
        _ => true,
    };

    /// <summary>The whole block's sum, for tests that compare the forms' integers.</summary>
    public static int BlockSum<TDot>(Vector256<sbyte> w, Vector256<sbyte> x) where TDot : struct, IInt8BlockDot => Vector256.Sum(TDot.Dot(w, x));

    /// <summary>The lanes of <see cref="IInt8BlockDot.DotUnsigned"/>, for tests that compare the forms' integers.</summary>
    public static Vector256<int> UnsignedLanes<TDot>(Vector256<int> init, Vector256<byte> u, Vector256<sbyte> x) where TDot : struct, IInt8BlockDot => TDot.DotUnsigned(init, u, x);

    internal readonly struct AvxVnniDot : IInt8BlockDot
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(Vector256<sbyte> w, Vector256<sbyte> x) =>
            AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Avx2.Abs(w), Avx2.Sign(x, w));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> DotUnsigned(Vector256<int> init, Vector256<byte> u, Vector256<sbyte> x) =>
            AvxVnni.MultiplyWideningAndAdd(init, u, x);
    }

    internal readonly struct Avx2Dot : IInt8BlockDot
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(Vector256<sbyte> w, Vector256<sbyte> x) =>
            Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w)), Vector256<short>.One);

        /// <summary>
        /// vpmaddubsw's int16 pair sums would saturate for u up to 255 (2·255·127 > 32767), so u goes
        /// in two parts, u &amp; 127 and u &amp; 128, whose pair sums stay within 2·128·127 = 32512.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> DotUnsigned(Vector256<int> init, Vector256<byte> u, Vector256<sbyte> x) =>
            init
            + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u & Vector256.Create((byte)0x7F), x), Vector256<short>.One)
            + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u & Vector256.Create((byte)0x80), x), Vector256<short>.One);
    }

    internal readonly struct PortableDot : IInt8BlockDot
    {
        /// <summary>Products widened to int16 (|w·x| ≤ 128·127 fits), then each lane's four summed in int32.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(Vector256<sbyte> w, Vector256<sbyte> x)
        {
            (Vector256<short> wLow, Vector256<short> wHigh) = Vector256.Widen(w);
            (Vector256<short> xLow, Vector256<short> xHigh) = Vector256.Widen(x);
            (Vector256<int> p0, Vector256<int> p1) = Vector256.Widen(wLow * xLow);
            (Vector256<int> p2, Vector256<int> p3) = Vector256.Widen(wHigh * xHigh);
            return Vector256.Create(
                Vector128.Sum(p0.GetLower()), Vector128.Sum(p0.GetUpper()), Vector128.Sum(p1.GetLower()), Vector128.Sum(p1.GetUpper()),
                Vector128.Sum(p2.GetLower()), Vector128.Sum(p2.GetUpper()), Vector128.Sum(p3.GetLower()), Vector128.Sum(p3.GetUpper()));
        }

        /// <summary>As <see cref="Dot"/> with u widened unsigned: |u·x| ≤ 255·127 fits int16.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> DotUnsigned(Vector256<int> init, Vector256<byte> u, Vector256<sbyte> x)
        {
            (Vector256<ushort> uLow, Vector256<ushort> uHigh) = Vector256.Widen(u);
            (Vector256<short> xLow, Vector256<short> xHigh) = Vector256.Widen(x);
            (Vector256<int> p0, Vector256<int> p1) = Vector256.Widen(uLow.AsInt16() * xLow);
            (Vector256<int> p2, Vector256<int> p3) = Vector256.Widen(uHigh.AsInt16() * xHigh);
            return init + Vector256.Create(
                Vector128.Sum(p0.GetLower()), Vector128.Sum(p0.GetUpper()), Vector128.Sum(p1.GetLower()), Vector128.Sum(p1.GetUpper()),
                Vector128.Sum(p2.GetLower()), Vector128.Sum(p2.GetUpper()), Vector128.Sum(p3.GetLower()), Vector128.Sum(p3.GetUpper()));
        }
    }
}
