using AscendCC.Device;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;

namespace AscendCC.Runtime.Programs;

/// <summary>
/// The device program of a decoder-only language model, built from its configuration alone (no
/// weights, no device): the runtime binds it to HBM and runs it; the model provider measures it for
/// task attestation. The parts every family shares are built here — the token and parameter
/// buffers, the confidential prologue (prompt_open), the classifier on the last position, the
/// sampler and the confidential epilogue (token_seal); the family's program builder
/// (<see cref="CausalLMProgram"/>, <see cref="GptNeo.GptNeoProgram"/>) adds the embedding, the layers
/// and the final norm. Positions, lengths and sampling settings live in the parameter block, so one
/// program serves prefill and decode.
/// </summary>
public sealed class CausalLMProgram
{
    /// <summary>Parameter block slots (8 bytes each; the device's <see cref="StepBlock"/>).</summary>
    public const int ParamSeq = StepBlock.Seq, ParamStart = StepBlock.Start, ParamLast = StepBlock.Last, ParamSeqDim = StepBlock.SeqDim, ParamSeqHidden = StepBlock.SeqHidden,
        ParamTemperature = StepBlock.Temperature, ParamTopK = StepBlock.TopK, ParamTopP = StepBlock.TopP,
        ParamMinP = StepBlock.MinP, ParamRepeatPenalty = StepBlock.RepeatPenalty, ParamRepeatLastN = StepBlock.RepeatLastN,
        ParamFrequencyPenalty = StepBlock.FrequencyPenalty, ParamPresencePenalty = StepBlock.PresencePenalty,
        ParamSession = StepBlock.Session, ParamMode = StepBlock.Mode, ParamSegments = StepBlock.Segments, ParamCount = StepBlock.Count;

    /// <summary>prompt_open modes: decode (feed back the sampled token), open the prompt record, continue the opened prompt.</summary>
    public const int ModeDecode = StepBlock.ModeDecode, ModeOpenPrompt = StepBlock.ModeOpenPrompt, ModeContinuePrompt = StepBlock.ModeContinuePrompt;

    private CausalLMProgram(DeviceProgram program, ModelConfig config)
    {
        Program = program;
        Config = config;
    }

    /// <summary>The program.</summary>
    public DeviceProgram Program { get; }

    /// <summary>The architecture it was built for.</summary>
    public ModelConfig Config { get; }

    /// <summary>Token ids fed to the pass (int32 × MaxBatchTokens).</summary>
    public ProgramBuffer Tokens { get; private init; } = null!;

    /// <summary>
    /// The parameter block the host writes. Outside confidential mode the launches read it directly; in
    /// the confidential variant it is only the host's request, which prompt_open checks and turns into
    /// <see cref="Step"/>.
    /// </summary>
    public ProgramBuffer Params { get; private init; } = null!;

    /// <summary>Confidential programs: the step block prompt_open writes in locked memory, which every launch reads; null otherwise.</summary>
    public ProgramBuffer? Step { get; private init; }

    /// <summary>Last position's logits.</summary>
    public ProgramBuffer Logits { get; private init; } = null!;

    /// <summary>
    /// All-position programs only: the logits of every fed position (f32 × MaxBatchTokens × vocab, the
    /// first <see cref="ParamSeq"/> rows written); null otherwise.
    /// </summary>
    public ProgramBuffer? AllLogits { get; private init; }

    /// <summary>The chosen next token (int32).</summary>
    public ProgramBuffer Next { get; private init; } = null!;

    /// <summary>The sampler's generator state (u64).</summary>
    public ProgramBuffer Rng { get; private init; } = null!;

    /// <summary>Confidential programs: the data owner's prompt record (its token ids, sampling settings and required model), staged by the host (batched: one record slot per segment, at its index).</summary>
    public ProgramBuffer? PromptRecord { get; private init; }

    /// <summary>Confidential batched programs: the host's request table (<see cref="SegmentRequest"/> rows, one per segment); null otherwise.</summary>
    public ProgramBuffer? Requests { get; private init; }

    /// <summary>Confidential programs: the sealed token record the host relays back (batched: one record per segment, at its index).</summary>
    public ProgramBuffer? TokenRecord { get; private init; }

    /// <summary>Sequences the program holds at once (KV-cache slots); 1 for the single-sequence program.</summary>
    public int Sequences { get; private init; } = 1;

    /// <summary>
    /// Batched programs: the segment table the host writes per pass (int32 × 3 per segment: slot,
    /// start, length; rows in this order); null otherwise.
    /// </summary>
    public ProgramBuffer? Segments { get; private init; }

    /// <summary>Batched programs: each slot's sampling settings (<see cref="SamplingRow"/>, 8-byte slots); null otherwise.</summary>
    public ProgramBuffer? Sampling { get; private init; }

    /// <summary>True for the confidential variant.</summary>
    public bool Confidential { get; private init; }

    /// <summary>Weight buffers by tensor name, in the order the family declares them (the classifier of a tied model is the embedding).</summary>
    public IReadOnlyDictionary<string, ProgramBuffer> Weights { get; private init; } = null!;

    /// <summary>
    /// The element type each weight is kept in on the device: the deployment's precision for the
    /// matrices the matmul kernels read (Q8_0 for the token embedding and the classifier of a Q4_0
    /// deployment), F32 for the vectors (norms, biases) and tables read as rows of f32 (GPT-Neo's
    /// learned positions). Loaders and the package exporter convert by it.
    /// </summary>
    public IReadOnlyDictionary<string, WeightPrecision> WeightPrecisions { get; private init; } = null!;

    /// <summary>
    /// The matrices a batched program keeps in panels rather than rows or strips: BF16 ones in panels of
    /// 32 rows (<see cref="PanelWeightLayout"/>), Q4_0 and Q4_K ones in panels of 16
    /// (<see cref="QuantizedWeightLayout.Q4_0PanelsFromQ4_0"/>, <see cref="QuantizedWeightLayout.Q4_KPanelsFromQ4_K"/>);
    /// empty in the single-sequence program.
    /// </summary>
    public IReadOnlySet<string> PanelMatrices { get; private init; } = null!;

    /// <summary>
    /// <paramref name="tensor"/>, the weight <paramref name="name"/>, as this program's device buffer
    /// holds it: in its <see cref="WeightPrecisions"/> entry, and in panels when it is one of the
    /// <see cref="PanelMatrices"/>. Loaders and the package exporter convert by it.
    /// </summary>
    public byte[] DeviceBytes(string name, TensorData tensor) => !PanelMatrices.Contains(name)
        ? WeightConversion.Convert(tensor, WeightPrecisions[name])
        : WeightPrecisions[name] switch
        {
            WeightPrecision.Q4_0 => WeightConversion.ToQ4_0Panels(tensor),
            WeightPrecision.Q4_K => WeightConversion.ToQ4_KPanels(tensor),
            _ => WeightConversion.ToBF16Panels(tensor),
        };

    /// <summary>The name a package gives the element type of weight <paramref name="name"/>'s bytes, as <see cref="DeviceBytes"/> makes them.</summary>
    public string DeviceTypeName(string name) => PanelMatrices.Contains(name) ? $"{WeightPrecisions[name]}Panels" : WeightPrecisions[name].ToString();

    /// <summary>Bytes of the staged prompt record for a context of <paramref name="maxContext"/> tokens.</summary>
    public static long PromptRecordBytes(int maxContext) =>
        Protocol.Channels.SecureChannel.Overhead + Protocol.Messages.PromptMessage.EncodedSize(maxContext);

    /// <summary>Bytes of one sealed token record.</summary>
    public static int TokenRecordBytes => Protocol.Channels.SecureChannel.Overhead + Protocol.Messages.TokenMessage.EncodedSize;

    /// <summary>Builds the program for <paramref name="config"/> with the program builder of its family.</summary>
    /// <param name="config">The architecture.</param>
    /// <param name="rope">Llama family: how q/k rows are ordered in the weights. Families without RoPE ignore it.</param>
    /// <param name="maxContext">KV cache length.</param>
    /// <param name="maxBatchTokens">Most tokens per pass.</param>
    /// <param name="precision">Precision of the weight matrices.</param>
    /// <param name="kvPrecision">Element type of the KV cache (sizes its regions; the cache operators' kv_dtype scalar).</param>
    /// <param name="confidential">
    /// The confidential variant: tokens come from the data owner's sealed prompt (opened on the device
    /// by prompt_open into locked memory) and leave only as sealed records (token_seal); logits and the
    /// sampled token stay in locked memory.
    /// </param>
    /// <param name="allPositionLogits">
    /// End with the final norm and the classifier over every fed row into <see cref="AllLogits"/>
    /// (for callers that score a whole sequence) instead of the last row and the sampler; the last
    /// row is still copied to <see cref="Logits"/>. Every other buffer has the same name and size as
    /// in the generation program, so a runtime can bind both over one set of weights and KV cache.
    /// Not available in the confidential variant, whose logits never leave the device.
    /// </param>
    /// <param name="sequences">
    /// Sequences held at once (batched decode): the KV cache gets one slot per sequence, and a pass
    /// feeds the rows of up to this many sequences, each at its own positions (<see cref="Segments"/>),
    /// sampling one token per sequence from its last row. 1 builds the single-sequence program.
    /// </param>
    /// <param name="matrixPrecisions">
    /// A mixed deployment: weight matrices (by tensor name) kept in another precision than
    /// <paramref name="precision"/> gives them, e.g. the Q6_K matrices of a Q4_K_M file kept in Q8_0
    /// (<see cref="CheckpointPrecisions.For"/>). Each launch that reads such a matrix carries its
    /// element type, so the map is part of the program and of its measurement. Null or empty: none.
    /// </param>
    public static CausalLMProgram Build(ModelConfig config, RopeConvention rope, int maxContext, int maxBatchTokens, WeightPrecision precision,
        KvCachePrecision kvPrecision = CausalLMOptions.DefaultKvCachePrecision, bool confidential = false, bool allPositionLogits = false, int sequences = 1,
        IReadOnlyDictionary<string, WeightPrecision>? matrixPrecisions = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        RequireSupported(kvPrecision, nameof(kvPrecision));
        RequireSupported(precision, nameof(precision));
        foreach ((string name, WeightPrecision kept) in matrixPrecisions ?? new Dictionary<string, WeightPrecision>())
        {
            RequireSupported(kept, $"{nameof(matrixPrecisions)}[{name}]");
        }
        if (confidential && allPositionLogits)
        {
            throw new ArgumentException("the confidential program keeps logits on the device; it has no all-position variant", nameof(allPositionLogits));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(maxContext, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequences, 1);
        if (sequences > 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(sequences), sequences, "a program holds at most 1024 sequences");
        }
        var p = new DeviceProgram();
        int dim = config.HiddenSize, vocab = config.VocabSize, T = maxBatchTokens, S = sequences;
        ProgramBuffer tokens = p.Buffer(confidential ? RegionTag.Activations : RegionTag.InputStaging, "tokens", (long)T * 4);
        ProgramBuffer parameters = p.Buffer(RegionTag.InputStaging, "params", ParamCount * 8);
        // In CC mode every launch reads the step block prompt_open checked and wrote in locked memory:
        // the host cannot change a position or a length between the launches of one pass.
        ProgramBuffer? step = confidential ? p.Buffer(RegionTag.Activations, "step", ParamCount * 8) : null;
        // Batched: which rows belong to which sequence (slot) at which positions; in CC mode computed by
        // prompt_open_segments from the host's request table, in locked memory.
        ProgramBuffer? segments = S > 1 ? p.Buffer(confidential ? RegionTag.Activations : RegionTag.InputStaging, "segments", (long)S * 3 * 4) : null;
        var b = new CausalLMProgramBuilder(p, config, rope, maxContext, T, precision, kvPrecision, tokens, step ?? parameters, S, segments, matrixPrecisions);
        // Batched: one row per sequence of logits, chosen tokens, generator states and token histories.
        ProgramBuffer logits = b.Act("logits", (long)S * vocab, confidential ? RegionTag.Workspace : RegionTag.OutputStaging);
        ProgramBuffer probs = b.Act("probs", vocab, RegionTag.Workspace);
        ProgramBuffer next = p.Buffer(confidential ? RegionTag.Activations : RegionTag.OutputStaging, "next", Math.Max(8, (long)S * 4));
        // In CC mode the data owner seeds the generator (the seed travels sealed in its prompt record),
        // so its state lives in locked memory with the rest of the session's state.
        ProgramBuffer rng = p.Buffer(confidential ? RegionTag.Activations : RegionTag.Workspace, "rng", (long)S * 8);
        // Every token fed so far, at its position, for the repetition penalties: the context's own
        // plaintext in CC mode, so locked like the prompt.
        ProgramBuffer history = p.Buffer(confidential ? RegionTag.Activations : RegionTag.Workspace, "history", (long)S * maxContext * 4);
        // Batched: each sequence's sampling settings (SamplingRow), which the single-sequence program takes
        // from the step block; in CC mode written by the device from each data owner's sealed prompt.
        ProgramBuffer? sampling = S > 1 ? p.Buffer(confidential ? RegionTag.Activations : RegionTag.InputStaging, "sampling", (long)S * SamplingRow.Count * 8) : null;
        ProgramBuffer? promptRecord = null, requests = null;
        if (confidential && S > 1)
        {
            // One staged record and one request row per segment; one prompt per slot.
            promptRecord = p.Buffer(RegionTag.InputStaging, "prompt_records", S * PromptRecordBytes(maxContext));
            requests = p.Buffer(RegionTag.InputStaging, "requests", (long)S * SegmentRequest.Count * 8);
            ProgramBuffer prompt = p.Buffer(RegionTag.Activations, "prompt", (long)S * maxContext * 4);
            p.Launch("prompt_open_segments", [promptRecord, prompt, next, requests, parameters, history, tokens, step!, segments!, rng, sampling!],
                I(dim), I(config.IntermediateSize), I(S));
        }
        else if (confidential)
        {
            promptRecord = p.Buffer(RegionTag.InputStaging, "prompt_record", PromptRecordBytes(maxContext));
            ProgramBuffer prompt = p.Buffer(RegionTag.Activations, "prompt", (long)maxContext * 4);
            // dim and the MLP width: prompt_open derives the step's seq×dim and seq×hidden lengths from them.
            p.Launch("prompt_open", [promptRecord, prompt, next, parameters, tokens, step!, rng], I(dim), I(config.IntermediateSize));
        }

        config.BuildForward(b);
        if (b.Classifier is null || b.FinalNorm is null)
        {
            throw new InvalidOperationException($"the {config.Family} program builder set no classifier or final norm");
        }
        b.RequireEveryOverrideUsed();
        long classifierDt = b.DtOf(b.Classifier);

        ProgramBuffer? allLogits = null;
        if (allPositionLogits)
        {
            // Every row's logits, for scoring a sequence; no token is picked. The last row is copied
            // to the generation program's logits buffer so "the last pass's logits" stays true.
            allLogits = b.Act("all_logits", (long)T * vocab, RegionTag.OutputStaging);
            b.FinalNorm(b.X, b.Xb, b.Seq);
            p.Launch("linear", [b.Xb, b.Classifier, BufferRef.None, allLogits], b.Seq, I(dim), I(vocab), I(classifierDt));
            p.Launch("slice_rows", [allLogits, logits], b.Param(ParamLast), I(1), I(vocab));
        }
        else if (segments is not null)
        {
            // Each sequence's last row picks its next token; the classifier reads its weights once for all of them.
            ProgramBuffer last = b.Act("last", (long)S * dim), lastNorm = b.Act("last_norm", (long)S * dim);
            p.Launch("segment_last_rows", [b.X, segments, last], b.Seq, b.SegmentCount, I(dim));
            b.FinalNorm(last, lastNorm, b.SegmentCount);
            p.Launch("linear", [lastNorm, b.Classifier, BufferRef.None, logits], b.SegmentCount, I(dim), I(vocab), I(classifierDt));
            p.Launch("sample_segments", [logits, rng, probs, tokens, history, sampling!, segments, next], I(vocab), b.Seq, b.SegmentCount, I(S), I(maxContext));
        }
        else
        {
            // Only the last position's logits are needed to pick the next token.
            ProgramBuffer last = b.Act("last", dim), lastNorm = b.Act("last_norm", dim);
            p.Launch("slice_rows", [b.X, last], b.Param(ParamLast), I(1), I(dim));
            b.FinalNorm(last, lastNorm, I(1));
            p.Launch("linear", [lastNorm, b.Classifier, BufferRef.None, logits], I(1), I(dim), I(vocab), I(classifierDt));
            p.Launch("sample", [logits, rng, probs, tokens, history, next], I(vocab), b.Param(ParamTemperature), b.Param(ParamTopK), b.Param(ParamTopP),
                b.Param(ParamMinP), b.Param(ParamRepeatPenalty), b.Param(ParamRepeatLastN), b.Param(ParamFrequencyPenalty), b.Param(ParamPresencePenalty),
                b.Param(ParamSeq), b.Param(ParamStart), I(maxContext));
        }
        ProgramBuffer? tokenRecord = null;
        if (confidential && S > 1)
        {
            // One record per segment, at the segment's index.
            tokenRecord = p.Buffer(RegionTag.OutputStaging, "token_records", (long)S * TokenRecordBytes);
            p.Launch("token_seal_segments", [next, tokenRecord]);
        }
        else if (confidential)
        {
            tokenRecord = p.Buffer(RegionTag.OutputStaging, "token_record", TokenRecordBytes);
            p.Launch("token_seal", [next, tokenRecord]);
        }
        return new CausalLMProgram(p, config)
        {
            Confidential = confidential,
            Sequences = S,
            Segments = segments,
            Sampling = sampling,
            Tokens = tokens,
            Params = parameters,
            Step = step,
            Logits = logits,
            AllLogits = allLogits,
            Next = next,
            Rng = rng,
            PromptRecord = promptRecord,
            TokenRecord = tokenRecord,
            Requests = requests,
            Weights = b.Weights,
            WeightPrecisions = b.WeightPrecisions,
            PanelMatrices = b.PanelMatrices,
        };
    }

    private static ScalarRef I(long v) => ScalarRef.Of(v);

    /// <summary>Throws, naming the option, unless <paramref name="precision"/> is a weight type the device has.</summary>
    internal static void RequireSupported(WeightPrecision precision, string paramName)
    {
        if (!Enum.IsDefined(precision))
        {
            throw new ArgumentOutOfRangeException(paramName, precision,
                $"{paramName} = {(int)precision} is not a weight precision the device has; use WeightPrecision.F32, F16, BF16, Q8_0, Q4_0 or Q4_K");
        }
    }

    /// <summary>Throws, naming the option, unless <paramref name="kvPrecision"/> is a KV cache type the device has.</summary>
    internal static void RequireSupported(KvCachePrecision kvPrecision, string paramName)
    {
        if (!Enum.IsDefined(kvPrecision))
        {
            throw new ArgumentOutOfRangeException(paramName, kvPrecision,
                $"CausalLMOptions.KvCachePrecision = {(int)kvPrecision} is not a KV cache type the device has; use KvCachePrecision.F32, F16, BF16, Q8_0 or Q4_0");
        }
    }
}

/// <summary>
/// What a family's program builder works with: the program, the shape, the residual stream and the
/// step's lengths, and helpers that declare weights (remembering the precision each is kept in) and
/// activations. The family sets <see cref="Classifier"/> and <see cref="FinalNorm"/>.
/// </summary>
internal sealed class CausalLMProgramBuilder
{
    private readonly Dictionary<string, ProgramBuffer> _weights = new(StringComparer.Ordinal);
    private readonly Dictionary<string, WeightPrecision> _precisions = new(StringComparer.Ordinal);
    private readonly HashSet<string> _panels = new(StringComparer.Ordinal);
    private readonly IReadOnlyDictionary<string, WeightPrecision> _overrides;
    // Names declared by Matrix or Table: the weights a matrix precision may name.
    private readonly HashSet<string> _matrices = new(StringComparer.Ordinal);
    private readonly ProgramBuffer _stepParams;

    public CausalLMProgramBuilder(DeviceProgram program, ModelConfig config, RopeConvention rope, int maxContext, int maxBatchTokens, WeightPrecision precision,
        KvCachePrecision kvPrecision, ProgramBuffer tokens, ProgramBuffer stepParams, int sequences = 1, ProgramBuffer? segments = null,
        IReadOnlyDictionary<string, WeightPrecision>? matrixPrecisions = null)
    {
        _overrides = matrixPrecisions ?? new Dictionary<string, WeightPrecision>();
        if (sequences > 1 != segments is not null)
        {
            throw new ArgumentException("a batched program (more than one sequence) needs a segment table, and only it", nameof(segments));
        }
        Sequences = sequences;
        Segments = segments;
        KvPrecision = kvPrecision;
        Program = program;
        Config = config;
        Rope = rope;
        MaxContext = maxContext;
        MaxBatchTokens = maxBatchTokens;
        Precision = precision;
        Tokens = tokens;
        _stepParams = stepParams;
        X = Act("x", (long)maxBatchTokens * config.HiddenSize);
        Xb = Act("xb", (long)maxBatchTokens * config.HiddenSize);
    }

    public DeviceProgram Program { get; }

    public ModelConfig Config { get; }

    public RopeConvention Rope { get; }

    public int MaxContext { get; }

    /// <summary>T: most tokens per pass; activations hold T rows.</summary>
    public int MaxBatchTokens { get; }

    /// <summary>The deployment's precision: the layer matrices' unless <see cref="Matrix"/> is told otherwise by the program's matrix precisions.</summary>
    public WeightPrecision Precision { get; }

    /// <summary>The element type <paramref name="weight"/> is kept in, as the kernels' dtype scalar.</summary>
    public long DtOf(ProgramBuffer weight) => !_panels.Contains(weight.Name)
        ? (long)_precisions[weight.Name]
        : _precisions[weight.Name] switch
        {
            WeightPrecision.Q4_0 => QuantizedWeightLayout.Q4_0PanelsElementTypeCode,
            WeightPrecision.Q4_K => QuantizedWeightLayout.Q4_KPanelsElementTypeCode,
            _ => PanelWeightLayout.ElementTypeCode,
        };

    /// <summary>The KV cache's element type.</summary>
    public KvCachePrecision KvPrecision { get; }

    /// <summary><see cref="KvPrecision"/> as the cache operators' kv_dtype scalar (the device's element type codes: 0 F32, 1 F16, 2 BF16, 9 Q8_0Rows, 10 Q4_0Rows).</summary>
    public long KvDt => KvCachePrecisions.DeviceCode(KvPrecision);

    /// <summary>Sequences the program holds at once: KV-cache slots (1: the single-sequence program).</summary>
    public int Sequences { get; }

    /// <summary>Batched programs: the pass's segment table (int32 × 3 per segment: slot, start, length); null otherwise.</summary>
    public ProgramBuffer? Segments { get; }

    /// <summary>
    /// One layer's K or V cache, [Sequences, kvHeads, MaxContext, headDim] of <see cref="KvPrecision"/>
    /// (one slot per sequence), tagged KvCache (so born locked in CC mode).
    /// </summary>
    public ProgramBuffer KvCache(string name, int kvHeads, int headDim) =>
        Program.Buffer(RegionTag.KvCache, name, (long)Sequences * kvHeads * MaxContext * KvCachePrecisions.RowBytes(KvPrecision, headDim));

    /// <summary>Rotates the pass's rows of <paramref name="x"/> ([rows, heads, headDim]) by their positions.</summary>
    public void Rotate(string op, ProgramBuffer x, int heads, int headDim, float theta, ScalarRef[] scaling)
    {
        if (Segments is null)
        {
            Program.Launch(op, [x], [Seq, ScalarRef.Of(heads), ScalarRef.Of(headDim), Start, ScalarRef.Of(theta), .. scaling]);
        }
        else
        {
            Program.Launch(op + "_segments", [x, Segments], [Seq, SegmentCount, ScalarRef.Of(MaxContext), ScalarRef.Of(heads), ScalarRef.Of(headDim), ScalarRef.Of(theta), .. scaling]);
        }
    }

    /// <summary>Appends the pass's keys and values to a layer's caches, at each row's slot and position.</summary>
    public void KvCacheWrite(ProgramBuffer k, ProgramBuffer v, ProgramBuffer kCache, ProgramBuffer vCache, int kvHeads, int headDim)
    {
        if (Segments is null)
        {
            Program.Launch("kv_cache_write", [k, v, kCache, vCache], Seq, Start, ScalarRef.Of(kvHeads), ScalarRef.Of(headDim), ScalarRef.Of(MaxContext), ScalarRef.Of(KvDt));
        }
        else
        {
            Program.Launch("kv_cache_write_segments", [k, v, Segments, kCache, vCache], Seq, SegmentCount, ScalarRef.Of(Sequences), ScalarRef.Of(kvHeads), ScalarRef.Of(headDim),
                ScalarRef.Of(MaxContext), ScalarRef.Of(KvDt));
        }
    }

    /// <summary>Causal attention of the pass's rows over their own sequence's cache (window 0: none).</summary>
    public void Attention(ProgramBuffer q, ProgramBuffer kCache, ProgramBuffer vCache, ProgramBuffer output, int heads, int kvHeads, int headDim, double scale, int window)
    {
        if (Segments is null)
        {
            Program.Launch("attention", [q, kCache, vCache, output], Seq, Start, ScalarRef.Of(heads), ScalarRef.Of(kvHeads), ScalarRef.Of(headDim), ScalarRef.Of(MaxContext),
                ScalarRef.Of(scale), ScalarRef.Of(window), ScalarRef.Of(KvDt));
        }
        else
        {
            Program.Launch("attention_segments", [q, kCache, vCache, Segments, output], Seq, SegmentCount, ScalarRef.Of(Sequences), ScalarRef.Of(heads), ScalarRef.Of(kvHeads),
                ScalarRef.Of(headDim), ScalarRef.Of(MaxContext), ScalarRef.Of(scale), ScalarRef.Of(window), ScalarRef.Of(KvDt));
        }
    }

    /// <summary>Learned positions: the rows of <paramref name="table"/> ([positions, cols], f32) at the pass's rows' positions into <paramref name="output"/>.</summary>
    public void PositionRows(ProgramBuffer table, ProgramBuffer output, int positions, int cols)
    {
        if (Segments is null)
        {
            Program.Launch("slice_rows", [table, output], Start, Seq, ScalarRef.Of(cols));
        }
        else
        {
            Program.Launch("position_rows", [table, Segments, output], Seq, SegmentCount, ScalarRef.Of(positions), ScalarRef.Of(cols));
        }
    }

    /// <summary>Batched programs: segments in the pass.</summary>
    public ScalarRef SegmentCount => Param(CausalLMProgram.ParamSegments);

    /// <summary>The pass's token ids (int32 × T), the family's embedding input.</summary>
    public ProgramBuffer Tokens { get; }

    /// <summary>x: the residual stream (T × dim), which the family's layers leave the pass's result in.</summary>
    public ProgramBuffer X { get; }

    /// <summary>xb: a T × dim scratch row block (the families' normed input), also the all-position epilogue's.</summary>
    public ProgramBuffer Xb { get; }

    /// <summary>The classifier's weight (the embedding when tied).</summary>
    public ProgramBuffer? Classifier { get; set; }

    /// <summary>Emits the final norm of <c>rows</c> rows from the first buffer into the second.</summary>
    public Action<BufferRef, BufferRef, ScalarRef>? FinalNorm { get; set; }

    /// <summary>Rows fed this pass.</summary>
    public ScalarRef Seq => Param(CausalLMProgram.ParamSeq);

    /// <summary>Position of the first fed row.</summary>
    public ScalarRef Start => Param(CausalLMProgram.ParamStart);

    /// <summary>Rows × dim.</summary>
    public ScalarRef SeqDim => Param(CausalLMProgram.ParamSeqDim);

    /// <summary>Rows × the MLP width.</summary>
    public ScalarRef SeqHidden => Param(CausalLMProgram.ParamSeqHidden);

    public IReadOnlyDictionary<string, ProgramBuffer> Weights => _weights;

    public IReadOnlyDictionary<string, WeightPrecision> WeightPrecisions => _precisions;

    /// <summary>The BF16 matrices kept in panels (see <see cref="Matrix"/>).</summary>
    public IReadOnlySet<string> PanelMatrices => _panels;

    /// <summary>A slot of the step block (CC) or the host's parameter block.</summary>
    public ScalarRef Param(int slot) => ScalarRef.Slot(_stepParams, slot);

    /// <summary>
    /// A weight matrix [rows × cols] kept in the deployment's precision, or the one the program's matrix precisions give it (read by matmul and embedding
    /// kernels). Q8_0 cuts each row into blocks of 32, so a width that is not a multiple of 32 is
    /// refused here, before anything is uploaded, naming the tensor. A batched program keeps a BF16
    /// matrix whose rows are whole panels of 32 in panels (<see cref="PanelWeightLayout"/>), which
    /// several sequences' tokens multiply with each weight read and widened once for all of them, and a
    /// Q4_0 or Q4_K matrix whose rows are whole panels of 16 in panels (one 64-byte load a group of sixteen
    /// rows, one stream a panel, a block's sixteen scales one widening; docs/architecture.md, batched
    /// decode); the single-sequence program keeps rows and strips, which one token streams as fast.
    /// </summary>
    public ProgramBuffer Matrix(string name, long rows, long cols)
    {
        ProgramBuffer buffer = MatrixIn(name, rows, cols, Precision);
        if (Sequences > 1 && ((_precisions[name] == WeightPrecision.BF16 && rows % PanelWeightLayout.PanelRows == 0)
            || (_precisions[name] is WeightPrecision.Q4_0 or WeightPrecision.Q4_K && rows % QuantizedWeightLayout.PanelRows == 0)))
        {
            _panels.Add(name);
        }
        return buffer;
    }

    /// <summary>
    /// The token embedding and the classifier: in the deployment's precision, except under Q4_0 and Q4_K,
    /// where they are kept in Q8_0 (as llama.cpp keeps its output matrix wider than 4 bits: a 4-bit
    /// step in the classifier moves every logit, and the embedding is the tied classifier's matrix);
    /// the program's matrix precisions may name them too.
    /// </summary>
    public ProgramBuffer Table(string name, long rows, long cols) =>
        MatrixIn(name, rows, cols, Precision is WeightPrecision.Q4_0 or WeightPrecision.Q4_K ? WeightPrecision.Q8_0 : Precision);

    private ProgramBuffer MatrixIn(string name, long rows, long cols, WeightPrecision precision)
    {
        precision = _overrides.GetValueOrDefault(name, precision);
        _matrices.Add(name);
        return Weight(name, MatrixBytes(name, rows, cols, precision), precision);
    }

    /// <summary><c>y = x·Wᵀ + bias</c> (rows × k in, n out): one linear launch in <paramref name="w"/>'s element type.</summary>
    public void Linear(ProgramBuffer x, ScalarRef rows, int k, ProgramBuffer w, ProgramBuffer bias, ProgramBuffer y, int n) =>
        Program.Launch("linear", [x, w, bias, y], rows, ScalarRef.Of(k), ScalarRef.Of(n), ScalarRef.Of(DtOf(w)));

    /// <summary>
    /// <c>y_i = x·W_iᵀ</c> for up to three matrices reading the same <paramref name="x"/> (rows × k):
    /// one linear_fused launch for those kept in the same element type (the common case: q, k and v
    /// of one precision), a launch per type otherwise (a mixed deployment's Q8_0 v beside Q4_K q and k).
    /// </summary>
    public void Linears(ProgramBuffer x, ScalarRef rows, int k, params (ProgramBuffer W, ProgramBuffer Y, int N)[] outputs)
    {
        foreach (IGrouping<long, (ProgramBuffer W, ProgramBuffer Y, int N)> group in outputs.GroupBy(o => DtOf(o.W)))
        {
            (ProgramBuffer W, ProgramBuffer Y, int N)[] same = [.. group];
            if (same.Length == 1)
            {
                Program.Launch("linear", [x, same[0].W, BufferRef.None, same[0].Y], rows, ScalarRef.Of(k), ScalarRef.Of(same[0].N), ScalarRef.Of(group.Key));
                continue;
            }
            BufferRef W(int i) => i < same.Length ? same[i].W : BufferRef.None;
            BufferRef Y(int i) => i < same.Length ? same[i].Y : BufferRef.None;
            long N(int i) => i < same.Length ? same[i].N : 0;
            Program.Launch("linear_fused", [x, W(0), W(1), W(2), Y(0), Y(1), Y(2)], rows, ScalarRef.Of(k), ScalarRef.Of(N(0)), ScalarRef.Of(N(1)), ScalarRef.Of(N(2)),
                ScalarRef.Of(group.Key));
        }
    }

    /// <summary>Throws unless every name in the program's matrix precisions named a matrix this family declared.</summary>
    public void RequireEveryOverrideUsed()
    {
        foreach (string name in _overrides.Keys)
        {
            if (!_matrices.Contains(name))
            {
                throw new ArgumentException(
                    $"matrixPrecisions names '{name}', which is not a weight matrix of this {Config.Family} model; name its matrices as ModelConfig.ExpectedTensors() does (norms, biases and learned positions stay F32)",
                    "matrixPrecisions");
            }
        }
    }

    /// <summary>Bytes of a [rows × cols] matrix in <paramref name="precision"/> as the device keeps it.</summary>
    internal static long MatrixBytes(string name, long rows, long cols, WeightPrecision precision)
    {
        if (precision is not (WeightPrecision.Q8_0 or WeightPrecision.Q4_0 or WeightPrecision.Q4_K))
        {
            return rows * cols * (precision == WeightPrecision.F32 ? 4 : 2);
        }
        if (precision == WeightPrecision.Q4_K)
        {
            if (cols % 256 != 0)
            {
                throw new ArgumentException(
                    $"tensor '{name}' has rows of {cols} weights (its input width), not whole Q4_K super-blocks of 256, so this model cannot be kept in Q4_K; load it with WeightPrecision.Q8_0 or Q4_0 (blocks of 32), or BF16.");
            }
            return QuantizedWeightLayout.Q4_KMatrixBytes(rows, cols);
        }
        if (cols % 32 != 0)
        {
            throw new ArgumentException(
                $"tensor '{name}' has rows of {cols} weights (its input width), not whole {precision} blocks of 32, so this model cannot be kept in {precision}; load it with WeightPrecision.BF16 (or F16, F32).");
        }
        // Per block of 32: 32 int8 (Q8_0) or 16 bytes of nibbles (Q4_0), and one f16 scale, as GGUF.
        return (rows * cols / (precision == WeightPrecision.Q8_0 ? 1 : 2)) + (rows * (cols / 32) * 2);
    }

    /// <summary>A weight kept in f32 whatever the precision: a norm's scale, a bias, or a table read as f32 rows.</summary>
    public ProgramBuffer Float32(string name, long floats) => Weight(name, floats * 4, WeightPrecision.F32);

    /// <summary>An activation (or KV-cache) buffer of <paramref name="floats"/> f32 values.</summary>
    public ProgramBuffer Act(string name, long floats, RegionTag tag = RegionTag.Activations) => Program.Buffer(tag, name, floats * 4);

    private ProgramBuffer Weight(string name, long bytes, WeightPrecision precision)
    {
        ProgramBuffer buffer = Program.Buffer(RegionTag.Weights, name, bytes);
        _weights.Add(name, buffer);
        _precisions.Add(name, precision);
        return buffer;
    }
}
