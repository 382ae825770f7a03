using AscendCC.Client;
using AscendCC.Protocol.Firmware;
using AscendCC.ProviderTool;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.Verification;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Server.Tests;

/// <summary>
/// <c>ascendcc-provider deploy</c> against a server process with two NPUs: the model provider's one
/// command from a Hugging Face folder to a model data owners can require; and the refusals a provider
/// meets (missing publications, an NPU under another manufacturer's root).
/// </summary>
[NonParallelizable]
public sealed class ProviderToolTests
{
    private static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = await ProviderCommand.Create(stdout, stderr).Parse(args).InvokeAsync();
        return (exit, stdout.ToString(), stderr.ToString());
    }

    /// <summary>
    /// A data owner on NPU <paramref name="device"/> that trusts <paramref name="manufacturer"/>'s
    /// publications and requires <paramref name="measurement"/>: its tokens after a five-token prompt.
    /// </summary>
    private static async Task<List<int>> GenerateAsDataOwnerAsync(ServerProcess server, int device, string manufacturer, byte[] measurement, int count)
    {
        using var http = new HttpClient { BaseAddress = server.Address };
        var npu = new RemoteNpu(http, device);
        using ManufacturerPublications publications = ManufacturerPublications.Load(manufacturer);
        using var owner = new DataOwnerSession(publications.CreateVerifier()) { RequiredModel = measurement };
        RemoteSession session = await npu.AcceptChannelAsync(owner.Attest(await npu.GetHelloAsync(owner.Nonce)));
        owner.Complete(session.Accept);
        int[] prompt = [1, 403, 407, 261, 378];
        var tokens = new List<int>();
        await foreach (byte[] record in npu.GenerateAsync(session.Session, owner.EncryptPrompt(prompt), prompt.Length, count))
        {
            tokens.Add(owner.DecryptToken(record).TokenId);
        }
        return tokens;
    }

    /// <summary>
    /// <c>export-gguf</c>: stories260K's folder as a GGUF in the type it stores (F32) or Q8_0, with its
    /// tokenizer; what it cannot write is refused with exit code 1, and a refused export leaves a file
    /// already at --out as it was.
    /// </summary>
    [Test]
    public async Task Export_gguf_writes_the_checkpoint_with_its_tokenizer_and_refuses_what_it_cannot_write()
    {
        string folder = TestData.RequireModel("stories260K");
        string dir = Directory.CreateTempSubdirectory("ascendcc-export-gguf-").FullName;
        try
        {
            string gguf = Path.Combine(dir, "stories.gguf"), q8 = Path.Combine(dir, "stories-q8.gguf");
            (int exit, string stdout, string stderr) = await RunAsync("export-gguf", folder, "--out", gguf);
            Assert.That(exit, Is.EqualTo(0), stderr);
            Assert.That(stdout.Trim(), Is.EqualTo(gguf));
            Assert.That(stderr, Does.Contain("matrices F32 as the checkpoint stores them"));
            using (var written = ModelCheckpoint.Open(gguf))
            using (var original = ModelCheckpoint.Open(folder))
            {
                var (w, o) = ((LlamaConfig)written.Config, (LlamaConfig)original.Config);
                Assert.That((w.HiddenSize, w.IntermediateSize, w.NumHiddenLayers, w.NumAttentionHeads, w.NumKeyValueHeads, w.VocabSize, w.RopeTheta),
                    Is.EqualTo((o.HiddenSize, o.IntermediateSize, o.NumHiddenLayers, o.NumAttentionHeads, o.NumKeyValueHeads, o.VocabSize, o.RopeTheta)));
                foreach (string n in new[] { "model.embed_tokens.weight", "model.layers.4.mlp.down_proj.weight", "model.norm.weight" })
                {
                    Assert.That(written.GetTensor(n).ReadFloat32(), Is.EqualTo(original.GetTensor(n).ReadFloat32()), n);
                }
            }
            Assert.That(TextTokenizer.Load(gguf).Encode("Once upon a time"), Is.EqualTo(new[] { 1, 403, 407, 261, 378 }), "the tokenizer inside");

            (exit, _, stderr) = await RunAsync("export-gguf", folder, "-o", q8, "--type", "q8_0");
            Assert.That(exit, Is.EqualTo(0), stderr);
            using (var file = GgufFile.Open(q8))
            {
                Assert.That(file.FindTensor("blk.0.attn_q.weight")!.Type, Is.EqualTo(GgufTensorType.Q8_0));
                Assert.That(file.FindTensor("blk.0.ffn_down.weight")!.Type, Is.EqualTo(GgufTensorType.F32), "172-wide rows are not whole Q8_0 blocks");
            }

            (exit, _, stderr) = await RunAsync("export-gguf", gguf, "--out", gguf);
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("is the model itself"));

            string earlier = Path.Combine(dir, "earlier.gguf");
            File.WriteAllText(earlier, "an earlier file");
            (exit, _, stderr) = await RunAsync("export-gguf", folder, "--out", earlier, "--tokenizer", Path.Combine(TestData.RequireModel("llama2-tokenizer"), "tokenizer.model"));
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("32000 tokens, more than the model's vocabulary of 512"));
            Assert.That(File.ReadAllText(earlier), Is.EqualTo("an earlier file"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestCase(1)]
    [TestCase(3, TestName = "{m}(batched: 3 sessions at once)")]
    public async Task Deploy_releases_to_every_npu_and_prints_what_data_owners_require(int sequences)
    {
        string folder = TestData.RequireModel("stories260K");
        string store = Path.Combine(Path.GetTempPath(), "ascendcc-provider-tool-" + Guid.NewGuid().ToString("N"));
        try
        {
            using ServerProcess server = await ServerProcess.StartAsync("--Npu:Simulate=true", "--Npu:DeviceCount=2", $"--Npu:ModelStore={store}", $"--Npu:HbmCapacity={64L << 20}");
            string manufacturer = Path.Combine(store, "manufacturer");
            (int exit, string stdout, string stderr) = await RunAsync("deploy", folder, "--server", server.Address.ToString(), "--manufacturer", manufacturer,
                "--device", "all", "--ctx-size", "128", "--batch-tokens", "16", "--sequences", sequences.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.That(exit, Is.EqualTo(0), stderr);
            Assert.That(stderr, Does.Contain("NPU 0: attested, key released").And.Contain("NPU 1: attested, key released"));
            byte[] measurement = Convert.FromHexString(stdout.Trim());
            Assert.That(measurement, Has.Length.EqualTo(48));

            // A data owner on NPU 1, requiring that measurement, gets the reference story's first tokens.
            List<int> tokens = await GenerateAsDataOwnerAsync(server, 1, manufacturer, measurement, 8);
            Assert.That(tokens, Is.EqualTo(new[] { 432, 383, 286, 261, 376, 298, 315, 421 }));
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    /// <summary>
    /// A llama.cpp-style Q4_K GGUF deploys in the precision it stores by default (--precision auto): a
    /// data owner requiring the printed measurement is answered; --precision f32 widens the same file.
    /// </summary>
    [Test]
    public async Task Deploy_of_a_gguf_defaults_to_the_precision_the_file_stores()
    {
        using var temp = new AscendCC.Runtime.Tests.Models.TempFolder();
        string folder = AscendCC.Runtime.Tests.Models.RandomLlamaCheckpoint.WriteFolder(temp.File("random"), seed: 4096, edgeBlocks: false);
        string gguf = temp.File("random-q4_k.gguf");
        using (var checkpoint = AscendCC.Runtime.Models.ModelCheckpoint.Open(folder))
        {
            AscendCC.Runtime.Models.Gguf.GgufWriter.WriteLlama(gguf, checkpoint, AscendCC.Runtime.Tokenizers.TextTokenizer.Load(folder), AscendCC.Runtime.Models.Gguf.GgufTensorType.Q4_K);
        }
        string store = Path.Combine(Path.GetTempPath(), "ascendcc-provider-tool-" + Guid.NewGuid().ToString("N"));
        try
        {
            using ServerProcess server = await ServerProcess.StartAsync("--Npu:Simulate=true", "--Npu:DeviceCount=1", $"--Npu:ModelStore={store}", $"--Npu:HbmCapacity={64L << 20}");
            string manufacturer = Path.Combine(store, "manufacturer");
            (int exit, string stdout, string stderr) = await RunAsync("deploy", gguf, "--server", server.Address.ToString(), "--manufacturer", manufacturer, "--ctx-size", "64");
            Assert.That(exit, Is.EqualTo(0), stderr);
            Assert.That(stderr, Does.Contain("Q4_K as the checkpoint stores it"));
            byte[] measurement = Convert.FromHexString(stdout.Trim());

            Assert.That(await GenerateAsDataOwnerAsync(server, 0, manufacturer, measurement, 4), Has.Count.EqualTo(4));

            (exit, _, stderr) = await RunAsync("deploy", gguf, "--server", server.Address.ToString(), "--manufacturer", manufacturer, "--ctx-size", "64", "--precision", "f32", "--name", "wide");
            Assert.That(exit, Is.EqualTo(0), stderr);
            Assert.That(stderr, Does.Contain(", F32, ").And.Not.Contain("as the checkpoint stores it"));
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    [Test]
    public async Task Deploy_refuses_without_publications_and_releases_nothing_to_another_manufacturers_npu()
    {
        string folder = TestData.RequireModel("stories260K");
        string store = Path.Combine(Path.GetTempPath(), "ascendcc-provider-tool-" + Guid.NewGuid().ToString("N"));
        string other = Path.Combine(store + "-other-manufacturer");
        try
        {
            using ServerProcess server = await ServerProcess.StartAsync("--Npu:Simulate=true", "--Npu:DeviceCount=1", $"--Npu:ModelStore={store}", $"--Npu:HbmCapacity={64L << 20}");
            (int exit, _, string stderr) = await RunAsync("deploy", folder, "--server", server.Address.ToString(), "--manufacturer", Path.Combine(store, "nowhere"));
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("has no root.pem"));

            // A precision the model's widths cannot hold: refused before anything is encrypted, with the ones that fit.
            (exit, _, stderr) = await RunAsync("deploy", folder, "--server", server.Address.ToString(), "--manufacturer", Path.Combine(store, "manufacturer"), "--precision", "q4_k");
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("--precision q4_k: 'model.layers.0.self_attn.q_proj.weight' has rows of 64 weights, not whole blocks of 256; the precisions that hold every matrix: bf16, f16, f32"));

            // The provider trusts another manufacturer (the server's NPUs are not under its root).
            Directory.CreateDirectory(other);
            using (var manufacturer = Manufacturer.Create())
            {
                var firmware = new FirmwareImage(7, 3, "AscendCC", "other firmware"u8);
                File.WriteAllText(Path.Combine(other, ManufacturerPublications.RootFile), manufacturer.RootCertificate.ExportCertificatePem());
                File.WriteAllBytes(Path.Combine(other, ManufacturerPublications.ReferenceMeasurementsFile), manufacturer.PublishReferenceMeasurements([firmware]));
                File.WriteAllBytes(Path.Combine(other, ManufacturerPublications.TcbStatementFile), manufacturer.PublishTcbRecoveryStatement(firmware.SecurityVersion));
            }
            (exit, string stdout, stderr) = await RunAsync("deploy", folder, "--server", server.Address.ToString(), "--manufacturer", other, "--ctx-size", "128");
            Assert.That(exit, Is.EqualTo(3), stderr);
            Assert.That(stderr, Does.Contain("attestation failed; no key was released"));
            Assert.That(stdout, Is.Empty);
            using var http = new HttpClient { BaseAddress = server.Address };
            RemoteDeviceInfo[] devices = await new RemoteNpu(http).ListDevicesAsync();
            Assert.That(devices[0].LoadedPackage, Is.Null);
        }
        finally
        {
            Directory.Delete(store, recursive: true);
            if (Directory.Exists(other))
            {
                Directory.Delete(other, recursive: true);
            }
        }
    }
}
