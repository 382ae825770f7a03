using System.Runtime.CompilerServices;
using AscendCC.Device.Kernels;

namespace AscendCC.Device.Operators.Builtin;

/// <summary>C[m,n] = A[m,k]·B[k,n].</summary>
internal sealed class MatMulOperator() : OperatorBase("matmul", "a:f32[m,k] b:f32[k,n] -> c:f32[m,n] | m k n", ["a", "b", "c"], [2], 3)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int m = c.Int(0, "m", 1), k = c.Int(1, "k", 1), n = c.Int(2, "n", 1);
        MatMulKernel.MatMul(c.Grid, c.Buffer<float>(0, (long)m * k), c.Buffer<float>(1, (long)k * n), c.Buffer<float>(2, (long)m * n), m, k, n);
    }
}

/// <summary>C[b] = A[b]·B[b] (or ·B[b]ᵀ).</summary>
internal sealed class BatchMatMulOperator() : OperatorBase("batch_matmul", "a:f32[b,m,k] b:f32[b,k,n]|[b,n,k] -> c:f32[b,m,n] | batch m k n transpose_b", ["a", "b", "c"], [2], 5)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int batch = c.Int(0, "batch", 1), m = c.Int(1, "m", 1), k = c.Int(2, "k", 1), n = c.Int(3, "n", 1);
        bool transposeB = c.Int(4, "transpose_b", 0, 1) == 1;
        MatMulKernel.BatchMatMul(c.Grid, c.Buffer<float>(0, (long)batch * m * k), c.Buffer<float>(1, (long)batch * k * n),
            c.Buffer<float>(2, (long)batch * m * n), batch, m, k, n, transposeB);
    }
}

/// <summary>y = x·Wᵀ + b, W in f32, f16, bf16, q8_0, q4_0, q4_k or bf16 panels.</summary>
internal sealed class LinearOperator() : OperatorBase("linear", "x:f32[m,k] weight:dtype[n,k] bias?:f32[n] -> y:f32[m,n] | m k n dtype", ["x", "weight", "bias", "y"], [3], 4)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int m = c.Int(0, "m", 1), k = c.Int(1, "k", 1), n = c.Int(2, "n", 1);
        ElementType wType = ElementTypeOf(ref c, 3);
        ReadOnlySpan<float> bias = c.IsNone(2) ? default : c.Buffer<float>(2, n);
        LinearKernel.Linear(c.Grid, c.Buffer<float>(0, (long)m * k), c.Buffer<byte>(1, WeightBytes(wType, n, k)), wType,
            bias, c.Buffer<float>(3, (long)m * n), m, k, n);
    }

    /// <summary>The weight operand's bytes; a block-quantized weight whose rows are not whole blocks is a bad launch, named as such.</summary>
    internal static long WeightBytes(ElementType wType, int n, int k)
    {
        if (ElementTypes.IsBlockQuantized(wType) && k % BlockMatrix.BlockSize != 0)
        {
            throw new KernelArgumentException($"k = {k} is not a multiple of {BlockMatrix.BlockSize}, so the {wType} weight's rows are not whole blocks; keep this weight in f32, f16 or bf16");
        }
        if (ElementTypes.IsQ4_K(wType) && k % Q4_KMatrix.SuperBlockSize != 0)
        {
            throw new KernelArgumentException($"k = {k} is not a multiple of {Q4_KMatrix.SuperBlockSize}, so the {wType} weight's rows are not whole super-blocks; keep this weight in q8_0, q4_0, f16 or bf16");
        }
        if (wType is ElementType.Q4_0Panels or ElementType.Q4_KPanels && n % BlockMatrix.PanelRows != 0)
        {
            throw new KernelArgumentException($"n = {n} is not a multiple of {BlockMatrix.PanelRows}, so the weight is not whole {wType} panels; keep this weight in strips ({(wType == ElementType.Q4_0Panels ? "q4_0" : "q4_k")})");
        }
        if (wType == ElementType.BF16Panels && n % PanelGemv.PanelRows != 0)
        {
            throw new KernelArgumentException($"n = {n} is not a multiple of {PanelGemv.PanelRows}, so the weight is not whole BF16Panels panels; keep this weight in bf16");
        }
        return ElementTypes.MatrixBytes(wType, n, k);
    }
}

/// <summary>
/// Two or three bias-free linears over the same input in one launch (Llama's q/k/v or gate/up):
/// y_i = x·W_iᵀ; the third weight and output are absent when n2 = 0.
/// </summary>
internal sealed class LinearFusedOperator() : OperatorBase("linear_fused",
    "x:f32[m,k] w0:dtype[n0,k] w1:dtype[n1,k] w2?:dtype[n2,k] -> y0:f32[m,n0] y1:f32[m,n1] y2?:f32[m,n2] | m k n0 n1 n2 dtype",
    ["x", "w0", "w1", "w2", "y0", "y1", "y2"], [4, 5, 6], 6)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int m = c.Int(0, "m", 1), k = c.Int(1, "k", 1), n0 = c.Int(2, "n0", 1), n1 = c.Int(3, "n1", 1), n2 = c.Int(4, "n2", 0);
        ElementType wType = ElementTypeOf(ref c, 5);
        if (n2 == 0 && !(c.IsNone(3) && c.IsNone(6)))
        {
            throw new KernelArgumentException($"{Name}: n2 = 0 means no third weight and output; pass none for 'w2' and 'y2'");
        }
        LinearKernel.LinearFused(c.Grid, c.Buffer<float>(0, (long)m * k), wType, m, k,
            c.Buffer<byte>(1, LinearOperator.WeightBytes(wType, n0, k)), c.Buffer<float>(4, (long)m * n0), n0,
            c.Buffer<byte>(2, LinearOperator.WeightBytes(wType, n1, k)), c.Buffer<float>(5, (long)m * n1), n1,
            n2 == 0 ? default : c.Buffer<byte>(3, LinearOperator.WeightBytes(wType, n2, k)), n2 == 0 ? default : c.Buffer<float>(6, (long)m * n2), n2);
    }
}
