using AscendCC.Device.Kernels;

namespace AscendCC.Device.Operators.Builtin;

/// <summary>C[m,n] = A[m,k]·B[k,n].</summary>
internal sealed class MatMulOperator() : OperatorBase("matmul", "a:f32[m,k] b:f32[k,n] -> c:f32[m,n] | m k n", ["a", "b", "c"], [2], 3)
{
    public override void Execute(ref KernelContext c)
    {
        int m = c.Int(0, "m", 1), k = c.Int(1, "k", 1), n = c.Int(2, "n", 1);
        MatMulKernel.MatMul(c.Grid, c.Buffer<float>(0, (long)m * k), c.Buffer<float>(1, (long)k * n), c.Buffer<float>(2, (long)m * n), m, k, n);
    }
}

/// <summary>C[b] = A[b]·B[b] (or ·B[b]ᵀ).</summary>
internal sealed class BatchMatMulOperator() : OperatorBase("batch_matmul", "a:f32[b,m,k] b:f32[b,k,n]|[b,n,k] -> c:f32[b,m,n] | batch m k n transpose_b", ["a", "b", "c"], [2], 5)
{
    public override void Execute(ref KernelContext c)
    {
        int batch = c.Int(0, "batch", 1), m = c.Int(1, "m", 1), k = c.Int(2, "k", 1), n = c.Int(3, "n", 1);
        bool transposeB = c.Int(4, "transpose_b", 0, 1) == 1;
        MatMulKernel.BatchMatMul(c.Grid, c.Buffer<float>(0, (long)batch * m * k), c.Buffer<float>(1, (long)batch * k * n),
            c.Buffer<float>(2, (long)batch * m * n), batch, m, k, n, transposeB);
    }
}

/// <summary>y = x·Wᵀ + b, W in f32, f16 or bf16.</summary>
internal sealed class LinearOperator() : OperatorBase("linear", "x:f32[m,k] w:dtype[n,k] bias?:f32[n] -> y:f32[m,n] | m k n dtype", ["x", "weight", "bias", "y"], [3], 4)
{
    public override void Execute(ref KernelContext c)
    {
        int m = c.Int(0, "m", 1), k = c.Int(1, "k", 1), n = c.Int(2, "n", 1);
        ElementType wType = ElementTypeOf(ref c, 3);
        ReadOnlySpan<float> bias = c.IsNone(2) ? default : c.Buffer<float>(2, n);
        LinearKernel.Linear(c.Grid, c.Buffer<float>(0, (long)m * k), c.Buffer<byte>(1, (long)n * k * ElementTypes.SizeOf(wType)), wType,
            bias, c.Buffer<float>(3, (long)m * n), m, k, n);
    }
}
