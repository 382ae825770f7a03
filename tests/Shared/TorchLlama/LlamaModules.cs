using AscendCC.Runtime.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AscendCC.Tests.TorchLlama;

/// <summary>RMSNorm (TorchSharp has none): x / sqrt(mean(x^2) + eps) * weight.</summary>
public sealed class RMSNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;

    /// <summary>Creates the norm over the last dimension of size <paramref name="dim"/>.</summary>
    public RMSNorm(int dim, double eps) : base(nameof(RMSNorm))
    {
        weight = new Parameter(ones(dim));
        _eps = eps;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var ms = x.pow(2).mean([-1L], keepdim: true);
        return (x * rsqrt(ms + _eps) * weight).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Rotary position embedding in the Hugging Face rotate_half convention: within a head of size d,
/// dimension i pairs with i + d/2 and both rotate by angle pos * theta^(-2i/d), that inverse frequency
/// rescaled first when the configuration has rope_scaling (linear or llama3, as transformers computes it).
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    private readonly Tensor _cos;
    private readonly Tensor _sin;

    /// <summary>Precomputes cos/sin for positions [0, maxPositions), with <paramref name="scaling"/> when given.</summary>
    public RotaryEmbedding(int headDim, int maxPositions, double theta, RopeScaling? scaling = null)
    {
        // float64 angles so large positions do not lose precision before the float32 cast.
        using var invFreq = scaling is null
            ? pow(theta, -arange(0, headDim, 2, dtype: ScalarType.Float64) / headDim)
            : ScaledInverseFrequencies(headDim, theta, scaling).to_type(ScalarType.Float64);
        using var pos = arange(0, maxPositions, dtype: ScalarType.Float64);
        using var freqs = outer(pos, invFreq);
        using var emb = cat([freqs, freqs], -1);
        _cos = emb.cos().to_type(ScalarType.Float32).DetachFromDisposeScope();
        _sin = emb.sin().to_type(ScalarType.Float32).DetachFromDisposeScope();
        MaxPositions = maxPositions;
    }

    /// <summary>Number of precomputed positions.</summary>
    public int MaxPositions { get; }

    /// <summary>
    /// inv_freq with rope_scaling applied, transcribed from transformers' modeling_rope_utils in float32 as
    /// it computes them: _compute_linear_scaling_rope_parameters and _compute_llama3_parameters.
    /// </summary>
    public static Tensor ScaledInverseFrequencies(int headDim, double theta, RopeScaling scaling)
    {
        ArgumentNullException.ThrowIfNull(scaling);
        using var scope = NewDisposeScope();
        // inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        Tensor invFreq = 1.0 / pow(theta, arange(0, headDim, 2, dtype: ScalarType.Float32) / headDim);
        double factor = scaling.Factor;
        if (scaling.Type == RopeScaling.LinearType)
        {
            return (invFreq / factor).MoveToOuterDisposeScope();
        }
        if (scaling.Type != RopeScaling.Llama3Type)
        {
            throw new NotSupportedException($"rope_scaling '{scaling.Type}' is not implemented by the reference TorchSharp Llama.");
        }
        double low = scaling.LowFreqFactor, high = scaling.HighFreqFactor, oldContext = scaling.OriginalMaxPositionEmbeddings;
        double lowFreqWavelen = oldContext / low, highFreqWavelen = oldContext / high;
        Tensor wavelen = 2 * Math.PI / invFreq;
        // wavelen > low_freq_wavelen: divide by factor; wavelen < high_freq_wavelen: keep.
        Tensor llama = where(wavelen.gt(lowFreqWavelen), invFreq / factor, invFreq);
        Tensor smooth = (oldContext / wavelen - low) / (high - low);
        Tensor smoothed = (1 - smooth) * llama / factor + smooth * llama;
        Tensor medium = wavelen.lt(highFreqWavelen).logical_not().logical_and(wavelen.gt(lowFreqWavelen).logical_not());
        return where(medium, smoothed, llama).MoveToOuterDisposeScope();
    }

    /// <summary>Rotates x [B, heads, T, headDim] whose first position is <paramref name="start"/>.</summary>
    public Tensor Apply(Tensor x, long start)
    {
        long t = x.shape[2];
        if (start + t > MaxPositions)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"Positions up to {start + t} exceed the model's context of {MaxPositions}.");
        }
        using var scope = NewDisposeScope();
        var cos = _cos.narrow(0, start, t);
        var sin = _sin.narrow(0, start, t);
        long half = x.shape[3] / 2;
        var rotated = cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _cos.Dispose();
        _sin.Dispose();
    }
}

/// <summary>Grouped-query self-attention with a KV cache; its start position is the number of cached positions.</summary>
public sealed class LlamaAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear o_proj;
    private readonly RMSNorm? q_norm;
    private readonly RMSNorm? k_norm;
    private readonly RotaryEmbedding _rope;
    private readonly int _nHeads;
    private readonly int _nKvHeads;
    private readonly int _headDim;
    private readonly int _window;
    private Tensor? _kCache;
    private Tensor? _vCache;

    /// <summary>Creates the attention block for <paramref name="config"/>, sharing <paramref name="rope"/>.</summary>
    public LlamaAttention(LlamaConfig config, RotaryEmbedding rope) : base(nameof(LlamaAttention))
    {
        ArgumentNullException.ThrowIfNull(config);
        _nHeads = config.NumAttentionHeads;
        _nKvHeads = config.NumKeyValueHeads;
        _headDim = config.HeadDim;
        _window = config.SlidingWindow ?? 0;
        q_proj = nn.Linear(config.HiddenSize, _nHeads * _headDim, hasBias: false);
        k_proj = nn.Linear(config.HiddenSize, _nKvHeads * _headDim, hasBias: false);
        v_proj = nn.Linear(config.HiddenSize, _nKvHeads * _headDim, hasBias: false);
        o_proj = nn.Linear(_nHeads * _headDim, config.HiddenSize, hasBias: false);
        if (config.QkNorm)
        {
            // Qwen3: an RMSNorm over each head of q and of k, one head_dim-wide weight shared by the heads.
            q_norm = new RMSNorm(_headDim, config.RmsNormEps);
            k_norm = new RMSNorm(_headDim, config.RmsNormEps);
        }
        _rope = rope;
        RegisterComponents();
    }

    /// <summary>Positions already in the KV cache (the position of the next token).</summary>
    public long CachedPositions { get; private set; }

    /// <summary>Forgets every cached position.</summary>
    public void ResetCache()
    {
        _kCache?.Dispose();
        _vCache?.Dispose();
        _kCache = null;
        _vCache = null;
        CachedPositions = 0;
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], t = x.shape[1];
        long start = CachedPositions;
        using var scope = NewDisposeScope();
        var q = q_proj.call(x).view(b, t, _nHeads, _headDim);
        var k = k_proj.call(x).view(b, t, _nKvHeads, _headDim);
        if (q_norm is not null)
        {
            // As transformers' Qwen3Attention: normalised per head, before RoPE.
            q = q_norm.call(q);
            k = k_norm!.call(k);
        }
        q = _rope.Apply(q.transpose(1, 2), start);
        k = _rope.Apply(k.transpose(1, 2), start);
        var v = v_proj.call(x).view(b, t, _nKvHeads, _headDim).transpose(1, 2);

        if (_kCache is null || _kCache.shape[0] != b)
        {
            ResetCache();
            _kCache = zeros(b, _nKvHeads, _rope.MaxPositions, _headDim).DetachFromDisposeScope();
            _vCache = zeros(b, _nKvHeads, _rope.MaxPositions, _headDim).DetachFromDisposeScope();
        }
        _kCache.narrow(2, start, t).copy_(k);
        _vCache!.narrow(2, start, t).copy_(v);
        long total = start + t;
        var keys = _kCache.narrow(2, 0, total);
        var values = _vCache.narrow(2, 0, total);
        int groups = _nHeads / _nKvHeads;
        if (groups > 1)
        {
            // Each key/value head serves `groups` consecutive query heads.
            keys = keys.repeat_interleave(groups, dim: 1);
            values = values.repeat_interleave(groups, dim: 1);
        }
        // Query i sits at position start + i and may see keys 0..start + i.
        var mask = ones(t, total, dtype: ScalarType.Bool).tril(start);
        if (_window > 0)
        {
            // Mistral's sliding window, transformers' convention: key j > (start + i) - window.
            mask = mask.logical_and(ones(t, total, dtype: ScalarType.Bool).triu(start - _window + 1));
        }
        var attended = nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask: mask);
        CachedPositions = total;
        var merged = attended.transpose(1, 2).reshape(b, t, _nHeads * _headDim);
        return o_proj.call(merged).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            ResetCache();
        }
        base.Dispose(disposing);
    }
}

/// <summary>SiLU-gated feed-forward: down(silu(gate(x)) * up(x)).</summary>
public sealed class LlamaMLP : nn.Module<Tensor, Tensor>
{
    private readonly Linear gate_proj;
    private readonly Linear up_proj;
    private readonly Linear down_proj;

    /// <summary>Creates the MLP for <paramref name="config"/>.</summary>
    public LlamaMLP(LlamaConfig config) : base(nameof(LlamaMLP))
    {
        ArgumentNullException.ThrowIfNull(config);
        gate_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: false);
        up_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: false);
        down_proj = nn.Linear(config.IntermediateSize, config.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.call(nn.functional.silu(gate_proj.call(x)) * up_proj.call(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>One pre-norm decoder block: x + attn(norm(x)), then h + mlp(norm(h)).</summary>
public sealed class LlamaDecoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly LlamaAttention self_attn;
    private readonly LlamaMLP mlp;
    private readonly RMSNorm input_layernorm;
    private readonly RMSNorm post_attention_layernorm;

    /// <summary>Creates the block for <paramref name="config"/>.</summary>
    public LlamaDecoderLayer(LlamaConfig config, RotaryEmbedding rope) : base(nameof(LlamaDecoderLayer))
    {
        ArgumentNullException.ThrowIfNull(config);
        self_attn = new LlamaAttention(config, rope);
        mlp = new LlamaMLP(config);
        input_layernorm = new RMSNorm(config.HiddenSize, config.RmsNormEps);
        post_attention_layernorm = new RMSNorm(config.HiddenSize, config.RmsNormEps);
        RegisterComponents();
    }

    /// <summary>The attention block (for cache control).</summary>
    public LlamaAttention Attention => self_attn;

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.call(input_layernorm.call(x));
        return (h + mlp.call(post_attention_layernorm.call(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>The decoder stack without the classifier (Hugging Face "model").</summary>
public sealed class LlamaModel : nn.Module<Tensor, Tensor>
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly RMSNorm norm;

    /// <summary>Creates the stack for <paramref name="config"/>.</summary>
    public LlamaModel(LlamaConfig config, RotaryEmbedding rope) : base(nameof(LlamaModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize);
        layers = new ModuleList<LlamaDecoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new LlamaDecoderLayer(config, rope)).ToArray());
        norm = new RMSNorm(config.HiddenSize, config.RmsNormEps);
        RegisterComponents();
    }

    /// <summary>The token embedding weight [vocab, hidden] (also the classifier when tied).</summary>
    public Parameter EmbeddingWeight => embed_tokens.weight!;

    /// <summary>The decoder blocks.</summary>
    public IReadOnlyList<LlamaDecoderLayer> Layers => [.. layers];

    /// <summary>Token ids [B, T] to final hidden states [B, T, hidden].</summary>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var x = embed_tokens.call(tokens);
        foreach (var layer in layers)
        {
            x = layer.call(x);
        }
        return norm.call(x).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// A plain TorchSharp Llama (Llama 2/3, Mistral style) with Hugging Face parameter names: token ids
/// [B, T] in, logits [B, T, vocab] out, continuing from the positions already in the KV cache.
/// </summary>
public sealed class LlamaForCausalLM : nn.Module<Tensor, Tensor>
{
    private readonly LlamaModel model;
    private readonly Linear? lm_head;
    private readonly RotaryEmbedding _rope;

    /// <summary>Creates an uninitialised model for <paramref name="config"/> (load weights with <see cref="TorchLlamaLoader"/>).</summary>
    public LlamaForCausalLM(LlamaConfig config) : base(nameof(LlamaForCausalLM))
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config;
        _rope = new RotaryEmbedding(config.HeadDim, config.MaxPositionEmbeddings, config.RopeTheta, config.RopeScaling);
        model = new LlamaModel(config, _rope);
        // Tied models have no lm_head parameter: the classifier is the embedding matrix itself.
        lm_head = config.TieWordEmbeddings ? null : nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        RegisterComponents();
    }

    /// <summary>The hyperparameters.</summary>
    public LlamaConfig Config { get; }

    /// <summary>The decoder stack.</summary>
    public LlamaModel Model => model;

    /// <summary>Positions already processed since the last <see cref="ResetCache"/>.</summary>
    public long Position => model.Layers[0].Attention.CachedPositions;

    /// <summary>Starts a new sequence.</summary>
    public void ResetCache()
    {
        foreach (var layer in model.Layers)
        {
            layer.Attention.ResetCache();
        }
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var h = model.call(tokens);
        var logits = lm_head is null ? nn.functional.linear(h, model.EmbeddingWeight) : lm_head.call(h);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Greedy decoding: feeds the prompt in one pass, then appends the argmax token until
    /// <paramref name="maxNewTokens"/> are generated, an EOS id is produced, or the context is full.
    /// </summary>
    /// <returns>The generated ids (without the prompt).</returns>
    public IReadOnlyList<int> GenerateGreedy(IReadOnlyList<int> promptIds, int maxNewTokens)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        if (promptIds.Count == 0)
        {
            throw new ArgumentException("The prompt needs at least one token (usually BOS).", nameof(promptIds));
        }
        using var noGrad = no_grad();
        ResetCache();
        var generated = new List<int>();
        long[] input = promptIds.Select(i => (long)i).ToArray();
        while (generated.Count < maxNewTokens && Position + input.Length <= Config.MaxPositionEmbeddings)
        {
            using var scope = NewDisposeScope();
            var logits = call(tensor(input).unsqueeze(0));
            int next = (int)logits[0, -1].argmax().item<long>();
            generated.Add(next);
            if (Config.EosTokenIds.Contains(next))
            {
                break;
            }
            input = [next];
        }
        return generated;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _rope.Dispose();
        }
        base.Dispose(disposing);
    }
}
