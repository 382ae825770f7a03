using AscendCC.Device;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Programs;

namespace AscendCC.Runtime.Llama;

/// <summary>
/// The device program of a Llama-family decoder, built from the configuration alone (no weights, no
/// device): the runtime binds it to HBM and runs it; the model provider measures it for task
/// attestation. One forward pass, read top to bottom:
/// <code>
/// x = embedding[tokens]
/// for each layer:  xb = rmsnorm(x)·w_attn;  q,k,v = xb·Wqᵀ, xb·Wkᵀ, xb·Wvᵀ;  rope(q, k);  cache ← k, v
///                  att = softmax(q·Kᵀ/√d + causal [+ sliding window])·V;  x += att·Woᵀ
///                  xb = rmsnorm(x)·w_ffn;  hb = silu(xb·W1ᵀ) ⊙ (xb·W3ᵀ);  x += hb·W2ᵀ
/// logits = rmsnorm(x[last])·w_norm · Wclsᵀ;  next = sample(logits)
/// </code>
/// Positions, lengths and sampling settings live in the parameter block, so one program serves
/// prefill and decode.
/// </summary>
public sealed class LlamaProgram
{
    /// <summary>Parameter block slots (8 bytes each; the device's <see cref="StepBlock"/>).</summary>
    public const int ParamSeq = StepBlock.Seq, ParamStart = StepBlock.Start, ParamLast = StepBlock.Last, ParamSeqDim = StepBlock.SeqDim, ParamSeqHidden = StepBlock.SeqHidden,
        ParamTemperature = StepBlock.Temperature, ParamTopK = StepBlock.TopK, ParamTopP = StepBlock.TopP,
        ParamSession = StepBlock.Session, ParamMode = StepBlock.Mode, ParamPosition = StepBlock.Position, ParamEmit = StepBlock.Emit, ParamCount = StepBlock.Count;

    /// <summary>prompt_open modes: decode (feed back the sampled token), open the prompt record, continue the opened prompt.</summary>
    public const int ModeDecode = StepBlock.ModeDecode, ModeOpenPrompt = StepBlock.ModeOpenPrompt, ModeContinuePrompt = StepBlock.ModeContinuePrompt;

    private LlamaProgram(DeviceProgram program) => Program = program;

    /// <summary>The program.</summary>
    public DeviceProgram Program { get; }

    /// <summary>Token ids fed to the pass (int32 × MaxBatchTokens).</summary>
    public ProgramBuffer Tokens { get; private set; } = null!;

    /// <summary>
    /// The parameter block the host writes. Outside confidential mode the launches read it directly; in
    /// the confidential variant it is only the host's request, which prompt_open checks and turns into
    /// <see cref="Step"/>.
    /// </summary>
    public ProgramBuffer Params { get; private set; } = null!;

    /// <summary>Confidential programs: the step block prompt_open writes in locked memory, which every launch reads; null otherwise.</summary>
    public ProgramBuffer? Step { get; private set; }

    /// <summary>Last position's logits.</summary>
    public ProgramBuffer Logits { get; private set; } = null!;

    /// <summary>
    /// All-position programs only: the logits of every fed position (f32 × MaxBatchTokens × vocab, the
    /// first <see cref="ParamSeq"/> rows written); null otherwise.
    /// </summary>
    public ProgramBuffer? AllLogits { get; private set; }

    /// <summary>The chosen next token (int32).</summary>
    public ProgramBuffer Next { get; private set; } = null!;

    /// <summary>The sampler's generator state (u64).</summary>
    public ProgramBuffer Rng { get; private set; } = null!;

    /// <summary>Confidential programs: the data owner's prompt record (its token ids, sampling settings and required model), staged by the host.</summary>
    public ProgramBuffer? PromptRecord { get; private set; }

    /// <summary>Confidential programs: the sealed token record the host relays back.</summary>
    public ProgramBuffer? TokenRecord { get; private set; }

    /// <summary>True for the confidential variant.</summary>
    public bool Confidential { get; private set; }

    /// <summary>Bytes of the staged prompt record for a context of <paramref name="maxContext"/> tokens.</summary>
    public static long PromptRecordBytes(int maxContext) =>
        Protocol.Channels.SecureChannel.Overhead + Protocol.Messages.PromptMessage.EncodedSize(maxContext);

    /// <summary>Bytes of one sealed token record.</summary>
    public static int TokenRecordBytes => Protocol.Channels.SecureChannel.Overhead + Protocol.Messages.TokenMessage.EncodedSize;

    /// <summary>Weight buffers by tensor name (the classifier of a tied model is the embedding).</summary>
    public IReadOnlyDictionary<string, ProgramBuffer> Weights { get; private set; } = null!;

    /// <summary>Builds the program for <paramref name="config"/>.</summary>
    /// <param name="config">The architecture.</param>
    /// <param name="rope">How q/k rows are ordered in the weights.</param>
    /// <param name="maxContext">KV cache length.</param>
    /// <param name="maxBatchTokens">Most tokens per pass.</param>
    /// <param name="precision">Precision of the weight matrices.</param>
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
    public static LlamaProgram Build(LlamaConfig config, RopeConvention rope, int maxContext, int maxBatchTokens, WeightPrecision precision, bool confidential = false,
        bool allPositionLogits = false)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (confidential && allPositionLogits)
        {
            throw new ArgumentException("the confidential program keeps logits on the device; it has no all-position variant", nameof(allPositionLogits));
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(maxContext, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchTokens, 1);
        var p = new DeviceProgram();
        var result = new LlamaProgram(p);
        var weights = new Dictionary<string, ProgramBuffer>(StringComparer.Ordinal);
        int dim = config.HiddenSize, hidden = config.IntermediateSize, heads = config.NumAttentionHeads, kvHeads = config.NumKeyValueHeads;
        int headDim = config.HeadDim, qDim = heads * headDim, kvDim = kvHeads * headDim, vocab = config.VocabSize, T = maxBatchTokens;
        long wSize = precision == WeightPrecision.F32 ? 4 : 2;
        long dt = (long)precision;

        ProgramBuffer Matrix(string name, long rows, long cols) => weights[name] = p.Buffer(RegionTag.Weights, name, rows * cols * wSize);
        ProgramBuffer Vector(string name, long n) => weights[name] = p.Buffer(RegionTag.Weights, name, n * 4);
        ProgramBuffer Act(string name, long floats, RegionTag tag = RegionTag.Activations) => p.Buffer(tag, name, floats * 4);
        ScalarRef I(long v) => ScalarRef.Of(v);
        ScalarRef F(double v) => ScalarRef.Of(v);

        ProgramBuffer embedding = Matrix(LlamaTensorNames.Embedding, vocab, dim);
        ProgramBuffer finalNorm = Vector(LlamaTensorNames.FinalNorm, dim);
        ProgramBuffer classifier = config.TieWordEmbeddings ? embedding : Matrix(LlamaTensorNames.LmHead, vocab, dim);
        result.Confidential = confidential;
        result.Tokens = p.Buffer(confidential ? RegionTag.Activations : RegionTag.InputStaging, "tokens", (long)T * 4);
        result.Params = p.Buffer(RegionTag.InputStaging, "params", ParamCount * 8);
        // In CC mode every launch reads the step block prompt_open checked and wrote in locked memory:
        // the host cannot change a position or a length between the launches of one pass.
        result.Step = confidential ? p.Buffer(RegionTag.Activations, "step", ParamCount * 8) : null;
        ScalarRef P(int slot) => ScalarRef.Slot(result.Step ?? result.Params, slot);
        ProgramBuffer x = Act("x", (long)T * dim), xb = Act("xb", (long)T * dim), xb2 = Act("xb2", (long)T * dim);
        ProgramBuffer q = Act("q", (long)T * qDim), k = Act("k", (long)T * kvDim), v = Act("v", (long)T * kvDim), att = Act("att", (long)T * qDim);
        ProgramBuffer hb = Act("hb", (long)T * hidden), hb2 = Act("hb2", (long)T * hidden), last = Act("last", dim), lastNorm = Act("last_norm", dim);
        result.Logits = Act("logits", vocab, confidential ? RegionTag.Workspace : RegionTag.OutputStaging);
        ProgramBuffer probs = Act("probs", vocab, RegionTag.Workspace);
        result.Next = p.Buffer(confidential ? RegionTag.Activations : RegionTag.OutputStaging, "next", 8);
        // In CC mode the data owner seeds the generator (the seed travels sealed in its prompt record),
        // so its state lives in locked memory with the rest of the session's state.
        result.Rng = p.Buffer(confidential ? RegionTag.Activations : RegionTag.Workspace, "rng", 8);
        string ropeOp = rope == RopeConvention.Interleaved ? "rope_interleaved" : "rope_half";
        float eps = (float)config.RmsNormEps, theta = (float)config.RopeTheta;
        // rope_scaling as the rope operator's scalars: kind (0 none, 1 linear, 2 llama3), factor, low, high,
        // original context; unused ones are 0, so the launch (and the graph measurement) is one fixed encoding.
        RopeScaling? scaling = config.RopeScaling;
        ScalarRef[] ropeScaling =
        [
            I(scaling is null ? 0 : scaling.Type == RopeScaling.LinearType ? 1 : 2),
            F(scaling?.Factor ?? 0), F(scaling?.LowFreqFactor ?? 0), F(scaling?.HighFreqFactor ?? 0), I(scaling?.OriginalMaxPositionEmbeddings ?? 0),
        ];
        // Mistral's sliding window, 0 for none; the KV cache stays full-length either way.
        int window = config.SlidingWindow ?? 0;

        if (confidential)
        {
            result.PromptRecord = p.Buffer(RegionTag.InputStaging, "prompt_record", PromptRecordBytes(maxContext));
            ProgramBuffer prompt = p.Buffer(RegionTag.Activations, "prompt", (long)maxContext * 4);
            p.Launch("prompt_open", [result.PromptRecord, prompt, result.Next, result.Params, result.Tokens, result.Step!, result.Rng], I(dim), I(hidden));
        }
        p.Launch("embedding", [embedding, result.Tokens, x], P(ParamSeq), I(vocab), I(dim), I(dt));
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            ProgramBuffer attnNorm = Vector(LlamaTensorNames.InputLayerNorm(l), dim);
            ProgramBuffer wq = Matrix(LlamaTensorNames.QProj(l), qDim, dim), wk = Matrix(LlamaTensorNames.KProj(l), kvDim, dim), wv = Matrix(LlamaTensorNames.VProj(l), kvDim, dim);
            ProgramBuffer wo = Matrix(LlamaTensorNames.OProj(l), dim, qDim);
            ProgramBuffer ffnNorm = Vector(LlamaTensorNames.PostAttentionLayerNorm(l), dim);
            ProgramBuffer w1 = Matrix(LlamaTensorNames.GateProj(l), hidden, dim), w3 = Matrix(LlamaTensorNames.UpProj(l), hidden, dim), w2 = Matrix(LlamaTensorNames.DownProj(l), dim, hidden);
            ProgramBuffer kCache = Act($"k_cache.{l}", (long)kvHeads * maxContext * headDim, RegionTag.KvCache);
            ProgramBuffer vCache = Act($"v_cache.{l}", (long)kvHeads * maxContext * headDim, RegionTag.KvCache);

            p.Launch("rms_norm", [x, attnNorm, xb], P(ParamSeq), I(dim), F(eps));
            // q, k and v read the same xb: one launch (see LinearKernel.LinearFused).
            p.Launch("linear_fused", [xb, wq, wk, wv, q, k, v], P(ParamSeq), I(dim), I(qDim), I(kvDim), I(kvDim), I(dt));
            p.Launch(ropeOp, [q], [P(ParamSeq), I(heads), I(headDim), P(ParamStart), F(theta), .. ropeScaling]);
            p.Launch(ropeOp, [k], [P(ParamSeq), I(kvHeads), I(headDim), P(ParamStart), F(theta), .. ropeScaling]);
            p.Launch("kv_cache_write", [k, v, kCache, vCache], P(ParamSeq), P(ParamStart), I(kvHeads), I(headDim), I(maxContext));
            p.Launch("attention", [q, kCache, vCache, att], P(ParamSeq), P(ParamStart), I(heads), I(kvHeads), I(headDim), I(maxContext), F(1.0 / Math.Sqrt(headDim)), I(window));
            p.Launch("linear", [att, wo, BufferRef.None, xb2], P(ParamSeq), I(qDim), I(dim), I(dt));
            p.Launch("add", [x, xb2, x], P(ParamSeqDim));

            p.Launch("rms_norm", [x, ffnNorm, xb], P(ParamSeq), I(dim), F(eps));
            p.Launch("linear_fused", [xb, w1, w3, BufferRef.None, hb, hb2, BufferRef.None], P(ParamSeq), I(dim), I(hidden), I(hidden), I(0), I(dt));
            p.Launch("silu_mul", [hb, hb2, hb], P(ParamSeqHidden));
            p.Launch("linear", [hb, w2, BufferRef.None, xb2], P(ParamSeq), I(hidden), I(dim), I(dt));
            p.Launch("add", [x, xb2, x], P(ParamSeqDim));
        }
        if (allPositionLogits)
        {
            // Every row's logits, for scoring a sequence; no token is picked. The last row is copied
            // to the generation program's logits buffer so "the last pass's logits" stays true.
            result.AllLogits = Act("all_logits", (long)T * vocab, RegionTag.OutputStaging);
            p.Launch("rms_norm", [x, finalNorm, xb], P(ParamSeq), I(dim), F(eps));
            p.Launch("linear", [xb, classifier, BufferRef.None, result.AllLogits], P(ParamSeq), I(dim), I(vocab), I(dt));
            p.Launch("slice_rows", [result.AllLogits, result.Logits], P(ParamLast), I(1), I(vocab));
        }
        else
        {
            // Only the last position's logits are needed to pick the next token.
            p.Launch("slice_rows", [x, last], P(ParamLast), I(1), I(dim));
            p.Launch("rms_norm", [last, finalNorm, lastNorm], I(1), I(dim), F(eps));
            p.Launch("linear", [lastNorm, classifier, BufferRef.None, result.Logits], I(1), I(dim), I(vocab), I(dt));
            p.Launch("sample", [result.Logits, result.Rng, probs, result.Next], I(vocab), P(ParamTemperature), P(ParamTopK), P(ParamTopP));
        }
        if (confidential)
        {
            result.TokenRecord = p.Buffer(RegionTag.OutputStaging, "token_record", TokenRecordBytes);
            p.Launch("token_seal", [result.Next, result.TokenRecord]);
        }
        result.Weights = weights;
        return result;
    }
}
