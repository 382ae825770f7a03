using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Driver;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Runtime.Tests.Confidential;

/// <summary>
/// Every party of a confidential inference in one process, kept apart: the manufacturer makes and
/// provisions the NPU, the model provider exports stories260K as a package and releases its key to
/// the attested device, the data owner attests the device and sends a sealed prompt; the host (the
/// runtime here) only relays.
/// </summary>
internal sealed class ConfidentialWorld : IDisposable
{
    public ConfidentialWorld(string modelFolder, ExecutionMode mode = ExecutionMode.Graph, CcMode ccMode = CcMode.On, IHostTranscript? transcript = null,
        int maxContext = 128, int maxBatchTokens = 64, WeightPrecision precision = WeightPrecision.F32)
    {
        Manufacturer = Manufacturer.CreateDeterministic("AscendCC confidential world seed, 32+ bytes"u8);
        Firmware = new FirmwareImage(7, 3, "AscendCC", "NPU firmware 7"u8);
        SignedFirmware = Manufacturer.SignFirmware(Firmware);
        Verifier = new AttestationVerifier(Manufacturer.RootCertificate, Manufacturer.PublishReferenceMeasurements([Firmware]));
        using DeviceProvisioning provisioning = Manufacturer.ProvisionDevice("NPU-CC-0001");
        using DeviceFuseImage fuses = provisioning.CreateFuseImage();
        Device = new NpuDevice(new NpuDeviceOptions
        {
            HbmCapacity = 1L << 30,
            Fuses = fuses,
            Boot = new DeviceBootOptions(SignedFirmware, ccMode),
        });
        Runtime = new NpuRuntime(Device);
        Runtime.Driver.Transcript = transcript;
        Mailbox = new FirmwareMailbox(Device) { Transcript = transcript };

        // The model provider's side: plaintext weights exist only here.
        Checkpoint = LlamaCheckpoint.Open(modelFolder);
        Deployment = new LlamaDeployment(Checkpoint.Config, Checkpoint.RopeConvention, maxContext, maxBatchTokens, precision);
        Provider = ModelProvider.CreateDeterministic("model provider signing seed, 32+ bytes"u8);
        Policy = new ReleasePolicy(3, [ReferenceMeasurements.ExpectedFirmwareRegister(Firmware.Encode())], ReleasePolicy.RootDigest(Manufacturer.RootCertificate));
        using var package = new MemoryStream();
        Model = LlamaPackageExporter.Export(Provider, Deployment, n => TensorData.FromCheckpoint(Checkpoint.GetTensor(n)), Policy, package, "stories260K");
        Package = package.ToArray();
        Mode = mode;
    }

    public Manufacturer Manufacturer { get; }

    public FirmwareImage Firmware { get; }

    public byte[] SignedFirmware { get; }

    public AttestationVerifier Verifier { get; }

    public NpuDevice Device { get; }

    public NpuRuntime Runtime { get; }

    public FirmwareMailbox Mailbox { get; }

    public LlamaCheckpoint Checkpoint { get; }

    public LlamaDeployment Deployment { get; }

    public ModelProvider Provider { get; }

    public ReleasePolicy Policy { get; }

    public ProtectedModel Model { get; }

    public byte[] Package { get; }

    public ExecutionMode Mode { get; }

    /// <summary>The model provider attests the device and releases the key into it; returns the manifest digest.</summary>
    public byte[] ReleaseKey()
    {
        using KeyReleaseSession release = Provider.BeginKeyRelease(Model, Verifier);
        byte[] open = release.Attest(Mailbox.GetHello(release.Nonce.Span));
        (int session, byte[] accept) = Mailbox.AcceptChannel(open);
        return Mailbox.ReleaseModelKey(session, release.CompleteAndRelease(accept));
    }

    /// <summary>Key release, then the host loads the package.</summary>
    public ConfidentialLlama Load() => ConfidentialLlama.Load(Runtime, Deployment, Package, ReleaseKey(), Mode);

    /// <summary>The data owner attests the device and opens a session with it.</summary>
    public (DataOwnerSession Owner, int DeviceSession) OpenDataOwner(VerificationPolicy? policy = null)
    {
        var owner = new DataOwnerSession(Verifier, policy);
        byte[] open = owner.Attest(Mailbox.GetHello(owner.Nonce.Span));
        (int session, byte[] accept) = Mailbox.AcceptChannel(open);
        owner.Complete(accept);
        return (owner, session);
    }

    /// <summary>A whole confidential generation: the data owner's plaintext in, plaintext tokens out (decrypted by the data owner).</summary>
    public int[] Generate(ConfidentialLlama llama, int[] prompt, int maxTokens, SamplingOptions? sampling = null)
    {
        (DataOwnerSession owner, int session) = OpenDataOwner();
        using (owner)
        {
            var tokens = new List<int>();
            foreach (byte[] record in llama.Generate(session, owner.EncryptPrompt(prompt), prompt.Length, maxTokens, sampling))
            {
                TokenMessage t = owner.DecryptToken(record);
                tokens.Add(t.TokenId);
            }
            return tokens.ToArray();
        }
    }

    public void Dispose()
    {
        Model.Dispose();
        Provider.Dispose();
        Checkpoint.Dispose();
        Runtime.Dispose();
        Device.Dispose();
        Manufacturer.Dispose();
    }
}
