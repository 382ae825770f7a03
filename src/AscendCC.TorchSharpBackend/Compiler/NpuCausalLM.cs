using System.Runtime.CompilerServices;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using static TorchSharp.torch;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.TorchSharpBackend;

/// <summary>
/// A causal language model (Llama or GPT-Neo family) compiled onto the NPU: weights and KV cache in HBM, the
/// next token chosen on the device. Prefill and decode share one program (eager or graph).
/// </summary>
public sealed class NpuCausalLM : NpuModule
{
    // A semaphore, not a Monitor: generate's iterator holds the gate across yields, and
    // generate_async resumes it on whichever pool thread is free, so the owner must not be a thread.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CausalLM _model;

    private NpuCausalLM(NpuDeviceContext context, ExecutionMode mode, CausalLM model)
        : base(context, mode) => _model = model;

    /// <summary>The model's configuration.</summary>
    public ModelConfig Config => _model.Config;

    /// <summary>Tokens the KV cache holds.</summary>
    public int MaxContext => _model.MaxContext;

    /// <summary>Most tokens one forward pass takes.</summary>
    public int MaxBatchTokens => _model.MaxBatchTokens;

    /// <summary>Element type of the device KV cache (<see cref="NpuCompileOptions.KvCachePrecision"/>).</summary>
    public KvCachePrecision KvCachePrecision => _model.Options.KvCachePrecision;

    /// <inheritdoc />
    public override IReadOnlyList<string> Operators => _model.Program.Ops.Select(o => o.Operator).ToArray();

    /// <summary>
    /// Feeds <paramref name="tokens"/> at positions <paramref name="start_pos"/>.. (the KV cache keeps
    /// them) and returns the next token chosen on the device.
    /// </summary>
    public int forward(ReadOnlySpan<int> tokens, int start_pos, SamplingOptions? sampling = null)
    {
        using (Exclusive())
        {
            return _model.Forward(tokens, start_pos, sampling);
        }
    }

    /// <summary>
    /// Runs token ids [1, T] (int64 or int32) from position 0 and returns the logits of every position
    /// [1, T, vocab] (float32), as the module's own forward does, so code that computes a loss or
    /// inspects all positions runs unchanged. Prompts longer than <see cref="MaxBatchTokens"/> run in
    /// chunks. This uses a second device program (classifier over every row), bound on first use and
    /// sharing the weights and KV cache; <see cref="generate"/> and
    /// <see cref="forward(ReadOnlySpan{int}, int, SamplingOptions?)"/> keep the last-position
    /// classifier. The KV cache afterwards holds the T positions, like a prefill.
    /// </summary>
    public Tensor forward(Tensor input_ids)
    {
        ArgumentNullException.ThrowIfNull(input_ids);
        if (input_ids.dim() != 2 || input_ids.shape[0] != 1 || input_ids.dtype is not (ScalarType.Int64 or ScalarType.Int32))
        {
            throw new ArgumentException($"input_ids must be int64 or int32 of shape [1, T], got {input_ids.dtype} [{string.Join(", ", input_ids.shape)}]", nameof(input_ids));
        }
        int[] ids = input_ids.to_type(ScalarType.Int64).cpu().data<long>().Select(v => checked((int)v)).ToArray();
        if (ids.Length == 0)
        {
            throw new ArgumentException("input_ids must hold at least one token", nameof(input_ids));
        }
        Context.CheckHostRead("logits of a compiled language model");
        int vocab = Config.VocabSize;
        var logits = new float[(long)ids.Length * vocab];
        using (Exclusive())
        {
            for (int pos = 0; pos < ids.Length; pos += MaxBatchTokens)
            {
                float[] chunk = _model.ForwardAllLogits(ids.AsSpan(pos, Math.Min(MaxBatchTokens, ids.Length - pos)), pos);
                chunk.CopyTo(logits, (long)pos * vocab);
            }
        }
        return tensor(logits, [1, ids.Length, vocab]);
    }

    /// <summary>The logits [vocab] of the last position of the last forward pass.</summary>
    public Tensor logits()
    {
        Context.CheckHostRead("next-token logits of a compiled language model");
        using (Exclusive())
        {
            return tensor(_model.ReadLogits());
        }
    }

    /// <summary>
    /// Generates up to <paramref name="max_new_tokens"/> tokens after <paramref name="prompt"/> —
    /// prefill in chunks, then one decode step per token with the KV cache on the device — yielding
    /// each id as soon as it is chosen. Stops after an id in <paramref name="stop_tokens"/> (default:
    /// the configuration's EOS ids, included in the output) or when the context is full.
    /// </summary>
    public IEnumerable<int> generate(IReadOnlyList<int> prompt, int max_new_tokens, SamplingOptions? sampling = null, IReadOnlyCollection<int>? stop_tokens = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentOutOfRangeException.ThrowIfNegative(max_new_tokens);
        return Locked(_model.Generate(prompt, max_new_tokens, sampling, stop_tokens));
    }

    /// <summary>
    /// <see cref="generate"/> as an async stream: each decode step runs on the thread pool, so a UI
    /// or server loop stays responsive; cancellation is checked between tokens.
    /// </summary>
    public async IAsyncEnumerable<int> generate_async(IReadOnlyList<int> prompt, int max_new_tokens, SamplingOptions? sampling = null,
        IReadOnlyCollection<int>? stop_tokens = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using IEnumerator<int> steps = generate(prompt, max_new_tokens, sampling, stop_tokens).GetEnumerator();
        while (await Task.Run(steps.MoveNext, cancellationToken).ConfigureAwait(false))
        {
            yield return steps.Current;
        }
    }

    /// <summary>
    /// Streams the text generated after <paramref name="prompt"/>: each piece is the newly decoded
    /// suffix (a piece may span several tokens when a character needs more than one byte token).
    /// Stops at the tokenizer's or the configuration's end-of-sequence id, which is not emitted.
    /// </summary>
    public IEnumerable<string> stream_text(TextTokenizer tokenizer, string prompt, int max_new_tokens, SamplingOptions? sampling = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompt);
        if (tokenizer.VocabSize > Config.VocabSize)
        {
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {Config.VocabSize}; they do not belong together", nameof(tokenizer));
        }
        var stops = new HashSet<int>(Config.EosTokenIds) { tokenizer.EosId };
        return Stream(tokenizer, tokenizer.Encode(prompt, addBos: tokenizer.HasBos), max_new_tokens, sampling, stops);
    }

    /// <summary>The whole text generated after <paramref name="prompt"/> (see <see cref="stream_text"/>).</summary>
    public string generate_text(TextTokenizer tokenizer, string prompt, int max_new_tokens, SamplingOptions? sampling = null) =>
        string.Concat(stream_text(tokenizer, prompt, max_new_tokens, sampling));

    private IEnumerable<string> Stream(TextTokenizer tokenizer, IReadOnlyList<int> prompt, int max, SamplingOptions? sampling, HashSet<int> stops)
    {
        var generated = new List<int>();
        string emitted = "";
        foreach (int id in generate(prompt, max, sampling, stops))
        {
            if (stops.Contains(id))
            {
                yield break;
            }
            generated.Add(id);
            string text = tokenizer.Decode(generated);
            // A partial multi-byte character decodes to a replacement char that changes later; wait for it.
            if (text.StartsWith(emitted, StringComparison.Ordinal) && !text.EndsWith('\uFFFD'))
            {
                string piece = text[emitted.Length..];
                emitted = text;
                if (piece.Length > 0)
                {
                    yield return piece;
                }
            }
        }
    }

    private IEnumerable<int> Locked(IEnumerable<int> source)
    {
        using (Exclusive())
        {
            foreach (int id in source)
            {
                yield return id;
            }
        }
    }

    internal static NpuCausalLM Compile(nn.Module module, string family, NpuCompileOptions options, NpuDeviceContext context, ExecutionMode mode)
    {
        ModelConfig config = CausalLMParameters.ResolveConfig(options, family);
        var parameters = CausalLMParameters.Collect(module, config);
        ScalarType dtype = CausalLMParameters.WeightDType(parameters, config);
        WeightPrecision precision = options.WeightPrecision ?? dtype switch
        {
            ScalarType.Float16 => WeightPrecision.F16,
            ScalarType.BFloat16 => WeightPrecision.BF16,
            _ => WeightPrecision.F32,
        };
        KvCachePrecision kvPrecision = options.KvCachePrecision ?? KvCachePrecision.F32;
        var deviceOptions = new CausalLMOptions
        {
            Mode = mode, MaxContext = options.MaxContext, MaxBatchTokens = options.MaxBatchTokens, WeightPrecision = precision, KvCachePrecision = kvPrecision,
        };
        CausalLM model = CausalLM.Load(context.Runtime, config, options.Rope,
            name => CausalLMParameters.ToTensorData(name, parameters[name]), deviceOptions);
        var compiled = new NpuCausalLM(context, mode, model);
        try
        {
            if (options.SelfCheck)
            {
                double tolerance = options.SelfCheckTolerance ?? precision switch
                {
                    WeightPrecision.F16 => 5e-2,
                    WeightPrecision.BF16 => 0.25,
                    // Q8_0 rounds weights to about bf16's step and quantizes the activations too.
                    WeightPrecision.Q8_0 => 0.5,
                    // Q4_0's step is a sixteenth of a block's range; Q4_K's too, with a finer scale per block.
                    WeightPrecision.Q4_0 or WeightPrecision.Q4_K => 2.0,
                    _ => 1e-3,
                } + kvPrecision switch
                {
                    // Measured on stories260K over its first 64 positions: an f16 cache moves logits
                    // by up to 0.02, a bf16 cache by up to 0.13 (docs/architecture.md, "KV cache precision");
                    // on stories260K widened to head_dim 32, over 300 random probes of the self-check's 6
                    // tokens, the last logits move by up to 0.024 (f16), 1.16 (q8_0) and 12.9 (q4_0). At
                    // q4_0's tolerance the self-check catches only errors larger than the cache's own
                    // effect; pass SelfCheckTolerance to hold a model to a bound measured for it.
                    KvCachePrecision.F16 => 5e-2,
                    KvCachePrecision.BF16 => 0.5,
                    KvCachePrecision.Q8_0 => 1.5,
                    KvCachePrecision.Q4_0 => 16.0,
                    _ => 0,
                };
                compiled.RunSelfCheck(module, options, tolerance);
            }
            return compiled;
        }
        catch
        {
            compiled.Dispose();
            throw;
        }
    }

    private void RunSelfCheck(nn.Module module, NpuCompileOptions options, double tolerance)
    {
        if (module is not nn.Module<Tensor, Tensor> lm)
        {
            throw new NpuCompileException($"the self-check runs the module's forward on token ids [1, T], but {module.GetType().Name} is not a Module<Tensor, Tensor>; make it one, or set NpuCompileOptions.SelfCheck = false");
        }
        int count = Math.Clamp(options.ProbeTokens, 1, Math.Min(MaxBatchTokens, MaxContext));
        var random = new Random(options.ProbeSeed);
        int[] probe = Enumerable.Range(0, count).Select(_ => random.Next(Config.VocabSize)).ToArray();
        if (Config.BosTokenId is { } bos)
        {
            probe[0] = bos;
        }
        float[] expected;
        options.ResetState?.Invoke(module);
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            Tensor output = lm.call(tensor(probe.Select(i => (long)i).ToArray(), [1, count]));
            if (output.dim() != 3 || output.shape[0] != 1 || output.shape[1] != count || output.shape[2] != Config.VocabSize)
            {
                throw new NpuCompileException($"the self-check expects the module to map token ids [1, {count}] to logits [1, {count}, {Config.VocabSize}], but it returned [{string.Join(", ", output.shape)}]; set NpuCompileOptions.SelfCheck = false for modules with another signature");
            }
            expected = output[0, count - 1].to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
        }
        finally
        {
            options.ResetState?.Invoke(module);
        }
        float[] actual;
        using (Exclusive())
        {
            _model.Forward(probe, 0);
            actual = _model.ReadLogits();
        }
        double diff = MaxAbsDifference(expected, actual);
        SelfCheckMaxDifference = diff;
        if (!(diff <= tolerance))
        {
            string check = Config is GptNeoConfig
                ? "Check layer_norm_epsilon, window_size and attention_types in the configuration, that the module's activation is gelu_new (the tanh approximation) and that its attention does not scale scores by 1/sqrt(head_dim) (GPT-Neo's does not)"
                : "Check the RoPE convention (NpuCompileOptions.Rope: Half for Hugging Face modules, Interleaved for Meta/llama2.c style), rms_norm_eps and rope_theta in the configuration";
            throw new NpuSelfCheckException($"self-check failed: for {count} probe tokens the NPU's last-position logits differ from the module's CPU forward by up to {diff:g4}, above the tolerance {tolerance:g4}. {check}, and that the module's forward starts at position 0 (NpuCompileOptions.ResetState for modules with a KV cache)", diff, tolerance);
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        using (Exclusive())
        {
            _model.Dispose();
        }
    }

    private Gate Exclusive()
    {
        _gate.Wait();
        return new Gate(_gate);
    }

    private readonly struct Gate(SemaphoreSlim semaphore) : IDisposable
    {
        public void Dispose() => semaphore.Release();
    }
}
