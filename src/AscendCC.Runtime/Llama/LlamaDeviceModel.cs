using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Programs;

namespace AscendCC.Runtime.Llama;

/// <summary>How the next token is chosen, on the device.</summary>
/// <param name="Temperature">0 for greedy (argmax).</param>
/// <param name="TopK">Keep the k most likely tokens; 0 = off.</param>
/// <param name="TopP">Nucleus threshold; 1 = off.</param>
/// <param name="Seed">Seed of the device's generator.</param>
public sealed record SamplingOptions(float Temperature = 0f, int TopK = 0, float TopP = 1f, ulong Seed = 42)
{
    /// <summary>Greedy decoding.</summary>
    public static SamplingOptions Greedy { get; } = new();
}

/// <summary>
/// A Llama-family decoder living on the NPU: weights, KV cache and activations in HBM, and one device
/// program — embedding, per layer RMSNorm → Q/K/V → RoPE → KV-cache append → causal GQA attention →
/// output projection → residual → RMSNorm → SiLU-gated MLP → residual, then the final norm, the
/// classifier on the last position and the sampler — run eagerly op by op or as one graph.
/// Positions, lengths and sampling settings are read by the kernels from a small parameter block in
/// HBM, so the same graph serves prefill and decode.
/// </summary>
public sealed class LlamaDeviceModel : IDisposable
{
    private readonly NpuRuntime _runtime;
    private readonly ProgramBinding _binding;
    private readonly LlamaProgram _layout;
    private readonly RopeConvention _rope;
    // The all-position-logits program, built and bound on first use: most callers only generate,
    // and its logits buffer is MaxBatchTokens × vocab floats.
    private LlamaProgram? _scoringLayout;
    private ProgramBinding? _scoringBinding;
    private readonly long[] _paramValues = new long[LlamaProgram.ParamCount];
    private readonly int[] _one = new int[1];
    private ulong _seededWith = ulong.MaxValue;

    private LlamaDeviceModel(NpuRuntime runtime, LlamaConfig config, RopeConvention rope, LlamaDeviceOptions options, Func<string, TensorData> weights)
    {
        _runtime = runtime;
        Config = config;
        Options = options;
        MaxContext = options.MaxContext > 0 ? Math.Min(options.MaxContext, config.MaxPositionEmbeddings) : config.MaxPositionEmbeddings;
        MaxBatchTokens = options.MaxBatchTokens > 0 ? Math.Min(options.MaxBatchTokens, MaxContext) : MaxContext;
        _rope = rope;
        _layout = LlamaProgram.Build(config, rope, MaxContext, MaxBatchTokens, options.WeightPrecision);

        var expected = LlamaTensorNames.Expected(config).ToDictionary(e => e.Name, e => e.Shape);
        _binding = new ProgramBinding(runtime, _layout.Program);
        try
        {
            foreach ((string name, ProgramBuffer buffer) in _layout.Weights)
            {
                TensorData t = weights(name) ?? throw new ArgumentException($"the weights have no tensor '{name}'");
                if (expected.TryGetValue(name, out long[]? shape) && !t.Shape.SequenceEqual(shape))
                {
                    throw new ArgumentException($"tensor '{name}' has shape [{string.Join(", ", t.Shape)}] but the configuration needs [{string.Join(", ", shape)}]; check config.json against the weights");
                }
                bool isVector = t.Shape.Count == 1;
                byte[] bytes = WeightConversion.Convert(t, isVector ? WeightPrecision.F32 : options.WeightPrecision);
                _runtime.CopyToDevice(bytes, _binding[buffer]);
            }
            if (options.Mode == ExecutionMode.Graph)
            {
                _binding.LoadModel();
            }
        }
        catch
        {
            _binding.Dispose();
            throw;
        }
    }

    /// <summary>The model's configuration.</summary>
    public LlamaConfig Config { get; }

    /// <summary>The layout options.</summary>
    public LlamaDeviceOptions Options { get; }

    /// <summary>Context length the KV cache holds.</summary>
    public int MaxContext { get; }

    /// <summary>Most tokens one forward pass takes.</summary>
    public int MaxBatchTokens { get; }

    /// <summary>The device program.</summary>
    public DeviceProgram Program => _layout.Program;

    /// <summary>Uploads a checkpoint's weights and builds the device program.</summary>
    public static LlamaDeviceModel Load(NpuRuntime runtime, LlamaCheckpoint checkpoint, LlamaDeviceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(checkpoint);
        return new LlamaDeviceModel(runtime, checkpoint.Config, checkpoint.RopeConvention, options ?? new LlamaDeviceOptions(),
            name => TensorData.FromCheckpoint(checkpoint.GetTensor(name)));
    }

    /// <summary>
    /// Uploads weights named as Hugging Face names them (see <see cref="LlamaTensorNames"/>) and builds
    /// the device program. <paramref name="rope"/> says how the q/k rows are ordered.
    /// </summary>
    public static LlamaDeviceModel Load(NpuRuntime runtime, LlamaConfig config, RopeConvention rope, Func<string, TensorData> weights, LlamaDeviceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        config.Validate();
        return new LlamaDeviceModel(runtime, config, rope, options ?? new LlamaDeviceOptions(), weights);
    }

    /// <summary>
    /// Feeds <paramref name="tokens"/> at positions <paramref name="startPos"/>.. and returns the next
    /// token chosen on the device. The KV cache keeps what was fed, so decoding continues at
    /// startPos + tokens.Length.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Forward(ReadOnlySpan<int> tokens, int startPos, SamplingOptions? sampling = null)
    {
        sampling ??= SamplingOptions.Greedy;
        SetParams(tokens, startPos, sampling);
        // One submission and one wait per pass: inputs, the program, the chosen token.
        Span<int> next = stackalloc int[1];
        using (NpuRuntime.InferenceStep step = _runtime.BeginStep())
        {
            Submit(step, _binding, _layout, tokens);
            step.Finish(_binding[_layout.Next].Address, System.Runtime.InteropServices.MemoryMarshal.AsBytes(next));
        }
        return next[0];
    }

    /// <summary>
    /// Feeds <paramref name="tokens"/> at positions <paramref name="startPos"/>.. like
    /// <see cref="Forward"/> (the KV cache keeps them) but picks no token: returns the logits of every
    /// fed position, row-major [tokens.Length × vocab]. Runs a second program that shares this
    /// model's weights, KV cache and activations and ends with the classifier over all rows; it is
    /// built and bound (and, in graph mode, loaded) on the first call.
    /// </summary>
    public float[] ForwardAllLogits(ReadOnlySpan<int> tokens, int startPos)
    {
        // No sampling settings: the scoring program picks no token, and the generator keeps its state.
        SetParams(tokens, startPos, sampling: null);
        (LlamaProgram layout, ProgramBinding binding) = Scoring();
        using (NpuRuntime.InferenceStep step = _runtime.BeginStep())
        {
            Submit(step, binding, layout, tokens);
            step.Finish();
        }
        // Read directly rather than through the step's staging, which is sized for small outputs.
        var logits = new float[(long)tokens.Length * Config.VocabSize];
        _runtime.CopyToHost<float>(binding[layout.AllLogits!], 0, logits);
        return logits;
    }

    private (LlamaProgram Layout, ProgramBinding Binding) Scoring()
    {
        if (_scoringLayout is null || _scoringBinding is null)
        {
            LlamaProgram layout = LlamaProgram.Build(Config, _rope, MaxContext, MaxBatchTokens, Options.WeightPrecision, allPositionLogits: true);
            // Same names and sizes as the generation program (weights, KV cache, activations, the
            // parameter block): borrow those regions, so nothing is copied twice and a scoring pass
            // leaves the KV cache exactly as a generation pass would. Only all_logits is new.
            var shared = _layout.Program.Buffers.ToDictionary(b => b.Name, b => b, StringComparer.Ordinal);
            ProgramBinding binding = new(_runtime, layout.Program, borrow: b =>
                shared.TryGetValue(b.Name, out ProgramBuffer? own) && own.Bytes == b.Bytes && own.Tag == b.Tag ? _binding[own] : null);
            try
            {
                if (Options.Mode == ExecutionMode.Graph)
                {
                    binding.LoadModel();
                }
            }
            catch
            {
                binding.Dispose();
                throw;
            }
            (_scoringLayout, _scoringBinding) = (layout, binding);
        }
        return (_scoringLayout, _scoringBinding);
    }

    private void SetParams(ReadOnlySpan<int> tokens, int startPos, SamplingOptions? sampling)
    {
        if (tokens.Length == 0 || tokens.Length > MaxBatchTokens)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), $"a forward pass takes 1..{MaxBatchTokens} tokens, got {tokens.Length}; split the prompt into chunks");
        }
        if (startPos < 0 || startPos + tokens.Length > MaxContext)
        {
            throw new ArgumentOutOfRangeException(nameof(startPos), $"positions {startPos}..{startPos + tokens.Length - 1} exceed the context of {MaxContext} tokens; start a new conversation or load the model with a larger MaxContext");
        }
        foreach (int t in tokens)
        {
            if ((uint)t >= (uint)Config.VocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {t} is outside the vocabulary of {Config.VocabSize}");
            }
        }
        _paramValues[LlamaProgram.ParamSeq] = tokens.Length;
        _paramValues[LlamaProgram.ParamStart] = startPos;
        _paramValues[LlamaProgram.ParamLast] = tokens.Length - 1;
        _paramValues[LlamaProgram.ParamSeqDim] = (long)tokens.Length * Config.HiddenSize;
        _paramValues[LlamaProgram.ParamSeqHidden] = (long)tokens.Length * Config.IntermediateSize;
        if (sampling is null)
        {
            return;
        }
        if (sampling.Seed != _seededWith)
        {
            Reseed(sampling.Seed);
        }
        _paramValues[LlamaProgram.ParamTemperature] = BitConverter.DoubleToInt64Bits(sampling.Temperature);
        _paramValues[LlamaProgram.ParamTopK] = sampling.TopK;
        _paramValues[LlamaProgram.ParamTopP] = BitConverter.DoubleToInt64Bits(sampling.TopP);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Submit(NpuRuntime.InferenceStep step, ProgramBinding binding, LlamaProgram layout, ReadOnlySpan<int> tokens)
    {
        step.Input(tokens, binding[layout.Tokens].Address);
        step.Input<long>(_paramValues, binding[layout.Params].Address);
        if (Options.Mode == ExecutionMode.Graph)
        {
            step.ExecuteModel(binding.LoadModel());
        }
        else
        {
            step.Flush();
            binding.Run();
        }
    }

    /// <summary>Restarts the device's sampling generator from <paramref name="seed"/>.</summary>
    public void Reseed(ulong seed)
    {
        // xorshift state must be nonzero.
        Span<byte> state = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(state, seed == 0 ? 0x9E3779B97F4A7C15UL : seed);
        _runtime.CopyToDevice(state, _binding[_layout.Rng]);
        _seededWith = seed;
    }

    /// <summary>Reads the logits of the last forward pass's last position.</summary>
    public float[] ReadLogits()
    {
        var logits = new float[Config.VocabSize];
        _runtime.CopyToHost<float>(_binding[_layout.Logits], 0, logits);
        return logits;
    }

    /// <summary>
    /// Generates up to <paramref name="maxTokens"/> tokens after <paramref name="prompt"/>, yielding each
    /// as it is decoded; stops at an end-of-sequence id.
    /// </summary>
    public IEnumerable<int> Generate(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions? sampling = null, IReadOnlyCollection<int>? stopTokens = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the prompt needs at least one token (BOS)", nameof(prompt));
        }
        if (prompt.Count >= MaxContext)
        {
            throw new ArgumentException($"the prompt has {prompt.Count} tokens but the context holds {MaxContext}; shorten it", nameof(prompt));
        }
        stopTokens ??= Config.EosTokenIds;
        sampling ??= SamplingOptions.Greedy;
        // Each generation starts its generator afresh, so a seed names one reproducible sample.
        Reseed(sampling.Seed);
        int[] ids = prompt.ToArray();
        int pos = 0, next = 0;
        while (pos < ids.Length)
        {
            int n = Math.Min(MaxBatchTokens, ids.Length - pos);
            next = Forward(ids.AsSpan(pos, n), pos, sampling);
            pos += n;
        }
        for (int produced = 0; produced < maxTokens; produced++)
        {
            yield return next;
            if (stopTokens.Contains(next) || pos >= MaxContext)
            {
                yield break;
            }
            _one[0] = next;
            next = Forward(_one, pos, sampling);
            pos++;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // The scoring binding borrows the main binding's regions: release it first.
        _scoringBinding?.Dispose();
        _scoringBinding = null;
        _binding.Dispose();
    }
}
