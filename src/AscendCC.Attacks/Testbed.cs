using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Driver;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Attacks;

/// <summary>How a <see cref="Testbed"/> is set up.</summary>
public sealed record TestbedOptions
{
    /// <summary>The CC mode the NPU boots in. Default On.</summary>
    public CcMode CcMode { get; init; } = CcMode.On;

    /// <summary>Graph (executeModel) or eager (one launch at a time) inference. Default graph.</summary>
    public ExecutionMode Mode { get; init; } = ExecutionMode.Graph;

    /// <summary>KV cache length of the deployment. Default 32.</summary>
    public int MaxContext { get; init; } = 32;

    /// <summary>Most tokens per pass. Default 4.</summary>
    public int MaxBatchTokens { get; init; } = 4;

    /// <summary>Weight matrix precision. Default F32.</summary>
    public WeightPrecision Precision { get; init; } = WeightPrecision.F32;

    /// <summary>KV cache precision of the deployment. Default <see cref="CausalLMOptions.DefaultKvCachePrecision"/>.</summary>
    public KvCachePrecision KvPrecision { get; init; } = CausalLMOptions.DefaultKvCachePrecision;

    /// <summary>A mixed deployment's matrices kept in another precision than <see cref="Precision"/> (<see cref="ModelDeployment.MatrixPrecisions"/>). Default none.</summary>
    public IReadOnlyDictionary<string, WeightPrecision>? MatrixPrecisions { get; init; }

    /// <summary>Data owners' sequences the deployment decodes together (batched decode). Default 1.</summary>
    public int MaxSequences { get; init; } = 1;

    /// <summary>Receives every byte the host handles (driver and mailbox relay), or null.</summary>
    public IHostTranscript? Transcript { get; init; }

    /// <summary>Ask the boot ROM for an unlocked debug port (CC On forces it locked anyway).</summary>
    public bool DebugRequested { get; init; }

    /// <summary>Security version number of the firmware the manufacturer publishes. Default 3.</summary>
    public uint FirmwareSvn { get; init; } = 3;

    /// <summary>The device's fused anti-rollback counter. Default 3 (the current firmware's SVN).</summary>
    public uint AntiRollbackCounter { get; init; } = 3;

    /// <summary>HBM capacity. Default 1 GiB.</summary>
    public long HbmCapacity { get; init; } = 1L << 30;
}

/// <summary>
/// Every party of a confidential inference in one process, kept apart: the manufacturer makes,
/// provisions and boots the NPU and publishes reference measurements; the model provider exports the
/// weights as an encrypted package and releases its key only into an attested device; the data owner
/// attests the device and seals its prompt; the host (the runtime, or the <see cref="Attacker"/>)
/// holds the device's raw interface and relays bytes. Plaintext weights exist only on the model
/// provider's side (<see cref="Weights"/>), for audits that look for them where they must not be.
/// </summary>
public sealed class Testbed : IDisposable
{
    private readonly IDisposable? _weightsOwner;
    private MaliciousHost? _attacker;

    private Testbed(ModelConfig config, RopeConvention rope, Func<string, TensorData> weights, TestbedOptions? options, string modelName, IDisposable? weightsOwner)
    {
        Options = options ?? new TestbedOptions();
        _weightsOwner = weightsOwner;
        Manufacturer = Manufacturer.CreateDeterministic("AscendCC confidential world seed, 32+ bytes"u8);
        try
        {
            Firmware = new FirmwareImage(7, Options.FirmwareSvn, "AscendCC", "NPU firmware 7"u8);
            SignedFirmware = Manufacturer.SignFirmware(Firmware);
            // The verifier holds every manufacturer publication: reference measurements, the TCB recovery
            // statement (minimum SVN = this release's) and the revocation list (nothing revoked yet).
            Verifier = new AttestationVerifier(Manufacturer.RootCertificate, Manufacturer.PublishReferenceMeasurements([Firmware]),
                Manufacturer.PublishTcbRecoveryStatement(Options.FirmwareSvn), Manufacturer.PublishRevocationList());
            using (DeviceProvisioning provisioning = Manufacturer.ProvisionDevice("NPU-CC-0001"))
            using (DeviceFuseImage fuses = provisioning.CreateFuseImage(Options.AntiRollbackCounter))
            {
                Device = new NpuDevice(new NpuDeviceOptions
                {
                    HbmCapacity = Options.HbmCapacity,
                    Fuses = fuses,
                    Boot = new DeviceBootOptions(SignedFirmware, Options.CcMode, Options.DebugRequested),
                });
            }
            Runtime = new NpuRuntime(Device);
            Runtime.Driver.Transcript = Options.Transcript;
            Mailbox = new FirmwareMailbox(Device) { Transcript = Options.Transcript };

            // The model provider's side: plaintext weights exist only here.
            Config = config;
            Rope = rope;
            Weights = weights;
            Deployment = new ModelDeployment(config, rope, Options.MaxContext, Options.MaxBatchTokens, Options.Precision, Options.KvPrecision, Options.MaxSequences, Options.MatrixPrecisions);
            Provider = ModelProvider.CreateDeterministic("model provider signing seed, 32+ bytes"u8);
            Policy = new ReleasePolicy(Options.FirmwareSvn, [ReferenceMeasurements.ExpectedFirmwareRegister(Firmware.Encode())], ReleasePolicy.RootDigest(Manufacturer.RootCertificate));
            using var package = new MemoryStream();
            Model = ModelPackageExporter.Export(Provider, Deployment, weights, Policy, package, modelName);
            Package = package.ToArray();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>A testbed for any weights source (Hugging Face names → tensors).</summary>
    public static Testbed Create(ModelConfig config, RopeConvention rope, Func<string, TensorData> weights, TestbedOptions? options = null, string modelName = "llama") =>
        new(config ?? throw new ArgumentNullException(nameof(config)), rope, weights ?? throw new ArgumentNullException(nameof(weights)), options, modelName, null);

    /// <summary>A testbed with a randomly generated <see cref="TinyLlama"/> (no model files needed).</summary>
    public static Testbed CreateTiny(TestbedOptions? options = null, int seed = 1)
    {
        LlamaConfig config = TinyLlama.Config();
        return new Testbed(config, RopeConvention.Half, TinyLlama.Weights(config, seed), options, "tiny-random-llama", null);
    }

    /// <summary>A testbed for a checkpoint folder (Hugging Face or llama2.c), e.g. stories260K.</summary>
    public static Testbed FromCheckpoint(string modelFolder, TestbedOptions? options = null)
    {
        ModelCheckpoint checkpoint = ModelCheckpoint.Open(modelFolder);
        try
        {
            return new Testbed(checkpoint.Config, checkpoint.RopeConvention, n => TensorData.FromCheckpoint(checkpoint.GetTensor(n)), options, Path.GetFileName(modelFolder.TrimEnd('/', '\\')), checkpoint);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>How the testbed was set up.</summary>
    public TestbedOptions Options { get; }

    /// <summary>The manufacturer (root CA, firmware signing, provisioning).</summary>
    public Manufacturer Manufacturer { get; } = null!;

    /// <summary>The firmware release the device boots.</summary>
    public FirmwareImage Firmware { get; } = null!;

    /// <summary>That release, signed by the manufacturer.</summary>
    public byte[] SignedFirmware { get; } = null!;

    /// <summary>The verifier the model provider and data owner share (manufacturer root, published reference measurements, TCB recovery statement and revocation list).</summary>
    public AttestationVerifier Verifier { get; } = null!;

    /// <summary>The NPU: its raw hardware interface is all the host has.</summary>
    public NpuDevice Device { get; } = null!;

    /// <summary>The (untrusted) host runtime.</summary>
    public NpuRuntime Runtime { get; } = null!;

    /// <summary>The host's mailbox relay.</summary>
    public FirmwareMailbox Mailbox { get; } = null!;

    /// <summary>The architecture.</summary>
    public ModelConfig Config { get; } = null!;

    /// <summary>The q/k row order of the weights.</summary>
    public RopeConvention Rope { get; }

    /// <summary>The model provider's plaintext weights (only the provider and audits use them).</summary>
    public Func<string, TensorData> Weights { get; } = null!;

    /// <summary>The deployment descriptor the host receives in the clear.</summary>
    public ModelDeployment Deployment { get; } = null!;

    /// <summary>The model provider.</summary>
    public ModelProvider Provider { get; } = null!;

    /// <summary>Which devices may receive the model key.</summary>
    public ReleasePolicy Policy { get; } = null!;

    /// <summary>The protected model (manifest and key, the provider's side).</summary>
    public ProtectedModel Model { get; } = null!;

    /// <summary>The encrypted package the host receives.</summary>
    public byte[] Package { get; } = null!;

    /// <summary>Names of every weight tensor the deployment binds.</summary>
    public IEnumerable<string> WeightNames => Deployment.BuildProgram().Weights.Keys;

    /// <summary>A malicious host on the same device (its own stream, raw task bytes, DMA, mailbox, debug port).</summary>
    public MaliciousHost Attacker => _attacker ??= new MaliciousHost(this);

    /// <summary>The model provider attests the device and releases the key into it; returns the manifest digest.</summary>
    /// <exception cref="AttestationFailedException">The device does not satisfy the release policy.</exception>
    public byte[] ReleaseKey() => ReleaseKey(Model);

    /// <summary>
    /// The model provider attests the device and releases the key of another package it built for this
    /// deployment (e.g. one exported straight from a TorchSharp module); returns the manifest digest.
    /// </summary>
    /// <exception cref="AttestationFailedException">The device does not satisfy the package's release policy.</exception>
    public byte[] ReleaseKey(ProtectedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        using KeyReleaseSession release = Provider.BeginKeyRelease(model, Verifier);
        byte[] open = release.Attest(Mailbox.GetHello(release.Nonce.Span));
        (int session, byte[] accept) = Mailbox.AcceptChannel(open);
        return Mailbox.ReleaseModelKey(session, release.CompleteAndRelease(accept));
    }

    /// <summary>Key release, then the host loads the package (the legitimate setup most attacks start from).</summary>
    public CausalLM Load() => CausalLM.LoadConfidential(Runtime, Deployment, Package, ReleaseKey(), Options.Mode);

    /// <summary>Key release for <paramref name="model"/>, then the host loads <paramref name="package"/> (built for <see cref="Deployment"/>).</summary>
    public CausalLM Load(ProtectedModel model, byte[] package) => CausalLM.LoadConfidential(Runtime, Deployment, package, ReleaseKey(model), Options.Mode);

    /// <summary>Key release for <paramref name="model"/>, then the host loads the package file at <paramref name="packagePath"/> (built for <see cref="Deployment"/>), read piece by piece.</summary>
    public CausalLM LoadFile(ProtectedModel model, string packagePath) => CausalLM.LoadConfidential(Runtime, Deployment, packagePath, ReleaseKey(model), Options.Mode);

    /// <summary>CC off only: the host loads the plaintext weights itself (the baseline an audit must catch).</summary>
    public CausalLM LoadPlaintext() => CausalLM.Load(Runtime, Config, Rope, Weights,
        new CausalLMOptions { Mode = Options.Mode, MaxContext = Options.MaxContext, MaxBatchTokens = Options.MaxBatchTokens, WeightPrecision = Options.Precision,
            KvCachePrecision = Options.KvPrecision, MatrixPrecisions = Options.MatrixPrecisions });

    /// <summary>
    /// The data owner attests the device and opens a session with it. By default the session requires
    /// the testbed's model (the manifest's expected graph measurement, which the provider publishes);
    /// <paramref name="requiredModel"/> overrides it, and an empty one accepts any model.
    /// </summary>
    /// <exception cref="AttestationFailedException">The device does not satisfy <paramref name="policy"/>.</exception>
    public (DataOwnerSession Owner, int DeviceSession) OpenDataOwner(VerificationPolicy? policy = null, ReadOnlyMemory<byte>? requiredModel = null)
    {
        var owner = new DataOwnerSession(Verifier, policy) { RequiredModel = requiredModel ?? Model.Manifest.ExpectedGraphMeasurement };
        try
        {
            byte[] open = owner.Attest(Mailbox.GetHello(owner.Nonce.Span));
            (int session, byte[] accept) = Mailbox.AcceptChannel(open);
            owner.Complete(accept);
            return (owner, session);
        }
        catch
        {
            owner.Dispose();
            throw;
        }
    }

    /// <summary>A whole confidential generation: the data owner's plaintext in, plaintext tokens out (decrypted by the data owner).</summary>
    public int[] Generate(CausalLM llama, int[] prompt, int maxTokens, SamplingOptions? sampling = null)
    {
        ArgumentNullException.ThrowIfNull(llama);
        ArgumentNullException.ThrowIfNull(prompt);
        // The data owner requires the model it was told this is (in a testbed, the loaded package's own
        // manifest; in real use the model provider publishes it).
        (DataOwnerSession owner, int session) = OpenDataOwner(requiredModel: llama.Manifest!.ExpectedGraphMeasurement);
        using (owner)
        {
            var tokens = new List<int>();
            foreach (byte[] record in llama.Generate(session, owner.EncryptPrompt(prompt, sampling), prompt.Length, maxTokens))
            {
                TokenMessage t = owner.DecryptToken(record);
                tokens.Add(t.TokenId);
            }
            return tokens.ToArray();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _attacker?.Dispose();
        Model?.Dispose();
        Provider?.Dispose();
        Runtime?.Dispose();
        Device?.Dispose();
        Manufacturer?.Dispose();
        _weightsOwner?.Dispose();
    }
}
