using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LlamaChat.Demo;

// Plain TorchSharp modules whose field names produce Hugging Face parameter names
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...), so the state dict is
// written to model.safetensors as is and the runtime's ModelCheckpoint reads it like any HF Llama.
// Field names are lower_snake_case on purpose: TorchSharp names parameters after the fields.
#pragma warning disable IDE1006, CA1051

/// <summary>The demo Llama's shape.</summary>
/// <param name="VocabSize">Tokens.</param>
/// <param name="Hidden">Model width.</param>
/// <param name="Intermediate">MLP width.</param>
/// <param name="Layers">Decoder blocks.</param>
/// <param name="Heads">Query heads.</param>
/// <param name="KvHeads">Key/value heads (grouped-query attention when fewer than <paramref name="Heads"/>).</param>
/// <param name="MaxPositions">Longest context.</param>
/// <param name="RmsEps">RMSNorm epsilon.</param>
/// <param name="RopeTheta">RoPE base.</param>
public sealed record DemoShape(int VocabSize, int Hidden, int Intermediate, int Layers, int Heads, int KvHeads, int MaxPositions, double RmsEps = 1e-5, double RopeTheta = 10000)
{
    /// <summary>Size of one head.</summary>
    public int HeadDim => Hidden / Heads;
}

/// <summary>RMSNorm: x / sqrt(mean(x²) + eps) · weight.</summary>
public sealed class DemoRmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;

    /// <summary>Creates the norm over a last dimension of <paramref name="dim"/>.</summary>
    public DemoRmsNorm(int dim, double eps) : base(nameof(DemoRmsNorm))
    {
        weight = new Parameter(ones(dim));
        _eps = eps;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return (input * rsqrt(input.pow(2).mean([-1L], keepdim: true) + _eps) * weight).MoveToOuterDisposeScope();
    }
}

/// <summary>Grouped-query causal self-attention with rotary embeddings in the Hugging Face rotate_half order.</summary>
public sealed class DemoAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear o_proj;
    private readonly DemoShape _shape;
    private readonly Tensor _cos;
    private readonly Tensor _sin;

    /// <summary>Creates the block; <paramref name="cos"/>/<paramref name="sin"/> are the shared [positions, headDim] RoPE tables.</summary>
    public DemoAttention(DemoShape shape, Tensor cos, Tensor sin) : base(nameof(DemoAttention))
    {
        ArgumentNullException.ThrowIfNull(shape);
        _shape = shape;
        q_proj = nn.Linear(shape.Hidden, shape.Heads * shape.HeadDim, hasBias: false);
        k_proj = nn.Linear(shape.Hidden, shape.KvHeads * shape.HeadDim, hasBias: false);
        v_proj = nn.Linear(shape.Hidden, shape.KvHeads * shape.HeadDim, hasBias: false);
        o_proj = nn.Linear(shape.Heads * shape.HeadDim, shape.Hidden, hasBias: false);
        _cos = cos;
        _sin = sin;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        long b = input.shape[0], t = input.shape[1];
        int hd = _shape.HeadDim;
        using var scope = NewDisposeScope();
        var q = Rotate(q_proj.call(input).view(b, t, _shape.Heads, hd).transpose(1, 2), t);
        var k = Rotate(k_proj.call(input).view(b, t, _shape.KvHeads, hd).transpose(1, 2), t);
        var v = v_proj.call(input).view(b, t, _shape.KvHeads, hd).transpose(1, 2);
        int groups = _shape.Heads / _shape.KvHeads;
        if (groups > 1)
        {
            // Each key/value head serves `groups` consecutive query heads, as in Hugging Face's repeat_kv.
            k = k.repeat_interleave(groups, dim: 1);
            v = v.repeat_interleave(groups, dim: 1);
        }
        var attended = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true);
        return o_proj.call(attended.transpose(1, 2).reshape(b, t, _shape.Heads * hd)).MoveToOuterDisposeScope();
    }

    private Tensor Rotate(Tensor x, long t)
    {
        long half = x.shape[3] / 2;
        var rotated = cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return x * _cos.narrow(0, 0, t) + rotated * _sin.narrow(0, 0, t);
    }
}

/// <summary>SiLU-gated MLP: down(silu(gate(x)) · up(x)).</summary>
public sealed class DemoMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear gate_proj;
    private readonly Linear up_proj;
    private readonly Linear down_proj;

    /// <summary>Creates the MLP.</summary>
    public DemoMlp(DemoShape shape) : base(nameof(DemoMlp))
    {
        ArgumentNullException.ThrowIfNull(shape);
        gate_proj = nn.Linear(shape.Hidden, shape.Intermediate, hasBias: false);
        up_proj = nn.Linear(shape.Hidden, shape.Intermediate, hasBias: false);
        down_proj = nn.Linear(shape.Intermediate, shape.Hidden, hasBias: false);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return down_proj.call(nn.functional.silu(gate_proj.call(input)) * up_proj.call(input)).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-norm decoder block.</summary>
public sealed class DemoDecoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly DemoAttention self_attn;
    private readonly DemoMlp mlp;
    private readonly DemoRmsNorm input_layernorm;
    private readonly DemoRmsNorm post_attention_layernorm;

    /// <summary>Creates the block.</summary>
    public DemoDecoderLayer(DemoShape shape, Tensor cos, Tensor sin) : base(nameof(DemoDecoderLayer))
    {
        ArgumentNullException.ThrowIfNull(shape);
        self_attn = new DemoAttention(shape, cos, sin);
        mlp = new DemoMlp(shape);
        input_layernorm = new DemoRmsNorm(shape.Hidden, shape.RmsEps);
        post_attention_layernorm = new DemoRmsNorm(shape.Hidden, shape.RmsEps);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var h = input + self_attn.call(input_layernorm.call(input));
        return (h + mlp.call(post_attention_layernorm.call(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>The decoder stack (Hugging Face "model").</summary>
public sealed class DemoModel : nn.Module<Tensor, Tensor>
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<DemoDecoderLayer> layers;
    private readonly DemoRmsNorm norm;

    /// <summary>Creates the stack.</summary>
    public DemoModel(DemoShape shape, Tensor cos, Tensor sin) : base(nameof(DemoModel))
    {
        ArgumentNullException.ThrowIfNull(shape);
        embed_tokens = nn.Embedding(shape.VocabSize, shape.Hidden);
        // N(0, 1) embeddings (TorchSharp's default) make the tied classifier's logits ~sqrt(hidden)
        // wide and the first steps diverge; Hugging Face Llama initialises with std 0.02.
        using (no_grad())
        {
            nn.init.normal_(embed_tokens.weight!, 0, 0.02);
        }
        layers = new ModuleList<DemoDecoderLayer>(Enumerable.Range(0, shape.Layers).Select(_ => new DemoDecoderLayer(shape, cos, sin)).ToArray());
        norm = new DemoRmsNorm(shape.Hidden, shape.RmsEps);
        RegisterComponents();
    }

    /// <summary>The token embedding, also the (tied) classifier.</summary>
    public Parameter EmbeddingWeight => embed_tokens.weight!;

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = embed_tokens.call(input);
        foreach (var layer in layers)
        {
            x = layer.call(x);
        }
        return norm.call(x).MoveToOuterDisposeScope();
    }
}

/// <summary>The causal LM: token ids [B, T] to logits [B, T, vocab], classifier tied to the embedding.</summary>
public sealed class DemoLlama : nn.Module<Tensor, Tensor>
{
    private readonly DemoModel model;
    private readonly Tensor _cos;
    private readonly Tensor _sin;

    /// <summary>Creates the model with TorchSharp's default initialisation (seed torch first for a reproducible one).</summary>
    public DemoLlama(DemoShape shape) : base(nameof(DemoLlama))
    {
        ArgumentNullException.ThrowIfNull(shape);
        Shape = shape;
        // float64 angles, cast once: the runtime computes its tables the same way.
        using (var scope = NewDisposeScope())
        {
            var invFreq = pow(shape.RopeTheta, -arange(0, shape.HeadDim, 2, dtype: ScalarType.Float64) / shape.HeadDim);
            var freqs = outer(arange(0, shape.MaxPositions, dtype: ScalarType.Float64), invFreq);
            var emb = cat([freqs, freqs], -1);
            _cos = emb.cos().to_type(ScalarType.Float32).DetachFromDisposeScope();
            _sin = emb.sin().to_type(ScalarType.Float32).DetachFromDisposeScope();
        }
        model = new DemoModel(shape, _cos, _sin);
        RegisterComponents();
    }

    /// <summary>The shape.</summary>
    public DemoShape Shape { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return matmul(model.call(input), model.EmbeddingWeight.t()).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _cos.Dispose();
            _sin.Dispose();
        }
        base.Dispose(disposing);
    }
}
#pragma warning restore IDE1006, CA1051
