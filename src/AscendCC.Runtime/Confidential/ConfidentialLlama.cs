using System.Runtime.CompilerServices;
using AscendCC.Device;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Programs;

namespace AscendCC.Runtime.Confidential;

/// <summary>
/// The host's side of confidential inference: it stages the encrypted package in HBM, has the device
/// unlock each weight into locked memory, loads the program for attestation, and then, per step,
/// stages the data owner's sealed prompt, runs the program and relays the sealed token record. It
/// never holds a key and never sees a plaintext token, weight or logit.
/// </summary>
public sealed class ConfidentialLlama : IDisposable
{
    private readonly NpuRuntime _runtime;
    private readonly LlamaProgram _layout;
    private readonly ProgramBinding _binding;
    private readonly DeviceBuffer _package;
    private readonly DeviceBuffer? _tags;
    private readonly long[] _params = new long[LlamaProgram.ParamCount];
    private readonly bool _eager;

    private ConfidentialLlama(NpuRuntime runtime, LlamaDeployment deployment, ReadOnlyMemory<byte> package, ReadOnlySpan<byte> manifestDigest, ExecutionMode mode)
    {
        _runtime = runtime;
        Deployment = deployment;
        Mailbox = new FirmwareMailbox(runtime.Device) { Transcript = runtime.Driver.Transcript };
        PackageLayout layout = PackageFile.ReadLayout(package.Span);
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
            runtime.CopyToDevice(package.Span[..layout.HeaderLength], _package);
            _tags = runtime.Allocate(Math.Max(1, layout.TagBytes), RegionTag.InputStaging);
            runtime.CopyToDevice(layout.GatherTags(package.Span), _tags);
            TimeSpan headerStaged = clock.Elapsed;
            PackageHandle = Mailbox.OpenPackage(_package.Address, layout.HeaderLength, manifestDigest);
            TimeSpan opened = clock.Elapsed;
            _binding = new ProgramBinding(runtime, _layout.Program, b => b.Tag == RegionTag.Weights ? StageItem(layout, package.Span, b, unlocks) : null);
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
            _eager = mode == ExecutionMode.Eager;
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

    /// <summary>The deployment.</summary>
    public LlamaDeployment Deployment { get; }

    /// <summary>The package's signed manifest (public: its expected graph measurement is what data owners require).</summary>
    public ModelManifest Manifest { get; }

    /// <summary>How long each load phase took.</summary>
    public LoadTimings Timings { get; } = null!;

    /// <summary>Plaintext bytes the device decrypted into locked HBM.</summary>
    public long UnlockedBytes { get; }

    /// <summary>The mailbox relay.</summary>
    public FirmwareMailbox Mailbox { get; }

    /// <summary>The device's handle of the opened package.</summary>
    public int PackageHandle { get; }

    /// <summary>
    /// The program's buffers and launches. The host built them, so exposing them gives a malicious
    /// host nothing it does not already have; audits and attack tests use it to find the regions.
    /// </summary>
    public LlamaProgram Layout => _layout;

    /// <summary>The device region bound to <paramref name="buffer"/> (an address the host chose anyway).</summary>
    public DeviceBuffer Region(ProgramBuffer buffer) => _binding[buffer];

    /// <summary>The input staging region holding the package's signed header (manifest and signature).</summary>
    public DeviceBuffer StagedPackage => _package;

    /// <summary>The loaded model (graph mode's task list, also what eager launches are checked against).</summary>
    public LoadedModelHandle Model => _binding.LoadModel();

    /// <summary>
    /// Stages <paramref name="package"/>, unlocks it on the device with the key the model provider
    /// released there (for the manifest <paramref name="manifestDigest"/>) and loads the program.
    /// </summary>
    public static ConfidentialLlama Load(NpuRuntime runtime, LlamaDeployment deployment, ReadOnlyMemory<byte> package, ReadOnlySpan<byte> manifestDigest, ExecutionMode mode = ExecutionMode.Graph)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(deployment);
        return new ConfidentialLlama(runtime, deployment, package, manifestDigest, mode);
    }

    /// <summary>Allocates <paramref name="buffer"/>'s weight region and writes its tensor's chunk ciphertexts into it (tags left out).</summary>
    private DeviceBuffer StageItem(PackageLayout layout, ReadOnlySpan<byte> package, ProgramBuffer buffer, List<(DeviceBuffer, int)> unlocks)
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
                _runtime.CopyToDevice(package.Slice(checked((int)from), length), region, to);
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
    /// Answers a sealed prompt of <paramref name="promptTokens"/> tokens (a count the data owner reveals
    /// to the host) for the data owner's device session <paramref name="session"/>: yields one sealed
    /// token record per generated token. The sampling settings travel sealed in the record and the
    /// device keeps the session's positions, so the host only asks for the next pass. The host cannot
    /// tell an end-of-sequence token; the data owner stops the enumeration when it sees one.
    /// </summary>
    public IEnumerable<byte[]> Generate(int session, byte[] promptRecord, int promptTokens, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(promptRecord);
        int maxContext = Deployment.MaxContext, batch = Deployment.MaxBatchTokens;
        if (promptTokens < 1 || promptTokens >= maxContext)
        {
            throw new ArgumentOutOfRangeException(nameof(promptTokens), $"the prompt has {promptTokens} tokens; the context holds {maxContext}, so it must be 1..{maxContext - 1}");
        }
        if (promptRecord.Length > _binding[_layout.PromptRecord!].Bytes)
        {
            throw new ArgumentException($"the sealed prompt is {promptRecord.Length} bytes; this deployment stages at most {_binding[_layout.PromptRecord!].Bytes}", nameof(promptRecord));
        }

        int pos = 0;
        while (pos < promptTokens)
        {
            int n = Math.Min(batch, promptTokens - pos);
            bool last = pos + n == promptTokens;
            // The sealed prompt travels in the first step's submission: a separate synchronous copy
            // would cost an extra round trip to the device per prompt.
            byte[]? record = pos == 0
                ? Step(session, LlamaProgram.ModeOpenPrompt, pos, n, last, promptRecord)
                : Step(session, LlamaProgram.ModeContinuePrompt, pos, n, last);
            pos += n;
            if (record is not null)
            {
                yield return record;
            }
        }
        for (int produced = 1; produced < maxTokens && pos < maxContext; produced++, pos++)
        {
            yield return Step(session, LlamaProgram.ModeDecode, pos, 1, emit: true)!;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private byte[]? Step(int session, int mode, int start, int seq, bool emit, byte[]? promptRecord = null)
    {
        // The request: the device checks it against the session's own state and derives the rest.
        _params[LlamaProgram.ParamSeq] = seq;
        _params[LlamaProgram.ParamStart] = start;
        _params[LlamaProgram.ParamSession] = session;
        _params[LlamaProgram.ParamMode] = mode;
        // One submission and one wait per step: parameters, the program, the sealed token record.
        byte[]? record = emit ? new byte[LlamaProgram.TokenRecordBytes] : null;
        using (NpuRuntime.InferenceStep step = _runtime.BeginStep())
        {
            if (promptRecord is not null)
            {
                step.Input(promptRecord, _binding[_layout.PromptRecord!].Address);
            }
            step.Input<long>(_params, _binding[_layout.Params].Address);
            if (_eager)
            {
                step.Flush();
                _binding.Run(eager: true);
            }
            else
            {
                step.ExecuteModel(_binding.LoadModel());
            }
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

    /// <inheritdoc />
    public void Dispose()
    {
        _binding.Dispose();
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
        Mailbox.Raw(MailboxMessage.Request(MailboxCommand.ClosePackage, p));
    }
}

/// <summary>Phases of a confidential load.</summary>
/// <param name="Stage">DMA of the package: its signed header and chunk tags into staging, each tensor's ciphertext into its weight region.</param>
/// <param name="Open">Manifest signature, release policy and key commitment, checked on the device.</param>
/// <param name="Unlock">Locking every weight region and AES-GCM decrypting it in place.</param>
/// <param name="Attest">Task-list load and measurement.</param>
public sealed record LoadTimings(TimeSpan Stage, TimeSpan Open, TimeSpan Unlock, TimeSpan Attest);
