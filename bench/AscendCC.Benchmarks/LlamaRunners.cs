using System.Diagnostics;
using AscendCC.Device;
using AscendCC.Device.Scheduler;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;
using AscendCC.Tests.TorchLlama;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.Benchmarks;

/// <summary>One way of running a Llama: prefill a prompt from position 0, then decode greedily.</summary>
internal interface ILlamaRunner : IDisposable
{
    string Name { get; }

    /// <summary>True for the TorchSharp baseline.</summary>
    bool IsBaseline { get; }

    /// <summary>Bytes per matrix weight element (decode GB/s).</summary>
    int WeightBytes { get; }

    /// <summary>
    /// Feeds <paramref name="prompt"/> from position 0 and decodes <paramref name="decodeSteps"/>
    /// tokens; returns the prefill's milliseconds followed by each decode step's.
    /// </summary>
    double[] Run(int[] prompt, int decodeSteps);

    /// <summary>HBM in use, for device runners.</summary>
    DeviceMemoryInfo? Hbm { get; }
}

/// <summary>The baseline: a plain TorchSharp Llama (fp32, fused SDPA, KV cache), classifier on the last position only.</summary>
/// <summary>A device runner whose device's operator clock can be read per prefill and per decode run.</summary>
/// <summary>
/// A runner whose decode can be driven one step at a time, so that steps of several runners can be
/// interleaved at the same position (the same context length) and compared pair by pair.
/// </summary>
internal interface ISteppedRunner : ILlamaRunner
{
    /// <summary>Starts a generation of up to <paramref name="maxSteps"/> decode steps after <paramref name="prompt"/>; returns the prefill's milliseconds.</summary>
    double Begin(int[] prompt, int maxSteps);

    /// <summary>Decodes one token; returns its milliseconds.</summary>
    double Step();

    /// <summary>Ends the generation started by <see cref="Begin"/>.</summary>
    void End();
}

internal interface IClockedRunner : ILlamaRunner
{
    /// <summary>Runs the device's operator clock during <see cref="ILlamaRunner.Run"/>.</summary>
    bool ClockOperators { get; set; }

    /// <summary>The last run's prefill: device milliseconds and launches per operator (empty unless clocked).</summary>
    IReadOnlyDictionary<string, (double Milliseconds, long Launches)> PrefillOperators { get; }

    /// <summary>The last run's decode steps together, per operator (empty unless clocked).</summary>
    IReadOnlyDictionary<string, (double Milliseconds, long Launches)> DecodeOperators { get; }
}

internal sealed class TorchRunner : ILlamaRunner
{
    private readonly LlamaForCausalLM _model;
    private readonly Tensor _classifier;

    public TorchRunner(ModelShape shape)
    {
        _model = shape.Checkpoint is not null ? TorchLlamaLoader.Load(shape.Checkpoint)
            : new LlamaForCausalLM(shape.Config as LlamaConfig ?? throw new NotSupportedException($"the TorchSharp baseline is a Llama; {shape.Name} is {shape.Config.Family}"));
        _model.eval();
        _classifier = shape.Config.TieWordEmbeddings
            ? _model.Model.EmbeddingWeight
            : _model.named_parameters().First(p => p.name == "lm_head.weight").parameter;
    }

    public string Name => "TorchSharp f32";

    public bool IsBaseline => true;

    public int WeightBytes => 4;

    public DeviceMemoryInfo? Hbm => null;

    public double[] Run(int[] prompt, int decodeSteps)
    {
        using var noGrad = no_grad();
        _model.ResetCache();
        var times = new double[1 + decodeSteps];
        long[] ids = prompt.Select(t => (long)t).ToArray();
        long next = 0;
        for (int i = 0; i <= decodeSteps; i++)
        {
            long start = Stopwatch.GetTimestamp();
            using (var scope = NewDisposeScope())
            {
                Tensor input = i == 0 ? tensor(ids).unsqueeze(0) : tensor(new[] { next }).unsqueeze(0);
                Tensor h = _model.Model.call(input);
                // A fair baseline: like the device, only the last position goes through the classifier.
                Tensor logits = nn.functional.linear(h.select(1, -1), _classifier);
                next = logits.argmax(-1).item<long>();
            }
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        return times;
    }

    public void Dispose() => _model.Dispose();
}

/// <summary>The device with CC off: <see cref="CausalLM"/> on a device without fuses.</summary>
internal sealed class DeviceRunner : IClockedRunner, ISteppedRunner
{
    private readonly NpuRuntime _runtime;
    private readonly CausalLM _model;
    private readonly int[] _one = new int[1];

    private readonly NpuDevice _device;

    public DeviceRunner(ModelShape shape, WeightPrecision precision, ExecutionMode mode, int maxContext, int maxBatch, KvCachePrecision? kvPrecision = null)
    {
        _device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 16L << 30 });
        _runtime = new NpuRuntime(_device, ownsDevice: true);
        try
        {
            _model = CausalLM.Load(_runtime, shape.Config, shape.Rope, n => shape.Weight(n, precision),
                new CausalLMOptions
                {
                    Mode = mode, MaxContext = maxContext, MaxBatchTokens = maxBatch, WeightPrecision = precision, MatrixPrecisions = shape.MatrixPrecisions(precision),
                    KvCachePrecision = kvPrecision ?? CausalLMOptions.DefaultKvCachePrecision,
                });
        }
        catch
        {
            _runtime.Dispose();
            throw;
        }
        Name = kvPrecision is { } kv ? $"CC off {precision} {mode} KV {kv}" : $"CC off {precision} {mode}";
        WeightBytes = precision == WeightPrecision.F32 ? 4 : 2;
    }

    public string Name { get; }

    public bool IsBaseline => false;

    public int WeightBytes { get; }

    public DeviceMemoryInfo? Hbm => _runtime.MemoryInfo;

    public bool ClockOperators
    {
        get => _device.OperatorClock.Enabled;
        set => _device.OperatorClock.Enabled = value;
    }

    public IReadOnlyDictionary<string, (double Milliseconds, long Launches)> PrefillOperators { get; private set; } = new Dictionary<string, (double, long)>();

    public IReadOnlyDictionary<string, (double Milliseconds, long Launches)> DecodeOperators { get; private set; } = new Dictionary<string, (double, long)>();

    public double[] Run(int[] prompt, int decodeSteps)
    {
        var times = new double[1 + decodeSteps];
        OperatorClock clock = _device.OperatorClock;
        clock.Reset();
        long start = Stopwatch.GetTimestamp();
        int next = _model.Forward(prompt, 0);
        times[0] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        PrefillOperators = clock.Read();
        clock.Reset();
        int pos = prompt.Length;
        for (int i = 1; i <= decodeSteps; i++)
        {
            start = Stopwatch.GetTimestamp();
            _one[0] = next;
            next = _model.Forward(_one, pos++);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        DecodeOperators = clock.Read();
        return times;
    }

    private int _next, _pos;

    public double Begin(int[] prompt, int maxSteps)
    {
        long start = Stopwatch.GetTimestamp();
        _next = _model.Forward(prompt, 0);
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        _pos = prompt.Length;
        return ms;
    }

    public double Step()
    {
        long start = Stopwatch.GetTimestamp();
        _one[0] = _next;
        _next = _model.Forward(_one, _pos++);
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    public void End()
    {
    }

    public void Dispose()
    {
        _model.Dispose();
        _runtime.Dispose();
    }
}

/// <summary>
/// The device with CC on, every party as in the confidential tests: the manufacturer provisions and
/// boots the NPU in CC mode, the model provider exports the weights as an encrypted package and
/// releases its key to the attested device, the host loads it (<see cref="CausalLM"/>),
/// and a data owner seals each prompt. Only the host's side is timed: from the first MoveNext of
/// Generate (which stages the sealed prompt) to each sealed token record.
/// </summary>
internal sealed class ConfidentialRunner : IClockedRunner, ISteppedRunner
{
    private readonly Manufacturer _manufacturer;
    private readonly AttestationVerifier _verifier;
    private readonly NpuDevice _device;
    private readonly NpuRuntime _runtime;
    private readonly FirmwareMailbox _mailbox;
    private readonly CausalLM _llama;

    public ConfidentialRunner(ModelShape shape, WeightPrecision precision, ExecutionMode mode, int maxContext, int maxBatch, string? name = null, int maxSequences = 1,
        KvCachePrecision kvPrecision = CausalLMOptions.DefaultKvCachePrecision)
    {
        _manufacturer = Manufacturer.CreateDeterministic("AscendCC llama benchmark seed, 32+ bytes"u8);
        var firmware = new FirmwareImage(7, 3, "AscendCC", "NPU firmware 7"u8);
        byte[] signedFirmware = _manufacturer.SignFirmware(firmware);
        _verifier = new AttestationVerifier(_manufacturer.RootCertificate, _manufacturer.PublishReferenceMeasurements([firmware]),
            _manufacturer.PublishTcbRecoveryStatement(firmware.SecurityVersion), _manufacturer.PublishRevocationList());
        using (DeviceProvisioning provisioning = _manufacturer.ProvisionDevice("NPU-CC-BENCH"))
        using (DeviceFuseImage fuses = provisioning.CreateFuseImage())
        {
            _device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 16L << 30, Fuses = fuses, Boot = new DeviceBootOptions(signedFirmware, CcMode.On) });
        }
        _runtime = new NpuRuntime(_device);
        _mailbox = new FirmwareMailbox(_device);

        var deployment = new ModelDeployment(shape.Config, shape.Rope, maxContext, maxBatch, precision, KvPrecision: kvPrecision, MaxSequences: maxSequences, MatrixPrecisions: shape.MatrixPrecisions(precision));
        using ModelProvider provider = ModelProvider.CreateDeterministic("model provider signing seed, 32+ bytes"u8);
        var policy = new ReleasePolicy(3, [ReferenceMeasurements.ExpectedFirmwareRegister(firmware.Encode())], ReleasePolicy.RootDigest(_manufacturer.RootCertificate));
        // The package goes through a file, as a provider ships one: the host stages it from there, so
        // it may be larger than 2 GiB (an 8B's is).
        string package = Path.Combine(Path.GetTempPath(), $"ascendcc-bench-{Environment.ProcessId}-{Guid.NewGuid():N}.ccpkg");
        try
        {
            ProtectedModel model;
            using (var stream = new FileStream(package, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                model = ModelPackageExporter.Export(provider, deployment, n => shape.Weight(n, precision), policy, stream, shape.Name);
            }
            using (model)
            {
                using KeyReleaseSession release = provider.BeginKeyRelease(model, _verifier);
                byte[] open = release.Attest(_mailbox.GetHello(release.Nonce.Span));
                (int session, byte[] accept) = _mailbox.AcceptChannel(open);
                byte[] digest = _mailbox.ReleaseModelKey(session, release.CompleteAndRelease(accept));
                _llama = CausalLM.LoadConfidential(_runtime, deployment, package, digest, mode);
            }
        }
        finally
        {
            File.Delete(package);
        }
        Name = name ?? $"CC on {precision} {mode}";
        WeightBytes = precision == WeightPrecision.F32 ? 4 : 2;
    }

    public string Name { get; }

    public bool IsBaseline => false;

    public int WeightBytes { get; }

    public DeviceMemoryInfo? Hbm => _runtime.MemoryInfo;

    /// <summary>Milliseconds the data owner took to seal the last prompt (the device's prompt_open decrypts the same record).</summary>
    public double PromptCryptoMs { get; private set; }

    /// <summary>Milliseconds per token record the data owner took to open the last run's records (the device's token_seal encrypts the same size).</summary>
    public double TokenCryptoMs { get; private set; }

    /// <summary>
    /// Milliseconds the host's CloseSession took after the last run: the device destroys the session's
    /// keys and scrubs the context it held (activations, KV cache, workspace), once per conversation.
    /// </summary>
    public double SessionCloseMs { get; private set; }

    public bool ClockOperators
    {
        get => _device.OperatorClock.Enabled;
        set => _device.OperatorClock.Enabled = value;
    }

    public IReadOnlyDictionary<string, (double Milliseconds, long Launches)> PrefillOperators { get; private set; } = new Dictionary<string, (double, long)>();

    public IReadOnlyDictionary<string, (double Milliseconds, long Launches)> DecodeOperators { get; private set; } = new Dictionary<string, (double, long)>();

    public double[] Run(int[] prompt, int decodeSteps)
    {
        var owner = new DataOwnerSession(_verifier);
        using (owner)
        {
            byte[] hello = owner.Attest(_mailbox.GetHello(owner.Nonce.Span));
            (int session, byte[] accept) = _mailbox.AcceptChannel(hello);
            owner.Complete(accept);
            long sealStart = Stopwatch.GetTimestamp();
            byte[] record = owner.EncryptPrompt(prompt);
            PromptCryptoMs = Stopwatch.GetElapsedTime(sealStart).TotalMilliseconds;
            var times = new double[1 + decodeSteps];
            var records = new byte[1 + decodeSteps][];
            using IEnumerator<byte[]> tokens = _llama.Generate(session, record, prompt.Length, 1 + decodeSteps).GetEnumerator();
            OperatorClock clock = _device.OperatorClock;
            clock.Reset();
            for (int i = 0; i <= decodeSteps; i++)
            {
                long start = Stopwatch.GetTimestamp();
                if (!tokens.MoveNext())
                {
                    throw new InvalidOperationException("the confidential generation ended early");
                }
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                records[i] = tokens.Current;
                if (i == 0)
                {
                    PrefillOperators = clock.Read();
                    clock.Reset();
                }
            }
            DecodeOperators = clock.Read();
            // The data owner reads what came back (untimed in the step times): a check that the run was
            // real, and the cost of one AES-GCM record of the token record's size, which is what the
            // device's token_seal pays per step.
            long openStart = Stopwatch.GetTimestamp();
            foreach (byte[] r in records)
            {
                _ = owner.DecryptToken(r);
            }
            TokenCryptoMs = Stopwatch.GetElapsedTime(openStart).TotalMilliseconds / records.Length;
            // The host closes the device session when the conversation ends, as a service does.
            long closeStart = Stopwatch.GetTimestamp();
            _mailbox.CloseSession(session);
            SessionCloseMs = Stopwatch.GetElapsedTime(closeStart).TotalMilliseconds;
            return times;
        }
    }

    private SealedBatch? _batch;

    /// <summary>
    /// A batched deployment: <paramref name="n"/> data owners (each attests the device and opens a
    /// session) decode together; returns the median ms of one decode step as the host sees it (the
    /// requests, the pass and the records out). Prompts are read first, untimed; the data owners open
    /// their records outside the timed steps, and the host closes every session at the end.
    /// </summary>
    public double RunBatch(int[][] prompts, int n, int steps, int headroom)
    {
        SealedBatch batch = _batch ??= _llama.CreateSealedBatch();
        var owners = new Dictionary<SealedSequence, DataOwnerSession>();
        try
        {
            foreach (int[] prompt in prompts.Take(n))
            {
                var owner = new DataOwnerSession(_verifier);
                byte[] hello = owner.Attest(_mailbox.GetHello(owner.Nonce.Span));
                (int session, byte[] accept) = _mailbox.AcceptChannel(hello);
                owner.Complete(accept);
                owners[batch.Add(session, owner.EncryptPrompt(prompt), prompt.Length, steps + headroom)] = owner;
            }
            while (owners.Keys.Any(s => s.Produced == 0))
            {
                foreach ((SealedSequence s, byte[] record) in batch.Step())
                {
                    _ = owners[s].DecryptToken(record);
                }
                if (owners.Keys.FirstOrDefault(s => s.Failure is not null) is { } refused)
                {
                    throw new InvalidOperationException($"the device refused a data owner's prompt: {refused.Failure!.Message}", refused.Failure);
                }
            }
            var times = new double[steps];
            for (int i = 0; i < steps; i++)
            {
                long start = Stopwatch.GetTimestamp();
                IReadOnlyList<SealedToken> produced = batch.Step();
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (produced.Count != n)
                {
                    throw new InvalidOperationException($"a decode step of {n} sessions produced {produced.Count} records");
                }
                foreach ((SealedSequence s, byte[] record) in produced)
                {
                    _ = owners[s].DecryptToken(record);
                }
            }
            Array.Sort(times);
            return steps % 2 == 1 ? times[steps / 2] : (times[steps / 2 - 1] + times[steps / 2]) / 2;
        }
        finally
        {
            foreach ((SealedSequence s, DataOwnerSession owner) in owners)
            {
                batch.Remove(s);
                _mailbox.CloseSession(s.Session);
                owner.Dispose();
            }
        }
    }

    private DataOwnerSession? _owner;
    private IEnumerator<byte[]>? _tokens;
    private int _session;

    public double Begin(int[] prompt, int maxSteps)
    {
        End();
        _owner = new DataOwnerSession(_verifier);
        byte[] hello = _owner.Attest(_mailbox.GetHello(_owner.Nonce.Span));
        (int session, byte[] accept) = _mailbox.AcceptChannel(hello);
        _owner.Complete(accept);
        _session = session;
        byte[] record = _owner.EncryptPrompt(prompt);
        _tokens = _llama.Generate(session, record, prompt.Length, 1 + maxSteps).GetEnumerator();
        return Step();
    }

    public double Step()
    {
        long start = Stopwatch.GetTimestamp();
        if (!_tokens!.MoveNext())
        {
            throw new InvalidOperationException("the confidential generation ended early");
        }
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    public void End()
    {
        _tokens?.Dispose();
        _tokens = null;
        if (_owner is not null)
        {
            _mailbox.CloseSession(_session);
        }
        _owner?.Dispose();
        _owner = null;
    }

    public void Dispose()
    {
        End();
        _llama.Dispose();
        _runtime.Dispose();
        _device.Dispose();
        _manufacturer.Dispose();
    }
}
