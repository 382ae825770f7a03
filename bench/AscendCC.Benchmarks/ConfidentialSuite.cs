using System.Diagnostics;
using System.Runtime.InteropServices;
using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Benchmarks;

/// <summary>
/// The one-time cost of confidentiality for a ~117 MB (bf16) model: attestation with key release,
/// staging the encrypted package, opening it on the device, and the AES-GCM unlock into locked HBM.
/// </summary>
internal sealed class ConfidentialSuite : IBenchmarkSuite
{
    public string Name => "confidential";

    public string Description => "attestation, key release and package unlock of a ~117 MB model (one-time CC setup)";

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        var config = new LlamaConfig
        {
            Architecture = "LlamaForCausalLM", HiddenSize = 1024, IntermediateSize = 2816, NumHiddenLayers = 2,
            NumAttentionHeads = 16, NumKeyValueHeads = 16, VocabSize = 32000, MaxPositionEmbeddings = 512, TieWordEmbeddings = true,
        };
        var deployment = new LlamaDeployment(config, RopeConvention.Half, MaxContext: 256, MaxBatchTokens: 64, WeightPrecision.BF16);
        var shapes = LlamaTensorNames.Expected(config).ToDictionary(e => e.Name, e => e.Shape);
        var rng = new Random(5);
        TensorData Weights(string name)
        {
            long[] shape = shapes[name];
            long n = shape.Aggregate(1L, (a, b) => a * b);
            var bf16 = new ushort[n];
            for (long i = 0; i < n; i++)
            {
                bf16[i] = WeightConversion.ToBFloat16((float)((rng.NextDouble() - 0.5) * 0.05));
            }
            return shape.Length == 1
                ? TensorData.FromFloat32(name, shape, Enumerable.Repeat(1f, (int)n).ToArray())
                : new TensorData(name, TensorDType.BF16, shape, MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray());
        }

        // The first round pays for JIT compilation and first-touch page faults of the process; the
        // second shows the steady cost a deployment pays per model load.
        for (int round = 0; round < 2; round++)
        {
            Round(deployment, Weights, table, report: round == 1);
        }
    }

    private static void Round(LlamaDeployment deployment, Func<string, TensorData> Weights, ResultTable table, bool report)
    {
        using Manufacturer manufacturer = Manufacturer.CreateDeterministic("benchmark manufacturer seed, 32+ bytes"u8);
        var firmware = new FirmwareImage(1, 1, "AscendCC", "benchmark firmware"u8);
        var verifier = new AttestationVerifier(manufacturer.RootCertificate, manufacturer.PublishReferenceMeasurements([firmware]));
        using DeviceProvisioning provisioning = manufacturer.ProvisionDevice("NPU-BENCH");
        using DeviceFuseImage fuses = provisioning.CreateFuseImage();
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { Fuses = fuses, Boot = new DeviceBootOptions(manufacturer.SignFirmware(firmware), CcMode.On) }), ownsDevice: true);
        using ModelProvider provider = ModelProvider.Create();
        var policy = new ReleasePolicy(1, [ReferenceMeasurements.ExpectedFirmwareRegister(firmware.Encode())], ReleasePolicy.RootDigest(manufacturer.RootCertificate));

        var clock = Stopwatch.StartNew();
        using var packageStream = new MemoryStream();
        using ProtectedModel model = LlamaPackageExporter.Export(provider, deployment, Weights, policy, packageStream, "bench");
        byte[] package = packageStream.ToArray();
        double exportMs = clock.Elapsed.TotalMilliseconds;

        var mailbox = new FirmwareMailbox(runtime.Device);
        clock.Restart();
        byte[] digest;
        using (KeyReleaseSession release = provider.BeginKeyRelease(model, verifier))
        {
            byte[] open = release.Attest(mailbox.GetHello(release.Nonce.Span));
            (int session, byte[] accept) = mailbox.AcceptChannel(open);
            digest = mailbox.ReleaseModelKey(session, release.CompleteAndRelease(accept));
        }
        double releaseMs = clock.Elapsed.TotalMilliseconds;

        using ConfidentialLlama llama = ConfidentialLlama.Load(runtime, deployment, package, digest);
        LoadTimings t = llama.Timings;
        double mb = llama.UnlockedBytes / 1e6;
        if (!report)
        {
            return;
        }
        Console.WriteLine($"package {package.Length / 1e6:F1} MB, plaintext weights {mb:F1} MB");
        Console.WriteLine($"export (provider side) {exportMs:F0} ms; attestation + key release {releaseMs:F1} ms");
        Console.WriteLine($"stage {t.Stage.TotalMilliseconds:F1} ms, open {t.Open.TotalMilliseconds:F1} ms, unlock {t.Unlock.TotalMilliseconds:F1} ms ({mb / 1e3 / t.Unlock.TotalSeconds:F2} GB/s), attest task list {t.Attest.TotalMilliseconds:F1} ms");
        table.AddNote($"| attestation + key release | {releaseMs:F1} ms |");
        table.AddNote($"| stage {package.Length / 1e6:F0} MB package (DMA) | {t.Stage.TotalMilliseconds:F1} ms |");
        table.AddNote($"| open package on device (signature, policy, key commitment) | {t.Open.TotalMilliseconds:F1} ms |");
        table.AddNote($"| unlock {mb:F0} MB into locked HBM | {t.Unlock.TotalMilliseconds:F1} ms = {mb / 1e3 / t.Unlock.TotalSeconds:F2} GB/s |");
        table.AddNote($"| task-list measurement at load | {t.Attest.TotalMilliseconds:F1} ms |");
    }
}
