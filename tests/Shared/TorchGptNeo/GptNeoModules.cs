using AscendCC.Runtime.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AscendCC.Tests.TorchGptNeo;

// A GPT-Neo written the way a TorchSharp user ports Hugging Face's modeling_gpt_neo.py: one class per
// Python class, fields named as its attributes, so named_parameters() gives the Hugging Face names
// (transformer.h.0.attn.attention.q_proj.weight, ...). Full-sequence forward, no KV cache.

/// <summary>GPTNeoSelfAttention: q/k/v without bias, out_proj with; global or local (windowed) causal mask; scores not scaled.</summary>
public sealed class GPTNeoSelfAttention : nn.Module<Tensor, Tensor>
{
    private readonly Linear q_proj, k_proj, v_proj, out_proj;
    private readonly int _heads, _headDim, _window;
    private readonly bool _scale;

    /// <summary>Creates the attention of one layer; <paramref name="window"/> 0 for global attention.</summary>
    /// <param name="hidden">hidden_size.</param>
    /// <param name="heads">num_heads.</param>
    /// <param name="window">window_size for a local layer, 0 for a global one.</param>
    /// <param name="scaleScores">
    /// Divide scores by √head_dim as most attention does. GPT-Neo does not; this switch is the classic
    /// porting bug, kept so a test can show that it changes the output.
    /// </param>
    public GPTNeoSelfAttention(int hidden, int heads, int window, bool scaleScores = false) : base(nameof(GPTNeoSelfAttention))
    {
        q_proj = nn.Linear(hidden, hidden, hasBias: false);
        k_proj = nn.Linear(hidden, hidden, hasBias: false);
        v_proj = nn.Linear(hidden, hidden, hasBias: false);
        out_proj = nn.Linear(hidden, hidden, hasBias: true);
        _heads = heads;
        _headDim = hidden / heads;
        _window = window;
        _scale = scaleScores;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        Tensor Split(Tensor y) => y.view(b, t, _heads, _headDim).transpose(1, 2);
        Tensor q = Split(q_proj.call(x)), k = Split(k_proj.call(x)), v = Split(v_proj.call(x));
        Tensor att = matmul(q, k.transpose(-1, -2));
        if (_scale)
        {
            att = att / Math.Sqrt(_headDim);
        }
        // Causal, and for a local layer only the last `window` positions: i - window < j <= i.
        Tensor i = arange(t).unsqueeze(1), j = arange(t).unsqueeze(0);
        Tensor allowed = j <= i;
        if (_window > 0)
        {
            allowed = allowed.logical_and(j > i - _window);
        }
        att = att.masked_fill(allowed.logical_not(), float.MinValue);
        att = nn.functional.softmax(att, -1);
        Tensor y = matmul(att, v).transpose(1, 2).contiguous().view(b, t, _heads * _headDim);
        return out_proj.call(y).MoveToOuterDisposeScope();
    }
}

/// <summary>GPTNeoAttention: the wrapper Hugging Face puts around the self-attention (hence ".attn.attention.").</summary>
public sealed class GPTNeoAttention : nn.Module<Tensor, Tensor>
{
    private readonly GPTNeoSelfAttention attention;

    /// <summary>Wraps one layer's self-attention.</summary>
    public GPTNeoAttention(int hidden, int heads, int window, bool scaleScores) : base(nameof(GPTNeoAttention))
    {
        attention = new GPTNeoSelfAttention(hidden, heads, window, scaleScores);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x) => attention.call(x);
}

/// <summary>GPTNeoMLP: c_fc, gelu_new, c_proj, both with bias.</summary>
public sealed class GPTNeoMLP : nn.Module<Tensor, Tensor>
{
    private readonly Linear c_fc, c_proj;

    /// <summary>Creates the MLP of width <paramref name="inner"/>.</summary>
    public GPTNeoMLP(int hidden, int inner) : base(nameof(GPTNeoMLP))
    {
        c_fc = nn.Linear(hidden, inner);
        c_proj = nn.Linear(inner, hidden);
        RegisterComponents();
    }

    /// <summary>NewGELUActivation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    public static Tensor GeluNew(Tensor x) => 0.5 * x * (1.0 + tanh(Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * pow(x, 3.0))));

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return c_proj.call(GeluNew(c_fc.call(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>GPTNeoBlock: pre-norm attention and MLP, each added to the residual stream.</summary>
public sealed class GPTNeoBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm ln_1, ln_2;
    private readonly GPTNeoAttention attn;
    private readonly GPTNeoMLP mlp;

    /// <summary>Creates layer <paramref name="layer"/> of <paramref name="config"/>.</summary>
    public GPTNeoBlock(GptNeoConfig config, int layer, bool scaleScores) : base(nameof(GPTNeoBlock))
    {
        ln_1 = nn.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        attn = new GPTNeoAttention(config.HiddenSize, config.NumAttentionHeads, config.WindowOf(layer), scaleScores);
        ln_2 = nn.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        mlp = new GPTNeoMLP(config.HiddenSize, config.IntermediateSize);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor h = x + attn.call(ln_1.call(x));
        return (h + mlp.call(ln_2.call(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>GPTNeoModel: token and learned position embeddings, the blocks, the final LayerNorm.</summary>
public sealed class GPTNeoModel : nn.Module<Tensor, Tensor>
{
    private readonly Embedding wte, wpe;
    private readonly ModuleList<GPTNeoBlock> h;
    private readonly LayerNorm ln_f;

    /// <summary>Creates the model for <paramref name="config"/>.</summary>
    public GPTNeoModel(GptNeoConfig config, bool scaleScores) : base(nameof(GPTNeoModel))
    {
        wte = nn.Embedding(config.VocabSize, config.HiddenSize);
        wpe = nn.Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        h = new ModuleList<GPTNeoBlock>(Enumerable.Range(0, config.NumHiddenLayers).Select(l => new GPTNeoBlock(config, l, scaleScores)).ToArray());
        ln_f = nn.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        RegisterComponents();
    }

    /// <summary>The token embedding (the tied classifier).</summary>
    public Parameter TokenEmbedding => wte.weight!;

    /// <inheritdoc />
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        Tensor x = wte.call(ids) + wpe.call(arange(ids.shape[1], dtype: ScalarType.Int64).unsqueeze(0));
        foreach (GPTNeoBlock block in h)
        {
            x = block.call(x);
        }
        return ln_f.call(x).MoveToOuterDisposeScope();
    }
}

/// <summary>GPTNeoForCausalLM with the classifier tied to wte: token ids [B, T] → logits [B, T, vocab].</summary>
public sealed class GPTNeoForCausalLM : nn.Module<Tensor, Tensor>
{
    private readonly GPTNeoModel transformer;

    /// <summary>Creates the model (random weights) for <paramref name="config"/>; <paramref name="scaleScores"/> plants the √d porting bug.</summary>
    public GPTNeoForCausalLM(GptNeoConfig config, bool scaleScores = false) : base(nameof(GPTNeoForCausalLM))
    {
        if (!config.TieWordEmbeddings)
        {
            throw new NotSupportedException("this test model ties lm_head to wte, as GPT-Neo checkpoints do");
        }
        transformer = new GPTNeoModel(config, scaleScores);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return nn.functional.linear(transformer.call(ids), transformer.TokenEmbedding).MoveToOuterDisposeScope();
    }

    /// <summary>A model with <paramref name="checkpoint"/>'s weights, copied by Hugging Face name.</summary>
    public static GPTNeoForCausalLM Load(ModelCheckpoint checkpoint, bool scaleScores = false)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var config = checkpoint.Config as GptNeoConfig ?? throw new ArgumentException($"{checkpoint.SourcePath} is a {checkpoint.Config.Family} checkpoint, not GPT-Neo", nameof(checkpoint));
        var model = new GPTNeoForCausalLM(config, scaleScores);
        using var noGrad = no_grad();
        foreach (var (name, parameter) in model.named_parameters())
        {
            CheckpointTensor source = checkpoint.GetTensor(name);
            using Tensor value = tensor(source.ReadFloat32(), source.Shape.ToArray());
            parameter.copy_(value);
        }
        return model;
    }
}
