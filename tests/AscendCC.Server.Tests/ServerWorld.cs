using AscendCC.Attacks;
using AscendCC.Client;
using AscendCC.Device;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace AscendCC.Server.Tests;

/// <summary>
/// The parties around one in-memory server: the test is the manufacturer (it provisions two NPUs and
/// hands the cloud signed firmware and fuse images, never its keys), the model provider (it exports a
/// tiny random Llama and releases its key to an NPU it attested over HTTP) and the data owners. The
/// server is the untrusted host; every byte it handles is recorded.
/// </summary>
internal sealed class ServerWorld : IDisposable
{
    public const int Seed = 1;
    public const string PackageName = "tiny-random-llama";

    private readonly WebApplicationFactory<Program> _factory;
    private readonly NpuHardware _hardware;

    /// <summary>A server (NPUs of <paramref name="hbmBytes"/> of HBM) with the tiny random Llama deployed from <see cref="TinyLlama"/>.</summary>
    public ServerWorld(long hbmBytes = 256L << 20)
        : this(TinyLlama.Config(), TinyLlama.Weights(TinyLlama.Config(), Seed), RopeConvention.Half, PackageName, new TestbedOptions().MaxContext, new TestbedOptions().MaxBatchTokens, hbmBytes: hbmBytes)
    {
    }

    /// <summary>A server to which the model provider exports <paramref name="config"/> with <paramref name="weights"/> as <paramref name="packageName"/>.</summary>
    public ServerWorld(ModelConfig config, Func<string, TensorData> weights, RopeConvention rope, string packageName, int maxContext, int maxBatchTokens, int maxSequences = 1, long hbmBytes = 256L << 20)
    {
        PackageFileName = packageName;
        Store = Path.Combine(Path.GetTempPath(), "ascendcc-server-tests-" + Guid.NewGuid().ToString("N"));
        Manufacturer = Manufacturer.Create();
        Firmware = new FirmwareImage(7, 3, "AscendCC", "NPU firmware 7"u8);
        byte[] signed = Manufacturer.SignFirmware(Firmware);
        Verifier = new AttestationVerifier(Manufacturer.RootCertificate, Manufacturer.PublishReferenceMeasurements([Firmware]),
            Manufacturer.PublishTcbRecoveryStatement(Firmware.SecurityVersion), Manufacturer.PublishRevocationList());
        var fuses = new List<DeviceFuseImage>();
        for (int i = 0; i < 2; i++)
        {
            using DeviceProvisioning p = Manufacturer.ProvisionDevice($"NPU-CC-{i + 1:D4}");
            fuses.Add(p.CreateFuseImage(Firmware.SecurityVersion));
        }
        var hardware = _hardware = new NpuHardware(signed, fuses);

        // The model provider's side: plaintext weights exist only here.
        Weights = weights;
        Deployment = new ModelDeployment(config, rope, maxContext, maxBatchTokens, WeightPrecision.F32, MaxSequences: maxSequences);
        Provider = ModelProvider.Create();
        var policy = new ReleasePolicy(Firmware.SecurityVersion, [ReferenceMeasurements.ExpectedFirmwareRegister(Firmware.Encode())], ReleasePolicy.RootDigest(Manufacturer.RootCertificate));
        using var package = new MemoryStream();
        Model = ModelPackageExporter.Export(Provider, Deployment, Weights, policy, package, packageName);
        Package = package.ToArray();

        _factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseSetting("Npu:ModelStore", Store);
            b.UseSetting("Npu:DeviceCount", "2");
            b.UseSetting("Npu:HbmCapacity", hbmBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
            b.ConfigureServices(s =>
            {
                s.AddSingleton(hardware);
                s.AddSingleton(Recorder.Filter());
            });
        });
        Http = _factory.CreateClient();
        Npu = new RemoteNpu(Http, 0);
    }

    public string Store { get; }

    /// <summary>The package's name on the server (and in its manifest).</summary>
    public string PackageFileName { get; }

    public Manufacturer Manufacturer { get; }

    public FirmwareImage Firmware { get; }

    public AttestationVerifier Verifier { get; }

    public Func<string, TensorData> Weights { get; }

    public ModelDeployment Deployment { get; }

    public ModelProvider Provider { get; }

    public ProtectedModel Model { get; }

    public byte[] Package { get; }

    public BodyRecorder Recorder { get; } = new();

    public HttpClient Http { get; }

    /// <summary>The server's NPUs (for tests that look at the host's own state).</summary>
    public NpuFleet Fleet => _factory.Services.GetRequiredService<NpuFleet>();

    public RemoteNpu Npu { get; }

    /// <summary>The model provider uploads the package, attests NPU 0 remotely, releases the key and has the host load it.</summary>
    public async Task<RemoteModel> DeployAsync()
    {
        using var upload = new MemoryStream(Package, writable: false);
        return await RemoteModelProvider.DeployAsync(Npu, Provider, Model, Verifier, PackageFileName, upload, Deployment);
    }

    /// <summary>A data owner attests NPU 0 over HTTP (requiring the provider's model) and opens a session.</summary>
    public async Task<(DataOwnerSession Owner, int Session)> OpenDataOwnerAsync()
    {
        var owner = new DataOwnerSession(Verifier) { RequiredModel = Model.Manifest.ExpectedGraphMeasurement };
        try
        {
            byte[] open = owner.Attest(await Npu.GetHelloAsync(owner.Nonce));
            RemoteSession session = await Npu.AcceptChannelAsync(open);
            owner.Complete(session.Accept);
            return (owner, session.Session);
        }
        catch
        {
            owner.Dispose();
            throw;
        }
    }

    /// <summary>A whole remote conversation: attest, seal, stream, decrypt, close.</summary>
    public async Task<int[]> GenerateAsync(int[] prompt, int maxTokens)
    {
        (DataOwnerSession owner, int session) = await OpenDataOwnerAsync();
        using (owner)
        {
            var tokens = new List<int>();
            await foreach (byte[] record in Npu.GenerateAsync(session, owner.EncryptPrompt(prompt), prompt.Length, maxTokens))
            {
                tokens.Add(owner.DecryptToken(record).TokenId);
            }
            await Npu.CloseSessionAsync(session);
            return [.. tokens];
        }
    }

    /// <summary>The same conversation with every party in one process (the reference).</summary>
    public static int[] InProcess(int[] prompt, int maxTokens)
    {
        using Testbed bed = Testbed.CreateTiny(seed: Seed);
        using CausalLM llama = bed.Load();
        return bed.Generate(llama, prompt, maxTokens);
    }

    public void Dispose()
    {
        Http.Dispose();
        _factory.Dispose();
        _hardware.Dispose();
        Model.Dispose();
        Provider.Dispose();
        Manufacturer.Dispose();
        try
        {
            Directory.Delete(Store, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
