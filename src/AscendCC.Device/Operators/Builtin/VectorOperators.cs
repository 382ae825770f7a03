using System.Runtime.CompilerServices;
using AscendCC.Device.Kernels;

namespace AscendCC.Device.Operators.Builtin;

/// <summary>y = a + b.</summary>
internal sealed class AddOperator() : OperatorBase("add", "a:f32[n] b:f32[n] -> y:f32[n] | n", ["a", "b", "y"], [2], 1)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int n = c.Int(0, "n", 1);
        Elementwise.Add(c.Grid, c.Buffer<float>(0, n), c.Buffer<float>(1, n), c.Buffer<float>(2, n));
    }
}

/// <summary>y = a ⊙ b.</summary>
internal sealed class MulOperator() : OperatorBase("mul", "a:f32[n] b:f32[n] -> y:f32[n] | n", ["a", "b", "y"], [2], 1)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int n = c.Int(0, "n", 1);
        Elementwise.Mul(c.Grid, c.Buffer<float>(0, n), c.Buffer<float>(1, n), c.Buffer<float>(2, n));
    }
}

/// <summary>y = s·x.</summary>
internal sealed class ScaleOperator() : OperatorBase("scale", "x:f32[n] -> y:f32[n] | n s", ["x", "y"], [1], 2)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int n = c.Int(0, "n", 1);
        Elementwise.Scale(c.Grid, c.Buffer<float>(0, n), c.Float(1, "s"), c.Buffer<float>(1, n));
    }
}

/// <summary>Element-wise activations: relu, silu, gelu (erf), gelu_tanh.</summary>
internal sealed class ActivationOperator(string name) : OperatorBase(name, "x:f32[n] -> y:f32[n] | n", ["x", "y"], [1], 1)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int n = c.Int(0, "n", 1);
        Span<float> x = c.Buffer<float>(0, n), y = c.Buffer<float>(1, n);
        switch (Name)
        {
            case "relu": Activations.Relu(c.Grid, x, y); break;
            case "silu": Activations.Silu(c.Grid, x, y); break;
            case "gelu": Activations.Gelu(c.Grid, x, y, approximateTanh: false); break;
            default: Activations.Gelu(c.Grid, x, y, approximateTanh: true); break;
        }
    }
}

/// <summary>y = silu(gate) ⊙ up: the Llama MLP's gate.</summary>
internal sealed class SiluMulOperator() : OperatorBase("silu_mul", "gate:f32[n] up:f32[n] -> y:f32[n] | n", ["gate", "up", "y"], [2], 1)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int n = c.Int(0, "n", 1);
        Activations.SiluMul(c.Grid, c.Buffer<float>(0, n), c.Buffer<float>(1, n), c.Buffer<float>(2, n));
    }
}

/// <summary>Row-wise numerically stable softmax.</summary>
internal sealed class SoftmaxOperator() : OperatorBase("softmax", "x:f32[rows,cols] -> y:f32[rows,cols] | rows cols", ["x", "y"], [1], 2)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int rows = c.Int(0, "rows", 1), cols = c.Int(1, "cols", 1);
        SoftmaxKernels.Softmax(c.Grid, c.Buffer<float>(0, (long)rows * cols), c.Buffer<float>(1, (long)rows * cols), rows, cols);
    }
}

/// <summary>RMSNorm as Llama computes it.</summary>
internal sealed class RmsNormOperator() : OperatorBase("rms_norm", "x:f32[rows,dim] weight:f32[dim] -> y:f32[rows,dim] | rows dim eps", ["x", "weight", "y"], [2], 3)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int rows = c.Int(0, "rows", 1), dim = c.Int(1, "dim", 1);
        Norms.RmsNorm(c.Grid, c.Buffer<float>(0, (long)rows * dim), c.Buffer<float>(1, dim), c.Buffer<float>(2, (long)rows * dim), rows, dim, c.Float(2, "eps"));
    }
}

/// <summary>
/// RMSNorm over each head of a row of heads: Qwen3's q_norm and k_norm, one head_dim-wide weight
/// shared by every head, applied to q and k before RoPE. rms_norm over seq·heads rows of head_dim,
/// with the row count formed here from the two scalars, so a pass's step block needs no entry of its own.
/// </summary>
internal sealed class RmsNormHeadsOperator() : OperatorBase("rms_norm_heads", "x:f32[seq,heads,head_dim] weight:f32[head_dim] -> y:f32[seq,heads,head_dim] | seq heads head_dim eps", ["x", "weight", "y"], [2], 4)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int seq = c.Int(0, "seq", 1), heads = c.Int(1, "heads", 1), headDim = c.Int(2, "head_dim", 1);
        // seq·heads is formed in 64 bits: a product past int's range is refused by Buffer (no buffer holds it), never wrapped.
        long rows = (long)seq * heads;
        Norms.RmsNorm(c.Grid, c.Buffer<float>(0, rows * headDim), c.Buffer<float>(1, headDim), c.Buffer<float>(2, rows * headDim), (int)rows, headDim, c.Float(3, "eps"));
    }
}

/// <summary>LayerNorm as torch computes it.</summary>
internal sealed class LayerNormOperator() : OperatorBase("layer_norm", "x:f32[rows,dim] weight:f32[dim] bias:f32[dim] -> y:f32[rows,dim] | rows dim eps", ["x", "weight", "bias", "y"], [3], 3)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int rows = c.Int(0, "rows", 1), dim = c.Int(1, "dim", 1);
        Norms.LayerNorm(c.Grid, c.Buffer<float>(0, (long)rows * dim), c.Buffer<float>(1, dim), c.Buffer<float>(2, dim),
            c.Buffer<float>(3, (long)rows * dim), rows, dim, c.Float(2, "eps"));
    }
}

/// <summary>
/// Rotary position embedding in place, interleaved pairs (Meta) or half rotation (Hugging Face).
/// scaling is Hugging Face's rope_scaling (0 none, 1 linear, 2 llama3); its parameters are 0 when unused,
/// so a plain-RoPE launch encodes (and measures) the same way every time.
/// </summary>
internal sealed class RopeOperator(string name) : OperatorBase(name,
    "x:f32[seq,heads,head_dim] -> x | seq heads head_dim start_pos theta scaling factor low_freq_factor high_freq_factor original_max_positions",
    ["x"], [0], 10)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int seq = c.Int(0, "seq", 1), heads = c.Int(1, "heads", 1), headDim = c.Int(2, "head_dim", 2), startPos = c.Int(3, "start_pos");
        float theta = c.Float(4, "theta");
        var scaling = new RopeFrequencyScaling((RopeScalingKind)c.Int(5, "scaling", 0, (int)RopeScalingKind.Llama3),
            c.Double(6, "factor"), c.Double(7, "low_freq_factor"), c.Double(8, "high_freq_factor"), c.Int(9, "original_max_positions"));
        Span<float> x = c.Buffer<float>(0, (long)seq * heads * headDim);
        if (Name == "rope_interleaved")
        {
            Rope.RopeInterleaved(c.Grid, x, seq, heads, headDim, startPos, theta, scaling);
        }
        else
        {
            Rope.RopeHalf(c.Grid, x, seq, heads, headDim, startPos, theta, scaling);
        }
    }
}

/// <summary>
/// Batched rotary embeddings: each row turns by its own position, its segment's start plus its
/// offset in the segment (see <see cref="SequenceSegment"/>).
/// </summary>
internal sealed class RopeSegmentsOperator(string name) : OperatorBase(name,
    "x:f32[seq,heads,head_dim] segments:i32[segments,3] -> x | seq segments max_seq heads head_dim theta scaling factor low_freq_factor high_freq_factor original_max_positions",
    ["x", "segments"], [0], 11)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int seq = c.Int(0, "seq", 1), count = c.Int(1, "segments", 1), maxSeq = c.Int(2, "max_seq", 1), heads = c.Int(3, "heads", 1), headDim = c.Int(4, "head_dim", 2);
        float theta = c.Float(5, "theta");
        var scaling = new RopeFrequencyScaling((RopeScalingKind)c.Int(6, "scaling", 0, (int)RopeScalingKind.Llama3),
            c.Double(7, "factor"), c.Double(8, "low_freq_factor"), c.Double(9, "high_freq_factor"), c.Int(10, "original_max_positions"));
        ReadOnlySpan<SequenceSegment> segments = SequenceSegments.ReadRows(c.Buffer<int>(1, (long)count * SequenceSegment.Ints), count, seq, maxSeq);
        Span<int> positions = seq <= 4096 ? stackalloc int[seq] : new int[seq];
        int row = 0;
        foreach (SequenceSegment s in segments)
        {
            for (int i = 0; i < s.Length; i++)
            {
                positions[row++] = s.Start + i;
            }
        }
        Span<float> x = c.Buffer<float>(0, (long)seq * heads * headDim);
        if (Name == "rope_interleaved_segments")
        {
            Rope.RopeInterleaved(c.Grid, x, seq, heads, headDim, positions, theta, scaling);
        }
        else
        {
            Rope.RopeHalf(c.Grid, x, seq, heads, headDim, positions, theta, scaling);
        }
    }
}

/// <summary>Gathers each segment's last row: y[i] = x[the last row of segment i] (the rows a batched pass samples from).</summary>
internal sealed class SegmentLastRowsOperator() : OperatorBase("segment_last_rows", "x:f32[seq,cols] segments:i32[segments,3] -> y:f32[segments,cols] | seq segments cols",
    ["x", "segments", "y"], [2], 3)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int seq = c.Int(0, "seq", 1), count = c.Int(1, "segments", 1), cols = c.Int(2, "cols", 1);
        ReadOnlySpan<SequenceSegment> segments = SequenceSegments.ReadRows(c.Buffer<int>(1, (long)count * SequenceSegment.Ints), count, seq, int.MaxValue);
        Span<float> x = c.Buffer<float>(0, (long)seq * cols), y = c.Buffer<float>(2, (long)count * cols);
        int end = 0;
        for (int i = 0; i < segments.Length; i++)
        {
            end += segments[i].Length;
            x.Slice((end - 1) * cols, cols).CopyTo(y.Slice(i * cols, cols));
        }
    }
}

/// <summary>
/// Batched learned positions: y[row] = table[the row's position] for every row of every segment (as
/// slice_rows at the pass's start does for one sequence).
/// </summary>
internal sealed class PositionRowsOperator() : OperatorBase("position_rows", "table:f32[positions,cols] segments:i32[segments,3] -> y:f32[seq,cols] | seq segments positions cols",
    ["table", "segments", "y"], [2], 4)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int seq = c.Int(0, "seq", 1), count = c.Int(1, "segments", 1), positions = c.Int(2, "positions", 1), cols = c.Int(3, "cols", 1);
        ReadOnlySpan<SequenceSegment> segments = SequenceSegments.ReadRows(c.Buffer<int>(1, (long)count * SequenceSegment.Ints), count, seq, positions);
        Span<float> table = c.Buffer<float>(0, (long)positions * cols), y = c.Buffer<float>(2, (long)seq * cols);
        int row = 0;
        foreach (SequenceSegment s in segments)
        {
            table.Slice(s.Start * cols, s.Length * cols).CopyTo(y.Slice(row * cols, s.Length * cols));
            row += s.Length;
        }
    }
}

/// <summary>Embedding lookup from an f32/f16/bf16/q8_0/q4_0 table.</summary>
internal sealed class EmbeddingOperator() : OperatorBase("embedding", "table:dtype[vocab,dim] ids:i32[count] -> y:f32[count,dim] | count vocab dim dtype", ["table", "ids", "y"], [2], 4)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int count = c.Int(0, "count", 1), vocab = c.Int(1, "vocab", 1), dim = c.Int(2, "dim", 1);
        ElementType type = ElementTypeOf(ref c, 3);
        Embedding.EmbeddingGather(c.Buffer<byte>(0, ElementTypes.MatrixBytes(type, vocab, dim)), type, c.Buffer<int>(1, count),
            c.Buffer<float>(2, (long)count * dim), vocab, dim);
    }
}

/// <summary>Copies rows [start, start+rows) of x into y: e.g. the last position before the classifier.</summary>
internal sealed class SliceRowsOperator() : OperatorBase("slice_rows", "x:f32[*,cols] -> y:f32[rows,cols] | start rows cols", ["x", "y"], [1], 3)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        int start = c.Int(0, "start"), rows = c.Int(1, "rows", 1), cols = c.Int(2, "cols", 1);
        c.Buffer<float>(0, ((long)start + rows) * cols).Slice(start * cols, rows * cols).CopyTo(c.Buffer<float>(1, (long)rows * cols));
    }
}
