using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>An elementwise function of one operand, in scalar and vector form.</summary>
internal interface IUnaryOp
{
    float Invoke(float x);
    Vector512<float> Invoke(Vector512<float> x);
    Vector256<float> Invoke(Vector256<float> x);
}

/// <summary>An elementwise function of two operands, in scalar and vector form.</summary>
internal interface IBinaryOp
{
    float Invoke(float a, float b);
    Vector512<float> Invoke(Vector512<float> a, Vector512<float> b);
    Vector256<float> Invoke(Vector256<float> a, Vector256<float> b);
}

/// <summary>
/// Elementwise arithmetic on the vector unit. Outputs may alias an input exactly (in place).
/// The grid overloads split long vectors (prefill activations) across AI Cores; short ones
/// (a decode step's hidden state) stay on the calling core, where a launch would cost more than the work.
/// </summary>
internal static class Elementwise
{
    /// <summary>Below this many elements a launch costs more than it saves.</summary>
    internal const int ParallelThreshold = 1 << 16;

    /// <summary>Elements per block: 64 KiB per operand, so a block's streams stay in L2.</summary>
    private const int ChunkElements = 1 << 14;

    /// <summary>y = a + b.</summary>
    public static void Add(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => Binary(default(AddOp), a, b, y);

    /// <summary>y = a + b, split across the grid when long.</summary>
    public static void Add(AiCoreGrid grid, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => Binary(grid, default(AddOp), a, b, y);

    /// <summary>y = a * b.</summary>
    public static void Mul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => Binary(default(MulOp), a, b, y);

    /// <summary>y = a * b, split across the grid when long.</summary>
    public static void Mul(AiCoreGrid grid, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) => Binary(grid, default(MulOp), a, b, y);

    /// <summary>y = x * s.</summary>
    public static void Scale(ReadOnlySpan<float> x, float s, Span<float> y) => Unary(new ScaleOp(s), x, y);

    /// <summary>y = x * s, split across the grid when long.</summary>
    public static void Scale(AiCoreGrid grid, ReadOnlySpan<float> x, float s, Span<float> y) => Unary(grid, new ScaleOp(s), x, y);

    /// <summary>The residual connection: x += residual.</summary>
    public static void AddInPlace(Span<float> x, ReadOnlySpan<float> residual) => Binary(default(AddOp), x, residual, x);

    /// <summary>The residual connection, split across the grid when long.</summary>
    public static void AddInPlace(AiCoreGrid grid, Span<float> x, ReadOnlySpan<float> residual) => Binary(grid, default(AddOp), x, residual, x);

    /// <summary>Applies <paramref name="op"/> to every element on the calling core.</summary>
    internal static void Unary<TOp>(TOp op, ReadOnlySpan<float> x, Span<float> y) where TOp : struct, IUnaryOp
    {
        KernelArgs.RequireLength(y.Length, x.Length, nameof(y));
        KernelArgs.RequireSameOrDisjoint(x, y, nameof(x), nameof(y));
        UnaryCore(op, ref MemoryMarshal.GetReference(x), ref MemoryMarshal.GetReference(y), x.Length);
    }

    /// <summary>Applies <paramref name="op"/> to every element on the calling core.</summary>
    internal static void Binary<TOp>(TOp op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) where TOp : struct, IBinaryOp
    {
        KernelArgs.RequireLength(b.Length, a.Length, nameof(b));
        KernelArgs.RequireLength(y.Length, a.Length, nameof(y));
        KernelArgs.RequireSameOrDisjoint(a, y, nameof(a), nameof(y));
        KernelArgs.RequireSameOrDisjoint(b, y, nameof(b), nameof(y));
        BinaryCore(op, ref MemoryMarshal.GetReference(a), ref MemoryMarshal.GetReference(b), ref MemoryMarshal.GetReference(y), a.Length);
    }

    /// <summary>Applies <paramref name="op"/> to every element, in blocks across the grid when long.</summary>
    internal static unsafe void Unary<TOp>(AiCoreGrid grid, TOp op, ReadOnlySpan<float> x, Span<float> y) where TOp : struct, IUnaryOp
    {
        ArgumentNullException.ThrowIfNull(grid);
        if (x.Length < ParallelThreshold || grid.CoreCount == 1)
        {
            Unary(op, x, y);
            return;
        }
        KernelArgs.RequireLength(y.Length, x.Length, nameof(y));
        KernelArgs.RequireSameOrDisjoint(x, y, nameof(x), nameof(y));
        fixed (float* px = x, py = y)
        {
            var kernel = new UnaryKernel<TOp> { Op = op, X = px, Y = py, Length = x.Length };
            grid.Launch(BlockCount(x.Length), ref kernel);
        }
    }

    /// <summary>Applies <paramref name="op"/> to every element, in blocks across the grid when long.</summary>
    internal static unsafe void Binary<TOp>(AiCoreGrid grid, TOp op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y) where TOp : struct, IBinaryOp
    {
        ArgumentNullException.ThrowIfNull(grid);
        if (a.Length < ParallelThreshold || grid.CoreCount == 1)
        {
            Binary(op, a, b, y);
            return;
        }
        KernelArgs.RequireLength(b.Length, a.Length, nameof(b));
        KernelArgs.RequireLength(y.Length, a.Length, nameof(y));
        KernelArgs.RequireSameOrDisjoint(a, y, nameof(a), nameof(y));
        KernelArgs.RequireSameOrDisjoint(b, y, nameof(b), nameof(y));
        fixed (float* pa = a, pb = b, py = y)
        {
            var kernel = new BinaryKernel<TOp> { Op = op, A = pa, B = pb, Y = py, Length = a.Length };
            grid.Launch(BlockCount(a.Length), ref kernel);
        }
    }

    private static int BlockCount(int length) => (length + ChunkElements - 1) / ChunkElements;

    // The scalar tail (rather than one overlapping last vector) keeps in-place calls correct:
    // an overlapping vector would apply the op twice to elements already written.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void UnaryCore<TOp>(TOp op, ref float x, ref float y, int n) where TOp : struct, IUnaryOp
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                op.Invoke(Vector512.LoadUnsafe(ref x, (nuint)i)).StoreUnsafe(ref y, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                op.Invoke(Vector256.LoadUnsafe(ref x, (nuint)i)).StoreUnsafe(ref y, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            Unsafe.Add(ref y, i) = op.Invoke(Unsafe.Add(ref x, i));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BinaryCore<TOp>(TOp op, ref float a, ref float b, ref float y, int n) where TOp : struct, IBinaryOp
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                op.Invoke(Vector512.LoadUnsafe(ref a, (nuint)i), Vector512.LoadUnsafe(ref b, (nuint)i)).StoreUnsafe(ref y, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                op.Invoke(Vector256.LoadUnsafe(ref a, (nuint)i), Vector256.LoadUnsafe(ref b, (nuint)i)).StoreUnsafe(ref y, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            Unsafe.Add(ref y, i) = op.Invoke(Unsafe.Add(ref a, i), Unsafe.Add(ref b, i));
        }
    }

    private unsafe struct UnaryKernel<TOp> : IBlockKernel where TOp : struct, IUnaryOp
    {
        public TOp Op;
        public float* X;
        public float* Y;
        public int Length;

        public readonly void Execute(int block)
        {
            int start = block * ChunkElements;
            int n = Math.Min(ChunkElements, Length - start);
            UnaryCore(Op, ref X[start], ref Y[start], n);
        }
    }

    private unsafe struct BinaryKernel<TOp> : IBlockKernel where TOp : struct, IBinaryOp
    {
        public TOp Op;
        public float* A;
        public float* B;
        public float* Y;
        public int Length;

        public readonly void Execute(int block)
        {
            int start = block * ChunkElements;
            int n = Math.Min(ChunkElements, Length - start);
            BinaryCore(Op, ref A[start], ref B[start], ref Y[start], n);
        }
    }

    internal readonly struct AddOp : IBinaryOp
    {
        public float Invoke(float a, float b) => a + b;
        public Vector512<float> Invoke(Vector512<float> a, Vector512<float> b) => a + b;
        public Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => a + b;
    }

    internal readonly struct MulOp : IBinaryOp
    {
        public float Invoke(float a, float b) => a * b;
        public Vector512<float> Invoke(Vector512<float> a, Vector512<float> b) => a * b;
        public Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => a * b;
    }

    private readonly struct ScaleOp(float s) : IUnaryOp
    {
        public float Invoke(float x) => x * s;
        public Vector512<float> Invoke(Vector512<float> x) => x * s;
        public Vector256<float> Invoke(Vector256<float> x) => x * s;
    }
}
