using System.Buffers.Binary;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Models;

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
    private const int ParamSeq = 0, ParamStart = 1, ParamLast = 2, ParamSeqDim = 3, ParamSeqHidden = 4, ParamTemperature = 5, ParamTopK = 6, ParamTopP = 7;

    private readonly NpuRuntime _runtime;
    private readonly List<DeviceBuffer> _buffers = new();
    private readonly DeviceBuffer _tokens, _params, _logits, _next, _rng;
    private readonly LoadedModelHandle? _graph;
    private readonly long[] _paramValues = new long[8];
    private readonly int[] _one = new int[1];
    private ulong _seededWith = ulong.MaxValue;

    private LlamaDeviceModel(NpuRuntime runtime, LlamaConfig config, RopeConvention rope, LlamaDeviceOptions options, Func<string, TensorData> weights)
    {
        _runtime = runtime;
        Config = config;
        Options = options;
        MaxContext = options.MaxContext > 0 ? Math.Min(options.MaxContext, config.MaxPositionEmbeddings) : config.MaxPositionEmbeddings;
        MaxBatchTokens = options.MaxBatchTokens > 0 ? Math.Min(options.MaxBatchTokens, MaxContext) : MaxContext;

        int dim = config.HiddenSize, hidden = config.IntermediateSize, heads = config.NumAttentionHeads, kvHeads = config.NumKeyValueHeads;
        int headDim = config.HeadDim, qDim = heads * headDim, kvDim = kvHeads * headDim, vocab = config.VocabSize, T = MaxBatchTokens;

        var expected = LlamaTensorNames.Expected(config).ToDictionary(e => e.Name, e => e.Shape);
        TensorData Weight(string name)
        {
            TensorData t = weights(name) ?? throw new ArgumentException($"the weights have no tensor '{name}'");
            if (expected.TryGetValue(name, out long[]? shape) && !t.Shape.SequenceEqual(shape))
            {
                throw new ArgumentException($"tensor '{name}' has shape [{string.Join(", ", t.Shape)}] but the configuration needs [{string.Join(", ", shape)}]; check config.json against the weights");
            }
            return t;
        }
        DeviceBuffer Matrix(string name) => Upload(Weight(name), options.WeightPrecision);
        DeviceBuffer Vector(string name) => Upload(Weight(name), WeightPrecision.F32);
        DeviceBuffer Act(long floats, RegionTag tag = RegionTag.Activations) => Track(_runtime.Allocate(floats * 4, tag));

        DeviceBuffer embedding = Matrix(LlamaTensorNames.Embedding);
        DeviceBuffer classifier = config.TieWordEmbeddings ? embedding : Matrix(LlamaTensorNames.LmHead);
        DeviceBuffer finalNorm = Vector(LlamaTensorNames.FinalNorm);

        _tokens = Track(_runtime.Allocate((long)T * 4, RegionTag.InputStaging));
        _params = Track(_runtime.Allocate(_paramValues.Length * 8, RegionTag.InputStaging));
        DeviceBuffer x = Act((long)T * dim), xb = Act((long)T * dim), xb2 = Act((long)T * dim);
        DeviceBuffer q = Act((long)T * qDim), k = Act((long)T * kvDim), v = Act((long)T * kvDim), att = Act((long)T * qDim);
        DeviceBuffer hb = Act((long)T * hidden), hb2 = Act((long)T * hidden), last = Act(dim), lastNorm = Act(dim);
        _logits = Act(vocab, RegionTag.OutputStaging);
        DeviceBuffer scratch = Act(vocab, RegionTag.Workspace);
        _next = Track(_runtime.Allocate(8, RegionTag.OutputStaging));
        _rng = Track(_runtime.Allocate(8, RegionTag.Workspace));

        KernelScalar P(int slot) => KernelScalar.FromDevice(_params.Address + (ulong)(slot * 8));
        KernelScalar I(long value) => KernelScalar.Of(value);
        KernelScalar F(double value) => KernelScalar.Of(value);
        KernelArgument A(DeviceBuffer b) => b.AsArgument();
        long dt = (long)options.WeightPrecision;
        float eps = (float)config.RmsNormEps, theta = (float)config.RopeTheta;
        string ropeOp = rope == RopeConvention.Interleaved ? "rope_interleaved" : "rope_half";
        var ops = new List<DeviceOp>();
        void Op(string name, KernelArgument[] args, params KernelScalar[] scalars) => ops.Add(new DeviceOp(name, args, scalars));

        Op("embedding", [A(embedding), A(_tokens), A(x)], P(ParamSeq), I(vocab), I(dim), I(dt));
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            DeviceBuffer attnNorm = Vector(LlamaTensorNames.InputLayerNorm(l)), ffnNorm = Vector(LlamaTensorNames.PostAttentionLayerNorm(l));
            DeviceBuffer wq = Matrix(LlamaTensorNames.QProj(l)), wk = Matrix(LlamaTensorNames.KProj(l)), wv = Matrix(LlamaTensorNames.VProj(l));
            DeviceBuffer wo = Matrix(LlamaTensorNames.OProj(l));
            DeviceBuffer w1 = Matrix(LlamaTensorNames.GateProj(l)), w3 = Matrix(LlamaTensorNames.UpProj(l)), w2 = Matrix(LlamaTensorNames.DownProj(l));
            DeviceBuffer kCache = Act((long)kvHeads * MaxContext * headDim, RegionTag.KvCache);
            DeviceBuffer vCache = Act((long)kvHeads * MaxContext * headDim, RegionTag.KvCache);

            // attention
            Op("rms_norm", [A(x), A(attnNorm), A(xb)], P(ParamSeq), I(dim), F(eps));
            Op("linear", [A(xb), A(wq), KernelArgument.None, A(q)], P(ParamSeq), I(dim), I(qDim), I(dt));
            Op("linear", [A(xb), A(wk), KernelArgument.None, A(k)], P(ParamSeq), I(dim), I(kvDim), I(dt));
            Op("linear", [A(xb), A(wv), KernelArgument.None, A(v)], P(ParamSeq), I(dim), I(kvDim), I(dt));
            Op(ropeOp, [A(q)], P(ParamSeq), I(heads), I(headDim), P(ParamStart), F(theta));
            Op(ropeOp, [A(k)], P(ParamSeq), I(kvHeads), I(headDim), P(ParamStart), F(theta));
            Op("kv_cache_write", [A(k), A(v), A(kCache), A(vCache)], P(ParamSeq), P(ParamStart), I(kvHeads), I(headDim), I(MaxContext));
            Op("attention", [A(q), A(kCache), A(vCache), A(att)], P(ParamSeq), P(ParamStart), I(heads), I(kvHeads), I(headDim), I(MaxContext), F(1.0 / Math.Sqrt(headDim)));
            Op("linear", [A(att), A(wo), KernelArgument.None, A(xb2)], P(ParamSeq), I(qDim), I(dim), I(dt));
            Op("add", [A(x), A(xb2), A(x)], P(ParamSeqDim));

            // feed-forward
            Op("rms_norm", [A(x), A(ffnNorm), A(xb)], P(ParamSeq), I(dim), F(eps));
            Op("linear", [A(xb), A(w1), KernelArgument.None, A(hb)], P(ParamSeq), I(dim), I(hidden), I(dt));
            Op("linear", [A(xb), A(w3), KernelArgument.None, A(hb2)], P(ParamSeq), I(dim), I(hidden), I(dt));
            Op("silu_mul", [A(hb), A(hb2), A(hb)], P(ParamSeqHidden));
            Op("linear", [A(hb), A(w2), KernelArgument.None, A(xb2)], P(ParamSeq), I(hidden), I(dim), I(dt));
            Op("add", [A(x), A(xb2), A(x)], P(ParamSeqDim));
        }
        // Only the last position's logits are needed to pick the next token.
        Op("slice_rows", [A(x), A(last)], P(ParamLast), I(1), I(dim));
        Op("rms_norm", [A(last), A(finalNorm), A(lastNorm)], I(1), I(dim), F(eps));
        Op("linear", [A(lastNorm), A(classifier), KernelArgument.None, A(_logits)], I(1), I(dim), I(vocab), I(dt));
        Op("sample", [A(_logits), A(_rng), A(scratch), A(_next)], I(vocab), P(ParamTemperature), P(ParamTopK), P(ParamTopP));
        Program = ops;

        if (options.Mode == ExecutionMode.Graph)
        {
            ModelTaskList list = _runtime.CreateTaskList();
            foreach (DeviceOp op in ops)
            {
                list.Launch(op.Operator, op.Args, op.Scalars);
            }
            _graph = _runtime.LoadModel(list);
        }
        else
        {
            foreach (DeviceOp op in ops)
            {
                _runtime.LoadOperator(op.Operator);
            }
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

    /// <summary>The device program, in launch order.</summary>
    public IReadOnlyList<DeviceOp> Program { get; }

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
    public int Forward(ReadOnlySpan<int> tokens, int startPos, SamplingOptions? sampling = null)
    {
        sampling ??= SamplingOptions.Greedy;
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
        if (sampling.Seed != _seededWith)
        {
            Reseed(sampling.Seed);
        }
        _paramValues[ParamSeq] = tokens.Length;
        _paramValues[ParamStart] = startPos;
        _paramValues[ParamLast] = tokens.Length - 1;
        _paramValues[ParamSeqDim] = (long)tokens.Length * Config.HiddenSize;
        _paramValues[ParamSeqHidden] = (long)tokens.Length * Config.IntermediateSize;
        _paramValues[ParamTemperature] = BitConverter.DoubleToInt64Bits(sampling.Temperature);
        _paramValues[ParamTopK] = sampling.TopK;
        _paramValues[ParamTopP] = BitConverter.DoubleToInt64Bits(sampling.TopP);
        _runtime.CopyToDevice<int>(tokens, _tokens);
        _runtime.CopyToDevice<long>(_paramValues, _params);
        if (_graph is not null)
        {
            _runtime.ExecuteModel(_graph);
        }
        else
        {
            foreach (DeviceOp op in Program)
            {
                _runtime.Execute(op.Operator, op.Args, op.Scalars);
            }
        }
        Span<int> next = stackalloc int[1];
        _runtime.DefaultStream.Synchronize();
        _runtime.CopyToHost<int>(_next, 0, next);
        return next[0];
    }

    /// <summary>Restarts the device's sampling generator from <paramref name="seed"/>.</summary>
    public void Reseed(ulong seed)
    {
        // xorshift state must be nonzero.
        Span<byte> state = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(state, seed == 0 ? 0x9E3779B97F4A7C15UL : seed);
        _runtime.CopyToDevice(state, _rng);
        _seededWith = seed;
    }

    /// <summary>Reads the logits of the last forward pass's last position.</summary>
    public float[] ReadLogits()
    {
        var logits = new float[Config.VocabSize];
        _runtime.CopyToHost<float>(_logits, 0, logits);
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

    private DeviceBuffer Track(DeviceBuffer buffer)
    {
        _buffers.Add(buffer);
        return buffer;
    }

    private DeviceBuffer Upload(TensorData tensor, WeightPrecision precision)
    {
        byte[] bytes = WeightConversion.Convert(tensor, precision);
        DeviceBuffer buffer = Track(_runtime.Allocate(bytes.Length, RegionTag.Weights));
        _runtime.CopyToDevice(bytes, buffer);
        return buffer;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_graph is not null)
        {
            _runtime.UnloadModel(_graph);
        }
        foreach (DeviceBuffer b in _buffers.Distinct())
        {
            b.Dispose();
        }
        _buffers.Clear();
    }
}
