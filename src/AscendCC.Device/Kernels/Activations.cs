using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Activation functions on the vector unit. Outputs may alias the input exactly. The grid overloads
/// split prefill-sized activations (seq × hidden) across AI Cores; decode-sized ones stay on the calling core.
/// </summary>
internal static class Activations
{
    /// <summary>y = max(x, 0); NaN stays NaN, as torch.relu.</summary>
    public static void Relu(ReadOnlySpan<float> x, Span<float> y) => Elementwise.Unary(default(ReluOp), x, y);

    /// <inheritdoc cref="Relu(ReadOnlySpan{float}, Span{float})"/>
    public static void Relu(AiCoreGrid grid, ReadOnlySpan<float> x, Span<float> y) => Elementwise.Unary(grid, default(ReluOp), x, y);

    /// <summary>y = x * sigmoid(x).</summary>
    public static void Silu(ReadOnlySpan<float> x, Span<float> y) => Elementwise.Unary(default(SiluOp), x, y);

    /// <inheritdoc cref="Silu(ReadOnlySpan{float}, Span{float})"/>
    public static void Silu(AiCoreGrid grid, ReadOnlySpan<float> x, Span<float> y) => Elementwise.Unary(grid, default(SiluOp), x, y);

    /// <summary>
    /// y = x/2 * (1 + erf(x/√2)), torch.nn.functional.gelu's default; with <paramref name="approximateTanh"/>
    /// y = x/2 * (1 + tanh(√(2/π)(x + 0.044715x³))), its approximate="tanh" form.
    /// </summary>
    public static void Gelu(ReadOnlySpan<float> x, Span<float> y, bool approximateTanh = false)
    {
        if (approximateTanh)
        {
            Elementwise.Unary(default(GeluTanhOp), x, y);
        }
        else
        {
            Elementwise.Unary(default(GeluErfOp), x, y);
        }
    }

    /// <inheritdoc cref="Gelu(ReadOnlySpan{float}, Span{float}, bool)"/>
    public static void Gelu(AiCoreGrid grid, ReadOnlySpan<float> x, Span<float> y, bool approximateTanh = false)
    {
        if (approximateTanh)
        {
            Elementwise.Unary(grid, default(GeluTanhOp), x, y);
        }
        else
        {
            Elementwise.Unary(grid, default(GeluErfOp), x, y);
        }
    }

    /// <summary>The Llama MLP gate: y = silu(gate) * up (llama2.c's hb = silu(hb) * hb2).</summary>
    public static void SiluMul(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y) => Elementwise.Binary(default(SiluMulOp), gate, up, y);

    /// <inheritdoc cref="SiluMul(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float})"/>
    public static void SiluMul(AiCoreGrid grid, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y) => Elementwise.Binary(grid, default(SiluMulOp), gate, up, y);

    private readonly struct ReluOp : IUnaryOp
    {
        public float Invoke(float x) => MathF.Max(x, 0f);
        public Vector512<float> Invoke(Vector512<float> x) => Vector512.Max(x, Vector512<float>.Zero);
        public Vector256<float> Invoke(Vector256<float> x) => Vector256.Max(x, Vector256<float>.Zero);
    }

    // x / (1 + e^-x): for very negative x the exponential overflows to +inf and the quotient is -0,
    // the correctly rounded limit, so no clamping is needed.
    private readonly struct SiluOp : IUnaryOp
    {
        public float Invoke(float x) => x / (1f + MathF.Exp(-x));
        public Vector512<float> Invoke(Vector512<float> x) => x / (Vector512<float>.One + VectorExp.Exp(-x));
        public Vector256<float> Invoke(Vector256<float> x) => x / (Vector256<float>.One + Vector256.Exp(-x));
    }

    private readonly struct SiluMulOp : IBinaryOp
    {
        public float Invoke(float gate, float up) => gate / (1f + MathF.Exp(-gate)) * up;
        public Vector512<float> Invoke(Vector512<float> gate, Vector512<float> up) => gate / (Vector512<float>.One + VectorExp.Exp(-gate)) * up;
        public Vector256<float> Invoke(Vector256<float> gate, Vector256<float> up) => gate / (Vector256<float>.One + Vector256.Exp(-gate)) * up;
    }

    // 0.5x(1 + tanh z) = x / (1 + e^(-2z)): one exponential, and no cancellation in 1 + tanh z for negative x.
    private readonly struct GeluTanhOp : IUnaryOp
    {
        private const float Sqrt2OverPi = 0.7978845608028654f;
        private const float Cubic = 0.044715f;

        public float Invoke(float x)
        {
            float z = Sqrt2OverPi * (x + Cubic * x * x * x);
            return x / (1f + MathF.Exp(-2f * z));
        }

        public Vector512<float> Invoke(Vector512<float> x)
        {
            var z = Sqrt2OverPi * (x + Cubic * x * x * x);
            return x / (Vector512<float>.One + VectorExp.Exp(z * -2f));
        }

        public Vector256<float> Invoke(Vector256<float> x)
        {
            var z = Sqrt2OverPi * (x + Cubic * x * x * x);
            return x / (Vector256<float>.One + Vector256.Exp(z * -2f));
        }
    }

    // .NET has no erf, so 1 + erf(u) comes from Abramowitz & Stegun 7.1.26: erfc(a) ≈ poly(t)·e^(-a²),
    // t = 1/(1 + p·a), |error| ≤ 1.5e-7 — below float's resolution of 1 + erf. For u < 0 we use
    // 1 + erf(u) = erfc(|u|) directly, so the negative tail keeps its relative accuracy instead of
    // cancelling in 1 - (1 - tiny).
    private readonly struct GeluErfOp : IUnaryOp
    {
        private const float InvSqrt2 = 0.70710678118654752f;
        private const float P = 0.3275911f;
        private const float A1 = 0.254829592f;
        private const float A2 = -0.284496736f;
        private const float A3 = 1.421413741f;
        private const float A4 = -1.453152027f;
        private const float A5 = 1.061405429f;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Invoke(float x)
        {
            float u = x * InvSqrt2;
            float a = MathF.Abs(u);
            float t = 1f / (1f + P * a);
            float poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
            float erfc = poly * MathF.Exp(-a * a);
            float onePlusErf = u >= 0f ? 2f - erfc : erfc;
            return 0.5f * x * onePlusErf;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Invoke(Vector512<float> x)
        {
            var u = x * InvSqrt2;
            var a = Vector512.Abs(u);
            var t = Vector512<float>.One / Vector512.FusedMultiplyAdd(Vector512.Create(P), a, Vector512<float>.One);
            var poly = Vector512.FusedMultiplyAdd(Vector512.Create(A5), t, Vector512.Create(A4));
            poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(A3));
            poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(A2));
            poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(A1));
            var erfc = poly * t * VectorExp.Exp(-(a * a));
            var onePlusErf = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(u, Vector512<float>.Zero), Vector512.Create(2f) - erfc, erfc);
            return 0.5f * x * onePlusErf;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Invoke(Vector256<float> x)
        {
            var u = x * InvSqrt2;
            var a = Vector256.Abs(u);
            var t = Vector256<float>.One / Vector256.FusedMultiplyAdd(Vector256.Create(P), a, Vector256<float>.One);
            var poly = Vector256.FusedMultiplyAdd(Vector256.Create(A5), t, Vector256.Create(A4));
            poly = Vector256.FusedMultiplyAdd(poly, t, Vector256.Create(A3));
            poly = Vector256.FusedMultiplyAdd(poly, t, Vector256.Create(A2));
            poly = Vector256.FusedMultiplyAdd(poly, t, Vector256.Create(A1));
            var erfc = poly * t * Vector256.Exp(-(a * a));
            var onePlusErf = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(u, Vector256<float>.Zero), Vector256.Create(2f) - erfc, erfc);
            return 0.5f * x * onePlusErf;
        }
    }
}
