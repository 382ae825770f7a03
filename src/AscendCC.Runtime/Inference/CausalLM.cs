using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using AscendCC.Device;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Programs;

namespace AscendCC.Runtime.Inference;

/// <summary>
/// A decoder-only language model living on the NPU — weights, KV cache and activations in HBM, and one
/// device program built by its family's program builder (<see cref="CausalLMProgram.Build"/>) — and
/// the one runner that generates with it, for every family. Eager (op by op) or graph (one task list)
/// is a mode of it (<see cref="ExecutionMode"/>); confidential computing is a policy of it:
/// <list type="bullet">
/// <item><see cref="Load(NpuRuntime, ModelConfig, RopeConvention, Func{string, TensorData}, CausalLMOptions?)"/>:
/// CC off. The host uploads plaintext weights, feeds token ids and reads the chosen token and the logits.</item>
/// <item><see cref="LoadConfidential(NpuRuntime, ModelDeployment, PackageSource, ReadOnlySpan{byte}, ExecutionMode)"/>: CC on. The host stages the provider's encrypted package, has
/// the device unlock each weight into locked memory and attest the program; per step it stages the
/// data owner's sealed prompt, runs the program and relays the sealed token record. It never holds a
/// key and never sees a plaintext token, weight or logit.</item>
/// </list>
/// Positions, lengths and sampling settings are read by the kernels from a small parameter block in
/// HBM, so the same program serves prefill and decode.
/// </summary>
public sealed class CausalLM : IDisposable
{
    private readonly NpuRuntime _runtime;
    private readonly CausalLMProgram _layout;
    private readonly ProgramBinding _binding;
    private readonly long[] _params = new long[CausalLMProgram.ParamCount];
    private readonly int[] _one = new int[1];
    // CC off: the all-position-logits program, built and bound on first use: most callers only
    // generate, and its logits buffer is MaxBatchTokens × vocab floats.
    private CausalLMProgram? _scoringLayout;
    private ProgramBinding? _scoringBinding;
    private ulong _seededWith = ulong.MaxValue;
    // Batched programs: the pass's segment table and the slots' sampling settings, as the host writes them.
    private readonly int[] _segments = [];
    private readonly long[] _sampling = [];
    private CausalLMBatch? _batch;
    // CC on: the package's signed header and its chunk tags in input staging.
    private readonly DeviceBuffer? _package;
    private readonly DeviceBuffer? _tags;

    /// <summary>CC off: uploads plaintext weights and builds the program.</summary>
    private CausalLM(NpuRuntime runtime, ModelConfig config, RopeConvention rope, CausalLMOptions options, Func<string, TensorData> weights)
    {
        _runtime = runtime;
        Config = config;
        Options = options;
        MaxContext = options.MaxContext > 0 ? Math.Min(options.MaxContext, config.MaxPositionEmbeddings) : config.MaxPositionEmbeddings;
        MaxBatchTokens = options.MaxBatchTokens > 0 ? Math.Min(options.MaxBatchTokens, MaxContext) : MaxContext;
        if (options.MaxSequences < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxSequences, "CausalLMOptions.MaxSequences must be at least 1");
        }
        Deployment = new ModelDeployment(config, rope, MaxContext, MaxBatchTokens, options.WeightPrecision, options.KvCachePrecision, options.MaxSequences,
            options.MatrixPrecisions);
        _layout = CausalLMProgram.Build(config, rope, MaxContext, MaxBatchTokens, options.WeightPrecision, options.KvCachePrecision, sequences: options.MaxSequences,
            matrixPrecisions: options.MatrixPrecisions);
        _segments = new int[_layout.Sequences * 3];
        _sampling = new long[_layout.Sequences * SamplingRow.Count];

        var expected = config.ExpectedTensors().ToDictionary(e => e.Name, e => e.Shape);
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
                _runtime.CopyToDevice(_layout.DeviceBytes(name, t), _binding[buffer]);
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

    /// <summary>CC on: stages and unlocks the package, then loads (and so attests) the program.</summary>
    private CausalLM(NpuRuntime runtime, ModelDeployment deployment, PackageSource package, ReadOnlySpan<byte> manifestDigest, ExecutionMode mode)
    {
        _runtime = runtime;
        Deployment = deployment;
        Config = deployment.Config;
        MaxContext = deployment.MaxContext;
        MaxBatchTokens = deployment.MaxBatchTokens;
        Options = new CausalLMOptions { Mode = mode, MaxContext = deployment.MaxContext, MaxBatchTokens = deployment.MaxBatchTokens, WeightPrecision = deployment.Precision, MaxSequences = deployment.MaxSequences,
            KvCachePrecision = deployment.KvPrecision, MatrixPrecisions = deployment.MatrixPrecisions };
        Mailbox = new FirmwareMailbox(runtime.Device) { Transcript = runtime.Driver.Transcript };
        PackageLayout layout = PackageFile.ReadLayout(package);
        ModelManifest manifest = layout.Manifest;
        Manifest = manifest;
        _layout = deployment.BuildProgram();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // Only the signed header goes to staging: each tensor's ciphertext is written straight into
        // the weight region it unlocks into, and its chunk tags into one small staging region.
        _package = runtime.Allocate(layout.HeaderLength, RegionTag.InputStaging);
        var unlocks = new List<(DeviceBuffer Region, int Index)>();
        try
        {
            runtime.CopyToDevice(package.Read(0, layout.HeaderLength), _package);
            _tags = runtime.Allocate(Math.Max(1, layout.TagBytes), RegionTag.InputStaging);
            runtime.CopyToDevice(PackageFile.GatherTags(layout, package), _tags);
            TimeSpan headerStaged = clock.Elapsed;
            PackageHandle = Mailbox.OpenPackage(_package.Address, layout.HeaderLength, manifestDigest);
            TimeSpan opened = clock.Elapsed;
            _binding = new ProgramBinding(runtime, _layout.Program, b => b.Tag == RegionTag.Weights ? StageItem(layout, package, b, unlocks) : null);
            TimeSpan staged = clock.Elapsed - opened + headerStaged;
            long beforeUnlock = System.Diagnostics.Stopwatch.GetTimestamp();
            foreach ((DeviceBuffer region, int index) in unlocks)
            {
                _runtime.Execute("package_unlock", [region.AsArgument(), _tags.Slice(layout.TagOffset(index), layout.TagLength(index))],
                    [KernelScalar.Of(PackageHandle), KernelScalar.Of(index)]);
            }
            runtime.DefaultStream.Synchronize();
            TimeSpan unlocked = System.Diagnostics.Stopwatch.GetElapsedTime(beforeUnlock);
            long beforeAttest = System.Diagnostics.Stopwatch.GetTimestamp();
            // Attestation happens when the task list is loaded; in eager mode the attested list is
            // what each single launch is checked against.
            _binding.LoadModel();
            UnlockedBytes = manifest.Tensors.Sum(t => t.ByteLength);
            Timings = new LoadTimings(staged, opened - headerStaged, unlocked, System.Diagnostics.Stopwatch.GetElapsedTime(beforeAttest));
        }
        catch
        {
            _binding?.Dispose();
            _tags?.Dispose();
            if (PackageHandle != 0)
            {
                ClosePackage();
            }
            _package.Dispose();
            throw;
        }
    }

    /// <summary>The model's configuration.</summary>
    public ModelConfig Config { get; }

    /// <summary>The layout and execution options.</summary>
    public CausalLMOptions Options { get; }

    /// <summary>The architecture and the program's shape (for a confidential model, the descriptor it was loaded with).</summary>
    public ModelDeployment Deployment { get; }

    /// <summary>True when confidential computing is on: the model answers only sealed prompts, with sealed tokens.</summary>
    public bool Confidential => _layout.Confidential;

    /// <summary>Context length the KV cache holds.</summary>
    public int MaxContext { get; }

    /// <summary>Most tokens one forward pass takes.</summary>
    public int MaxBatchTokens { get; }

    /// <summary>Sequences the model holds at once (<see cref="CausalLMOptions.MaxSequences"/>).</summary>
    public int MaxSequences => _layout.Sequences;

    /// <summary>
    /// CC off: the batch that decodes up to <see cref="MaxSequences"/> sequences together (continuous
    /// batching). A model has one batch, created here on the first call; while it exists, the batch owns
    /// the KV cache's slots, and the single-sequence calls (<see cref="Generate(IReadOnlyList{int}, int, SamplingOptions?, IReadOnlyCollection{int}?)"/>,
    /// <see cref="Forward"/>) are refused.
    /// </summary>
    public CausalLMBatch CreateBatch()
    {
        RequirePlain();
        return _batch ??= new CausalLMBatch(this);
    }

    /// <summary>The device program.</summary>
    public DeviceProgram Program => _layout.Program;

    /// <summary>
    /// The program's buffers and launches. The host built them, so exposing them gives a malicious
    /// host nothing it does not already have; audits and attack tests use it to find the regions.
    /// </summary>
    public CausalLMProgram Layout => _layout;

    /// <summary>The device region bound to <paramref name="buffer"/> (an address the host chose anyway).</summary>
    public DeviceBuffer Region(ProgramBuffer buffer) => _binding[buffer];

    /// <summary>The loaded model (graph mode's task list; in CC mode also what eager launches are checked against).</summary>
    public LoadedModelHandle Model => _binding.LoadModel();

    /// <summary>CC on: the package's signed manifest (public: its expected graph measurement is what data owners require); null otherwise.</summary>
    public ModelManifest? Manifest { get; }

    /// <summary>CC on: how long each load phase took; null otherwise.</summary>
    public LoadTimings? Timings { get; }

    /// <summary>CC on: plaintext bytes the device decrypted into locked HBM.</summary>
    public long UnlockedBytes { get; }

    /// <summary>CC on: the mailbox relay; null otherwise.</summary>
    public FirmwareMailbox? Mailbox { get; }

    /// <summary>CC on: the device's handle of the opened package.</summary>
    public int PackageHandle { get; }

    /// <summary>CC on: the input staging region holding the package's signed header (manifest and signature).</summary>
    public DeviceBuffer StagedPackage => _package ?? throw NotConfidential();

    /// <summary>CC off: uploads a checkpoint's weights and builds the device program.</summary>
    public static CausalLM Load(NpuRuntime runtime, ModelCheckpoint checkpoint, CausalLMOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(checkpoint);
        options ??= new CausalLMOptions();
        // Unless told otherwise, the matrices the file stores wider than a 4-bit deployment stay wider.
        options = options.MatrixPrecisions is null ? options with { MatrixPrecisions = CheckpointPrecisions.For(checkpoint, options.WeightPrecision) } : options;
        return new CausalLM(runtime, checkpoint.Config, checkpoint.RopeConvention, options, name => TensorData.FromCheckpoint(checkpoint.GetTensor(name)));
    }

    /// <summary>
    /// CC off: uploads weights named as Hugging Face names them (see <see cref="ModelConfig.ExpectedTensors"/>)
    /// and builds the device program. <paramref name="rope"/> says how a Llama's q/k rows are ordered.
    /// </summary>
    public static CausalLM Load(NpuRuntime runtime, ModelConfig config, RopeConvention rope, Func<string, TensorData> weights, CausalLMOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        config.Validate();
        return new CausalLM(runtime, config, rope, options ?? new CausalLMOptions(), weights);
    }

    /// <summary>
    /// CC on: stages <paramref name="package"/>, unlocks it on the device with the key the model
    /// provider released there (for the manifest <paramref name="manifestDigest"/>) and loads the
    /// program, which the device attests against the manifest's expected measurement.
    /// </summary>
    public static CausalLM LoadConfidential(NpuRuntime runtime, ModelDeployment deployment, ReadOnlyMemory<byte> package, ReadOnlySpan<byte> manifestDigest, ExecutionMode mode = ExecutionMode.Graph)
    {
        using PackageSource source = PackageSource.FromMemory(package);
        return LoadConfidential(runtime, deployment, source, manifestDigest, mode);
    }

    /// <summary>
    /// CC on, from a package file: as <see cref="LoadConfidential(NpuRuntime, ModelDeployment, ReadOnlyMemory{byte}, ReadOnlySpan{byte}, ExecutionMode)"/>,
    /// the file read piece by piece as it is staged, so it may exceed 2 GiB (a 7B or 8B model's package
    /// does) and is never read whole into the heap.
    /// </summary>
    /// <exception cref="FileNotFoundException">No file at <paramref name="packagePath"/>.</exception>
    /// <exception cref="FormatException">Not a package, or shorter than its manifest says.</exception>
    public static CausalLM LoadConfidential(NpuRuntime runtime, ModelDeployment deployment, string packagePath, ReadOnlySpan<byte> manifestDigest, ExecutionMode mode = ExecutionMode.Graph)
    {
        using PackageSource source = PackageSource.OpenFile(packagePath);
        return LoadConfidential(runtime, deployment, source, manifestDigest, mode);
    }

    /// <summary>CC on, from any <see cref="PackageSource"/> (it is read during the call only, and stays the caller's).</summary>
    public static CausalLM LoadConfidential(NpuRuntime runtime, ModelDeployment deployment, PackageSource package, ReadOnlySpan<byte> manifestDigest, ExecutionMode mode = ExecutionMode.Graph)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(deployment);
        ArgumentNullException.ThrowIfNull(package);
        return new CausalLM(runtime, deployment, package, manifestDigest, mode);
    }

    /// <summary>Allocates <paramref name="buffer"/>'s weight region and writes its tensor's chunk ciphertexts into it (tags left out).</summary>
    private DeviceBuffer StageItem(PackageLayout layout, PackageSource package, ProgramBuffer buffer, List<(DeviceBuffer, int)> unlocks)
    {
        int index = layout.Manifest.IndexOf(buffer.Name);
        if (index < 0)
        {
            throw new InvalidOperationException($"the package has no item '{buffer.Name}'; it was exported for another model or deployment");
        }
        DeviceBuffer region = _runtime.Allocate(buffer.Bytes, RegionTag.Weights);
        try
        {
            PackageItem item = layout.Manifest.Items[index];
            for (int chunk = 0; chunk < item.ChunkCount; chunk++)
            {
                (long from, int length, long to) = layout.ChunkCiphertext(index, chunk);
                _runtime.CopyToDevice(package.Read(from, length), region, to);
            }
        }
        catch
        {
            region.Dispose();
            throw;
        }
        unlocks.Add((region, index));
        return region;
    }

    /// <summary>
    /// CC off: feeds <paramref name="tokens"/> at positions <paramref name="startPos"/>.. and returns the
    /// next token chosen on the device. The KV cache keeps what was fed, so decoding continues at
    /// startPos + tokens.Length.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Forward(ReadOnlySpan<int> tokens, int startPos, SamplingOptions? sampling = null)
    {
        RequirePlain();
        RequireNoBatch();
        sampling ??= SamplingOptions.Greedy;
        sampling.Validate();
        SetParams(tokens, startPos, sampling);
        // One submission and one wait per pass: inputs, the program, the chosen token.
        Span<int> next = stackalloc int[1];
        using (NpuRuntime.InferenceStep step = _runtime.BeginStep())
        {
            Submit(step, _binding, _layout, tokens);
            step.Finish(_binding[_layout.Next].Address, MemoryMarshal.AsBytes(next));
        }
        return next[0];
    }

    /// <summary>
    /// CC off: feeds <paramref name="tokens"/> at positions <paramref name="startPos"/>.. like
    /// <see cref="Forward"/> (the KV cache keeps them) but picks no token: returns the logits of every
    /// fed position, row-major [tokens.Length × vocab]. Runs a second program that shares this
    /// model's weights, KV cache and activations and ends with the classifier over all rows; it is
    /// built and bound (and, in graph mode, loaded) on the first call.
    /// </summary>
    public float[] ForwardAllLogits(ReadOnlySpan<int> tokens, int startPos)
    {
        RequirePlain();
        RequireNoBatch();
        // No sampling settings: the scoring program picks no token, and the generator keeps its state.
        SetParams(tokens, startPos, sampling: null);
        (CausalLMProgram layout, ProgramBinding binding) = Scoring();
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

    private (CausalLMProgram Layout, ProgramBinding Binding) Scoring()
    {
        if (_scoringLayout is null || _scoringBinding is null)
        {
            CausalLMProgram layout = CausalLMProgram.Build(Config, Deployment.Rope, MaxContext, MaxBatchTokens, Options.WeightPrecision, Options.KvCachePrecision, allPositionLogits: true,
                sequences: MaxSequences, matrixPrecisions: Options.MatrixPrecisions);
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
        SetRows(tokens.Length, segments: 1);
        _params[CausalLMProgram.ParamStart] = startPos;
        // A batched program runs one sequence as one segment in slot 0.
        if (_segments.Length > 0)
        {
            (_segments[0], _segments[1], _segments[2]) = (0, startPos, tokens.Length);
        }
        if (sampling is null)
        {
            return;
        }
        if (_sampling.Length > 0)
        {
            WriteSamplingRow(_sampling.AsSpan(0, SamplingRow.Count), sampling);
        }
        if (sampling.Seed != _seededWith)
        {
            Reseed(sampling.Seed);
        }
        _params[CausalLMProgram.ParamTemperature] = BitConverter.DoubleToInt64Bits(sampling.Temperature);
        _params[CausalLMProgram.ParamTopK] = sampling.TopK;
        _params[CausalLMProgram.ParamTopP] = BitConverter.DoubleToInt64Bits(sampling.TopP);
        _params[CausalLMProgram.ParamMinP] = BitConverter.DoubleToInt64Bits(sampling.MinP);
        _params[CausalLMProgram.ParamRepeatPenalty] = BitConverter.DoubleToInt64Bits(sampling.RepeatPenalty);
        _params[CausalLMProgram.ParamRepeatLastN] = sampling.RepeatLastN;
        _params[CausalLMProgram.ParamFrequencyPenalty] = BitConverter.DoubleToInt64Bits(sampling.FrequencyPenalty);
        _params[CausalLMProgram.ParamPresencePenalty] = BitConverter.DoubleToInt64Bits(sampling.PresencePenalty);
    }

    /// <summary>The step block's row counts for a pass of <paramref name="rows"/> rows in <paramref name="segments"/> segments.</summary>
    private void SetRows(int rows, int segments)
    {
        _params[CausalLMProgram.ParamSeq] = rows;
        _params[CausalLMProgram.ParamLast] = rows - 1;
        _params[CausalLMProgram.ParamSeqDim] = (long)rows * Config.HiddenSize;
        _params[CausalLMProgram.ParamSeqHidden] = (long)rows * Config.IntermediateSize;
        _params[CausalLMProgram.ParamSegments] = segments;
    }

    /// <summary>A slot's <see cref="SamplingRow"/>.</summary>
    internal static void WriteSamplingRow(Span<long> row, SamplingOptions sampling) => SamplingRow.Write(row, sampling.ToPromptSampling());

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Submit(NpuRuntime.InferenceStep step, ProgramBinding binding, CausalLMProgram layout, ReadOnlySpan<int> tokens)
    {
        step.Input(tokens, binding[layout.Tokens].Address);
        step.Input<long>(_params, binding[layout.Params].Address);
        if (layout.Segments is not null)
        {
            step.Input<int>(_segments.AsSpan(0, 3), binding[layout.Segments].Address);
            step.Input<long>(_sampling.AsSpan(0, SamplingRow.Count), binding[layout.Sampling!].Address);
        }
        Run(step, binding);
    }

    /// <summary>
    /// A batched pass (<see cref="CausalLMBatch"/>): <paramref name="tokens"/> are the rows of
    /// <paramref name="segments"/> (slot, start, length each) in order; writes each segment's chosen
    /// token into its slot of <paramref name="next"/> (one entry per slot).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void ForwardSegments(ReadOnlySpan<int> tokens, ReadOnlySpan<int> segments, Span<int> next)
    {
        int count = segments.Length / 3;
        SetRows(tokens.Length, count);
        using NpuRuntime.InferenceStep step = _runtime.BeginStep();
        step.Input(tokens, _binding[_layout.Tokens].Address);
        step.Input<long>(_params, _binding[_layout.Params].Address);
        step.Input(segments, _binding[_layout.Segments!].Address);
        Run(step, _binding);
        step.Finish(_binding[_layout.Next].Address, MemoryMarshal.AsBytes(next[.._layout.Sequences]));
    }

    /// <summary>Batched programs: restarts slot <paramref name="slot"/>'s generator from the sampling seed and sets its sampling settings.</summary>
    internal void PrepareSlot(int slot, SamplingOptions sampling)
    {
        Span<byte> state = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(state, sampling.Seed == 0 ? 0x9E3779B97F4A7C15UL : sampling.Seed);
        _runtime.CopyToDevice(state, _binding[_layout.Rng], slot * 8L);
        Span<long> row = _sampling.AsSpan(slot * SamplingRow.Count, SamplingRow.Count);
        WriteSamplingRow(row, sampling);
        _runtime.CopyToDevice(MemoryMarshal.AsBytes(row), _binding[_layout.Sampling!], slot * SamplingRow.Count * 8L);
    }

    /// <summary>Batched programs: the logits of the last pass's segment <paramref name="segment"/> (its sequence's last row).</summary>
    internal float[] ReadLogits(int segment)
    {
        var logits = new float[Config.VocabSize];
        _runtime.CopyToHost<float>(_binding[_layout.Logits], (long)segment * Config.VocabSize * 4, logits);
        return logits;
    }

    /// <summary>
    /// CC on, a deployment of several sequences (<see cref="ModelDeployment.MaxSequences"/>): the batch
    /// that answers up to <see cref="MaxSequences"/> data owners' sessions together, one sealed record
    /// per token for its own session. A model has one; created on the first call.
    /// </summary>
    public SealedBatch CreateSealedBatch()
    {
        if (!Confidential || _layout.Requests is null)
        {
            throw new InvalidOperationException(Confidential
                ? "this confidential model was deployed for one session at a time (ModelDeployment.MaxSequences = 1); answer it with Generate(session, ...)"
                : "this model runs with confidential computing off: decode several sequences with CreateBatch");
        }
        return _sealedBatch ??= new SealedBatch(this);
    }

    private SealedBatch? _sealedBatch;

    /// <summary>Bytes of one staged prompt record slot (CC on).</summary>
    internal long PromptRecordSlotBytes => _binding[_layout.PromptRecord!].Bytes / _layout.Sequences;

    /// <summary>
    /// CC on, batched: one pass of <paramref name="count"/> segments as the host requests them
    /// (<paramref name="requests"/>: <see cref="SegmentRequest"/> rows), with the prompt records to open
    /// staged at their segments' indexes; reads the pass's sealed records (one slot per segment) into
    /// <paramref name="records"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void SealedSegmentsStep(ReadOnlySpan<long> requests, int count, IReadOnlyList<(int Index, byte[] Record)> opens, Span<byte> records)
    {
        Array.Clear(_params);
        _params[CausalLMProgram.ParamSegments] = count;
        ulong staging = _binding[_layout.PromptRecord!].Address;
        long slot = PromptRecordSlotBytes;
        using NpuRuntime.InferenceStep step = _runtime.BeginStep();
        foreach ((int index, byte[] record) in opens)
        {
            step.Input(record, staging + (ulong)(index * slot));
        }
        step.Input(requests[..(count * SegmentRequest.Count)], _binding[_layout.Requests!].Address);
        step.Input<long>(_params, _binding[_layout.Params].Address);
        Run(step, _binding);
        step.Finish(_binding[_layout.TokenRecord!].Address, records);
    }

    private void RequireNoBatch()
    {
        if (_batch is not null)
        {
            throw new InvalidOperationException("this model's sequences are decoded by its batch (CreateBatch); add the prompt to the batch instead");
        }
    }

    /// <summary>The program, eagerly (each launch on its own) or as the loaded task list.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Run(NpuRuntime.InferenceStep step, ProgramBinding binding)
    {
        if (Options.Mode == ExecutionMode.Graph)
        {
            step.ExecuteModel(binding.LoadModel());
        }
        else
        {
            step.Flush();
            // Each launch on its own even when the list is loaded (CC mode loads it for attestation,
            // and the device then checks each launch against it, in order).
            binding.Run(eager: true);
        }
    }

    /// <summary>CC off: restarts the device's sampling generator from <paramref name="seed"/>.</summary>
    public void Reseed(ulong seed)
    {
        RequirePlain();
        // xorshift state must be nonzero.
        Span<byte> state = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(state, seed == 0 ? 0x9E3779B97F4A7C15UL : seed);
        _runtime.CopyToDevice(state, _binding[_layout.Rng]);
        _seededWith = seed;
    }

    /// <summary>CC off: reads the logits of the last forward pass's last position.</summary>
    public float[] ReadLogits()
    {
        RequirePlain();
        var logits = new float[Config.VocabSize];
        _runtime.CopyToHost<float>(_binding[_layout.Logits], 0, logits);
        return logits;
    }

    /// <summary>
    /// CC off: generates up to <paramref name="maxTokens"/> tokens after <paramref name="prompt"/>,
    /// yielding each as it is decoded; stops at an end-of-sequence id.
    /// </summary>
    public IEnumerable<int> Generate(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions? sampling = null, IReadOnlyCollection<int>? stopTokens = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        RequirePlain();
        RequireNoBatch();
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the prompt needs at least one token", nameof(prompt));
        }
        if (prompt.Count > MaxContext)
        {
            throw new ArgumentException($"the prompt has {prompt.Count} tokens but the context holds {MaxContext}; shorten it", nameof(prompt));
        }
        sampling ??= SamplingOptions.Greedy;
        sampling.Validate();
        return GenerateIterator(prompt, maxTokens, sampling, stopTokens ?? Config.EosTokenIds);
    }

    private IEnumerable<int> GenerateIterator(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions sampling, IReadOnlyCollection<int> stopTokens)
    {
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
        for (int produced = 1; produced <= maxTokens; produced++)
        {
            yield return next;
            // No pass after the last token asked for: its logits stay the ones that chose it (ReadLogits).
            if (produced == maxTokens || stopTokens.Contains(next) || pos >= MaxContext)
            {
                yield break;
            }
            _one[0] = next;
            next = Forward(_one, pos, sampling);
            pos++;
        }
    }

    /// <summary>
    /// CC on: answers a sealed prompt of <paramref name="promptTokens"/> tokens (a count the data owner
    /// reveals to the host) for the data owner's device session <paramref name="session"/>: yields one
    /// sealed token record per generated token. The sampling settings travel sealed in the record and
    /// the device keeps the session's positions, so the host only asks for the next pass. The host
    /// cannot tell an end-of-sequence token; the data owner stops the enumeration when it sees one.
    /// </summary>
    public IEnumerable<byte[]> Generate(int session, byte[] promptRecord, int promptTokens, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(promptRecord);
        if (!Confidential)
        {
            throw new InvalidOperationException("this model runs with confidential computing off: it takes token ids (Generate(prompt, ...)), not sealed prompt records");
        }
        if (_layout.Requests is not null)
        {
            throw new InvalidOperationException($"this confidential model was deployed for {MaxSequences} sessions at once; answer them with CreateSealedBatch()");
        }
        // A prompt may fill the context: its answer is then the one token sampled at the last position.
        if (promptTokens < 1 || promptTokens > MaxContext)
        {
            throw new ArgumentOutOfRangeException(nameof(promptTokens), $"the prompt has {promptTokens} tokens; the context holds {MaxContext}, so it must be 1..{MaxContext}");
        }
        if (promptRecord.Length > _binding[_layout.PromptRecord!].Bytes)
        {
            throw new ArgumentException($"the sealed prompt is {promptRecord.Length} bytes; this deployment stages at most {_binding[_layout.PromptRecord!].Bytes}", nameof(promptRecord));
        }
        return SealedIterator(session, promptRecord, promptTokens, maxTokens);
    }

    private IEnumerable<byte[]> SealedIterator(int session, byte[] promptRecord, int promptTokens, int maxTokens)
    {
        int pos = 0;
        while (pos < promptTokens)
        {
            int n = Math.Min(MaxBatchTokens, promptTokens - pos);
            bool last = pos + n == promptTokens;
            // The sealed prompt travels in the first step's submission: a separate synchronous copy
            // would cost an extra round trip to the device per prompt.
            byte[]? record = pos == 0
                ? SealedStep(session, CausalLMProgram.ModeOpenPrompt, pos, n, last, promptRecord)
                : SealedStep(session, CausalLMProgram.ModeContinuePrompt, pos, n, last);
            pos += n;
            if (record is not null)
            {
                yield return record;
            }
        }
        for (int produced = 1; produced < maxTokens && pos < MaxContext; produced++, pos++)
        {
            yield return SealedStep(session, CausalLMProgram.ModeDecode, pos, 1, emit: true)!;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private byte[]? SealedStep(int session, int mode, int start, int seq, bool emit, byte[]? promptRecord = null)
    {
        // The request: the device checks it against the session's own state and derives the rest.
        _params[CausalLMProgram.ParamSeq] = seq;
        _params[CausalLMProgram.ParamStart] = start;
        _params[CausalLMProgram.ParamSession] = session;
        _params[CausalLMProgram.ParamMode] = mode;
        // One submission and one wait per step: parameters, the program, the sealed token record.
        byte[]? record = emit ? new byte[CausalLMProgram.TokenRecordBytes] : null;
        using (NpuRuntime.InferenceStep step = _runtime.BeginStep())
        {
            if (promptRecord is not null)
            {
                step.Input(promptRecord, _binding[_layout.PromptRecord!].Address);
            }
            step.Input<long>(_params, _binding[_layout.Params].Address);
            Run(step, _binding);
            if (record is null)
            {
                step.Finish();
            }
            else
            {
                step.Finish(_binding[_layout.TokenRecord!].Address, record);
            }
        }
        return record;
    }

    private void RequirePlain()
    {
        if (Confidential)
        {
            throw new InvalidOperationException("this model runs with confidential computing on: it answers only sealed prompts (Generate(session, promptRecord, ...)), and its tokens and logits never leave the device in the clear");
        }
    }

    private static InvalidOperationException NotConfidential() =>
        new("this model runs with confidential computing off; it was loaded from plaintext weights, not a package");

    /// <inheritdoc />
    public void Dispose()
    {
        // The scoring binding borrows the main binding's regions: release it first.
        _scoringBinding?.Dispose();
        _scoringBinding = null;
        _binding.Dispose();
        if (_package is null)
        {
            return;
        }
        _tags?.Dispose();
        try
        {
            ClosePackage();
        }
        finally
        {
            _package.Dispose();
        }
    }

    private void ClosePackage()
    {
        var p = new byte[4];
        BitConverter.TryWriteBytes(p, PackageHandle);
        Mailbox!.Raw(MailboxMessage.Request(MailboxCommand.ClosePackage, p));
    }
}

/// <summary>Phases of a confidential load.</summary>
/// <param name="Stage">DMA of the package: its signed header and chunk tags into staging, each tensor's ciphertext into its weight region.</param>
/// <param name="Open">Manifest signature, release policy and key commitment, checked on the device.</param>
/// <param name="Unlock">Locking every weight region and AES-GCM decrypting it in place.</param>
/// <param name="Attest">Task-list load and measurement.</param>
public sealed record LoadTimings(TimeSpan Stage, TimeSpan Open, TimeSpan Unlock, TimeSpan Attest);
