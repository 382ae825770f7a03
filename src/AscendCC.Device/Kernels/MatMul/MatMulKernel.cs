using System.Runtime.CompilerServices;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>Dense f32 matrix products on the AI Cores (torch.mm / torch.bmm semantics, row-major).</summary>
internal static unsafe class MatMulKernel
{
    /// <summary>C[m,n] = A[m,k] · B[k,n]; all row-major contiguous float32.</summary>
    public static void MatMul(AiCoreGrid grid, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n)
        => MatMul(grid, a, b, c, m, k, n, Gemm.DefaultIsa);

    /// <summary>Batch of independent products; a [batch,m,k]; b [batch,k,n], or [batch,n,k] when transposeB; c [batch,m,n].</summary>
    public static void BatchMatMul(AiCoreGrid grid, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int batch, int m, int k, int n, bool transposeB)
        => BatchMatMul(grid, a, b, c, batch, m, k, n, transposeB, Gemm.DefaultIsa);

    /// <summary><see cref="MatMul(AiCoreGrid, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int)"/> with a chosen tile geometry (tests cover both).</summary>
    internal static void MatMul(AiCoreGrid grid, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, GemmIsa isa)
    {
        ArgumentNullException.ThrowIfNull(grid);
        KernelArguments.RequireDimensions(m, k, n);
        KernelArguments.RequireLength(a.Length, (long)m * k, nameof(a));
        KernelArguments.RequireLength(b.Length, (long)k * n, nameof(b));
        KernelArguments.RequireLength(c.Length, (long)m * n, nameof(c));
        fixed (float* pa = a, pb = b, pc = c)
        {
            KernelArguments.RequireDisjoint(pc, c.Length * 4L, pa, a.Length * 4L, nameof(a));
            KernelArguments.RequireDisjoint(pc, c.Length * 4L, pb, b.Length * 4L, nameof(b));
            var problem = new GemmProblem
            {
                A = pa, Lda = k, B = pb, Ldb = n, Layout = BLayout.KN, BType = ElementType.F32,
                C = pc, Ldc = n, M = m, N = n, K = k,
            };
            Gemm.Run(grid, problem, isa);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void BatchMatMul(AiCoreGrid grid, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int batch, int m, int k, int n, bool transposeB, GemmIsa isa)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        KernelArguments.RequireDimensions(m, k, n);
        KernelArguments.RequireLength(a.Length, (long)batch * m * k, nameof(a));
        KernelArguments.RequireLength(b.Length, (long)batch * k * n, nameof(b));
        KernelArguments.RequireLength(c.Length, (long)batch * m * n, nameof(c));
        fixed (float* pa = a, pb = b, pc = c)
        {
            KernelArguments.RequireDisjoint(pc, c.Length * 4L, pa, a.Length * 4L, nameof(a));
            KernelArguments.RequireDisjoint(pc, c.Length * 4L, pb, b.Length * 4L, nameof(b));
            var kernel = new BatchKernel
            {
                A = pa, B = pb, C = pc, M = m, K = k, N = n, TransposeB = transposeB, Isa = isa,
            };
            // Many small products (attention heads): one product per core, no intra-product sync.
            // Few large ones: each product uses every core in turn.
            long flops = 2L * m * k * n;
            bool perCore = batch >= 4 * grid.CoreCount || (batch >= grid.CoreCount && flops < (1L << 26));
            if (perCore)
            {
                grid.Launch(batch, ref kernel);
                return;
            }
            for (int i = 0; i < batch; i++)
            {
                var problem = kernel.Problem(i);
                Gemm.Run(grid, problem, isa);
            }
        }
    }

    private struct BatchKernel : IBlockKernel
    {
        public float* A, B, C;
        public int M, K, N;
        public bool TransposeB;
        public GemmIsa Isa;

        public readonly GemmProblem Problem(int item) => new()
        {
            A = A + (nint)item * M * K,
            Lda = K,
            B = B + (nint)item * K * N,
            Ldb = TransposeB ? K : N,
            Layout = TransposeB ? BLayout.NK : BLayout.KN,
            BType = ElementType.F32,
            C = C + (nint)item * M * N,
            Ldc = N,
            M = M,
            N = N,
            K = K,
        };

        public readonly void Execute(int block) => Gemm.RunOnThisCore(Problem(block), Isa);
    }
}

/// <summary>Argument checks shared by the matrix kernels; messages name the operand and both lengths.</summary>
internal static class KernelArguments
{
    public static void RequireDimensions(int m, int k, int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
    }

    public static void RequireLength(int actual, long expected, string operand)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"{operand} has length {actual}, expected {expected}.", operand);
        }
    }

    /// <summary>The kernels write the output while still reading the inputs, so they must not overlap.</summary>
    public static unsafe void RequireDisjoint(void* output, long outputBytes, void* input, long inputBytes, string operand)
    {
        byte* o = (byte*)output;
        byte* i = (byte*)input;
        if (outputBytes > 0 && inputBytes > 0 && o < i + inputBytes && i < o + outputBytes)
        {
            throw new ArgumentException($"The output overlaps {operand}.", operand);
        }
    }
}
