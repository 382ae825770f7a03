using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Rotary position embeddings, in place on x laid out [seq, heads, headDim]. Pair i of a head turns
/// by pos · theta^(-2i/headDim). Angles are formed exactly as llama2.c does — float32
/// 1/powf(theta, 2i/headDim), float32 product with pos, then cosf/sinf — because reference logits come
/// from llama2.c and a differently rounded angle at position 2000 is already visible downstream.
/// A <see cref="RopeFrequencyScaling"/> (Hugging Face rope_scaling) then rescales each frequency.
/// </summary>
internal static class Rope
{
    /// <summary>Largest head dimension accepted: the per-row cos/sin tables live on the stack.</summary>
    public const int MaxHeadDim = 4096;

    /// <summary>Meta / llama2.c convention: rotates pairs (x[2i], x[2i+1]) at positions startPos, startPos+1, ….</summary>
    public static void RopeInterleaved(Span<float> x, int seq, int heads, int headDim, int startPos, float theta, RopeFrequencyScaling scaling = default) =>
        Run(null, x, seq, heads, headDim, startPos, default, theta, scaling, interleaved: true);

    /// <summary>Meta / llama2.c convention at explicit per-row positions.</summary>
    public static void RopeInterleaved(Span<float> x, int seq, int heads, int headDim, ReadOnlySpan<int> positions, float theta, RopeFrequencyScaling scaling = default) =>
        Run(null, x, seq, heads, headDim, -1, positions, theta, scaling, interleaved: true);

    /// <inheritdoc cref="RopeInterleaved(Span{float}, int, int, int, int, float, RopeFrequencyScaling)"/>
    public static void RopeInterleaved(AiCoreGrid grid, Span<float> x, int seq, int heads, int headDim, int startPos, float theta, RopeFrequencyScaling scaling = default) =>
        Run(grid, x, seq, heads, headDim, startPos, default, theta, scaling, interleaved: true);

    /// <inheritdoc cref="RopeInterleaved(Span{float}, int, int, int, ReadOnlySpan{int}, float, RopeFrequencyScaling)"/>
    public static void RopeInterleaved(AiCoreGrid grid, Span<float> x, int seq, int heads, int headDim, ReadOnlySpan<int> positions, float theta, RopeFrequencyScaling scaling = default) =>
        Run(grid, x, seq, heads, headDim, -1, positions, theta, scaling, interleaved: true);

    /// <summary>Hugging Face rotate_half convention: rotates pairs (x[i], x[i + headDim/2]) at positions startPos, ….</summary>
    public static void RopeHalf(Span<float> x, int seq, int heads, int headDim, int startPos, float theta, RopeFrequencyScaling scaling = default) =>
        Run(null, x, seq, heads, headDim, startPos, default, theta, scaling, interleaved: false);

    /// <summary>Hugging Face rotate_half convention at explicit per-row positions.</summary>
    public static void RopeHalf(Span<float> x, int seq, int heads, int headDim, ReadOnlySpan<int> positions, float theta, RopeFrequencyScaling scaling = default) =>
        Run(null, x, seq, heads, headDim, -1, positions, theta, scaling, interleaved: false);

    /// <inheritdoc cref="RopeHalf(Span{float}, int, int, int, int, float, RopeFrequencyScaling)"/>
    public static void RopeHalf(AiCoreGrid grid, Span<float> x, int seq, int heads, int headDim, int startPos, float theta, RopeFrequencyScaling scaling = default) =>
        Run(grid, x, seq, heads, headDim, startPos, default, theta, scaling, interleaved: false);

    /// <inheritdoc cref="RopeHalf(Span{float}, int, int, int, ReadOnlySpan{int}, float, RopeFrequencyScaling)"/>
    public static void RopeHalf(AiCoreGrid grid, Span<float> x, int seq, int heads, int headDim, ReadOnlySpan<int> positions, float theta, RopeFrequencyScaling scaling = default) =>
        Run(grid, x, seq, heads, headDim, -1, positions, theta, scaling, interleaved: false);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Run(AiCoreGrid? grid, Span<float> x, int seq, int heads, int headDim, int startPos, ReadOnlySpan<int> positions, float theta, RopeFrequencyScaling scaling, bool interleaved)
    {
        scaling.Validate();
        KernelArgs.RequireAtLeast(seq, 0, nameof(seq));
        KernelArgs.RequireAtLeast(heads, 1, nameof(heads));
        KernelArgs.RequireAtLeast(headDim, 2, nameof(headDim));
        if ((headDim & 1) != 0 || headDim > MaxHeadDim)
        {
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"{nameof(headDim)} must be even and at most {MaxHeadDim} (got {headDim}).");
        }
        KernelArgs.RequireLength(x.Length, (long)seq * heads * headDim, nameof(x));
        bool explicitPositions = startPos < 0;
        long lastPosition = (long)startPos + seq - 1;
        if (explicitPositions)
        {
            KernelArgs.RequireLength(positions.Length, seq, nameof(positions));
            lastPosition = 0;
            foreach (int p in positions)
            {
                KernelArgs.RequireAtLeast(p, 0, nameof(positions));
                lastPosition = Math.Max(lastPosition, p);
            }
        }
        int half = headDim / 2;
        float* freq = stackalloc float[half];
        for (int i = 0; i < half; i++)
        {
            freq[i] = scaling.Apply(1.0f / MathF.Pow(theta, (2 * i) / (float)headDim));
        }
        fixed (float* px = x)
        fixed (int* pp = positions)
        {
            var kernel = new RopeKernel
            {
                X = px, Freq = freq, Positions = explicitPositions ? pp : null, StartPos = startPos,
                Seq = seq, Heads = heads, HeadDim = headDim, Interleaved = interleaved,
                Angles = seq > 0 ? RopeAngles.For(theta, headDim, scaling, freq, (int)Math.Min(lastPosition, int.MaxValue)) : null,
            };
            long total = (long)seq * heads * headDim;
            if (grid is null || grid.CoreCount == 1 || seq < 2 || total < Elementwise.ParallelThreshold)
            {
                kernel.RowsPerBlock = Math.Max(seq, 1);
                kernel.Execute(0);
            }
            else
            {
                kernel.RowsPerBlock = Math.Clamp((1 << 14) / (heads * headDim), 1, seq);
                grid.Launch((seq + kernel.RowsPerBlock - 1) / kernel.RowsPerBlock, ref kernel);
            }
        }
    }

    private unsafe struct RopeKernel : IBlockKernel
    {
        public float* X;
        public float* Freq;
        public int* Positions;
        public int StartPos;
        public int Seq;
        public int Heads;
        public int HeadDim;
        public int RowsPerBlock;
        public bool Interleaved;

        /// <summary>The positions' angles formed once (<see cref="RopeAngles"/>); null past its reach.</summary>
        public RopeAngles? Angles;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int block)
        {
            int first = block * RowsPerBlock;
            int end = Math.Min(first + RowsPerBlock, Seq);
            // Per-row cos/sin expanded to headDim lanes, so every head of the row is a plain
            // multiply-add over contiguous memory with no per-element trigonometry.
            float* cos = stackalloc float[HeadDim];
            float* sin = stackalloc float[HeadDim];
            int half = HeadDim / 2;
            for (int r = first; r < end; r++)
            {
                int pos = Positions is null ? StartPos + r : Positions[r];
                float* rowCos = Angles?.Cos(pos), rowSin = Angles?.Sin(pos);
                if (rowCos != null && !Interleaved)
                {
                    // rotate_half reads the table's rows as they are.
                    float* tableRow = X + (nint)r * Heads * HeadDim;
                    for (int h = 0; h < Heads; h++)
                    {
                        RotateHalf(tableRow + h * HeadDim, rowCos, rowSin, half);
                    }
                    continue;
                }
                for (int i = 0; i < half; i++)
                {
                    float fcr = rowCos != null ? rowCos[i] : MathF.Cos(pos * Freq[i]);
                    float fci = rowSin != null ? rowSin[i] : MathF.Sin(pos * Freq[i]);
                    if (Interleaved)
                    {
                        cos[2 * i] = fcr;
                        cos[2 * i + 1] = fcr;
                        sin[2 * i] = -fci;
                        sin[2 * i + 1] = fci;
                    }
                    else
                    {
                        cos[i] = fcr;
                        sin[i] = fci;
                    }
                }
                float* row = X + (nint)r * Heads * HeadDim;
                for (int h = 0; h < Heads; h++)
                {
                    if (Interleaved)
                    {
                        RotateInterleaved(row + h * HeadDim, cos, sin, HeadDim);
                    }
                    else
                    {
                        RotateHalf(row + h * HeadDim, cos, sin, half);
                    }
                }
            }
        }
    }

    // x'[2i] = x[2i]·c - x[2i+1]·s and x'[2i+1] = x[2i]·s + x[2i+1]·c, i.e. x·cos + swapPairs(x)·(∓sin).
    // Plain multiplies and adds, no FMA, so each element rounds as llama2.c's scalar loop does.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void RotateInterleaved(float* x, float* cos, float* sin, int headDim)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var swap = Vector512.Create(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
            for (; i <= headDim - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var v = Vector512.Load(x + i);
                var swapped = Vector512.Shuffle(v, swap);
                (v * Vector512.Load(cos + i) + swapped * Vector512.Load(sin + i)).Store(x + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var swap = Vector256.Create(1, 0, 3, 2, 5, 4, 7, 6);
            for (; i <= headDim - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.Load(x + i);
                var swapped = Vector256.Shuffle(v, swap);
                (v * Vector256.Load(cos + i) + swapped * Vector256.Load(sin + i)).Store(x + i);
            }
        }
        for (; i < headDim; i += 2)
        {
            float v0 = x[i];
            float v1 = x[i + 1];
            float fcr = cos[i];
            float fci = sin[i + 1];
            x[i] = v0 * fcr - v1 * fci;
            x[i + 1] = v0 * fci + v1 * fcr;
        }
    }

    // x'[i] = x[i]·c - x[i+h]·s and x'[i+h] = x[i+h]·c + x[i]·s: q·cos + rotate_half(q)·sin.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void RotateHalf(float* x, float* cos, float* sin, int half)
    {
        float* x2 = x + half;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= half - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var a = Vector512.Load(x + i);
                var b = Vector512.Load(x2 + i);
                var c = Vector512.Load(cos + i);
                var s = Vector512.Load(sin + i);
                (a * c - b * s).Store(x + i);
                (b * c + a * s).Store(x2 + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= half - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var a = Vector256.Load(x + i);
                var b = Vector256.Load(x2 + i);
                var c = Vector256.Load(cos + i);
                var s = Vector256.Load(sin + i);
                (a * c - b * s).Store(x + i);
                (b * c + a * s).Store(x2 + i);
            }
        }
        for (; i < half; i++)
        {
            float a = x[i];
            float b = x2[i];
            x[i] = a * cos[i] - b * sin[i];
            x2[i] = b * cos[i] + a * sin[i];
        }
    }
}
