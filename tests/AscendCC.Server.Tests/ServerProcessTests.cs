using System.Net;
using AscendCC.Client;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Server.Tests;

/// <summary>
/// The server as a cloud runs it: its own process (a development server: it plays the factory and
/// publishes the manufacturer's public files), Kestrel on a free localhost port, the parties on real
/// sockets with nothing but those publications. The model provider deploys stories260K and a data
/// owner gets llama2.c's reference story token for token; a server killed mid-reply leaves the client
/// with an error, not a hang, and a restarted one holds no key.
/// </summary>
[NonParallelizable]
public sealed class ServerProcessTests
{
    private const int Context = 128;

    private static async Task<(ServerProcess Server, string Store)> StartAsync(string? store = null)
    {
        store ??= Path.Combine(Path.GetTempPath(), "ascendcc-server-process-" + Guid.NewGuid().ToString("N"));
        ServerProcess server = await ServerProcess.StartAsync("--Npu:Simulate=true", "--Npu:DeviceCount=1", $"--Npu:ModelStore={store}", $"--Npu:HbmCapacity={64L << 20}");
        return (server, store);
    }

    /// <summary>The model provider, with only the manufacturer's publications: export, upload, attest, release, load.</summary>
    private static async Task<(RemoteModel Loaded, AttestationVerifier Verifier, byte[] ManifestDigest)> DeployStories260KAsync(RemoteNpu npu, string store)
    {
        string folder = TestData.RequireModel("stories260K");
        using ManufacturerPublications publications = ManufacturerPublications.Load(Path.Combine(store, "manufacturer"));
        AttestationVerifier verifier = publications.CreateVerifier();
        using ModelCheckpoint checkpoint = ModelCheckpoint.Open(folder);
        var deployment = new ModelDeployment(checkpoint.Config, checkpoint.RopeConvention, Context, 16, WeightPrecision.F32);
        using var provider = ModelProvider.Create();
        string packagePath = Path.Combine(store, "..", Path.GetFileName(store) + ".provider.ccpkg");
        try
        {
            ProtectedModel model;
            await using (var file = File.Create(packagePath))
            {
                model = ModelPackageExporter.Export(provider, deployment, n => TensorData.FromCheckpoint(checkpoint.GetTensor(n)), publications.CreateReleasePolicy(), file, "stories260K");
            }
            using (model)
            await using (var upload = File.OpenRead(packagePath))
            {
                return (await RemoteModelProvider.DeployAsync(npu, provider, model, verifier, "stories260K", upload, deployment), verifier, model.Manifest.Digest.ToArray());
            }
        }
        finally
        {
            File.Delete(packagePath);
        }
    }

    private static (int[] Prompt, int[] Generated) Reference()
    {
        string[] lines = File.ReadAllLines(Path.Combine(TestData.RequireModel("stories260K"), "reference", "once_upon_a_time.tokens.txt"));
        int[] Ids(string key) => [.. lines.Single(l => l.StartsWith(key + " ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(int.Parse)];
        return (Ids("prompt_tokens"), Ids("generated_tokens"));
    }

    [Test]
    public async Task Over_real_sockets_the_reference_story_comes_back_token_for_token()
    {
        (ServerProcess server, string store) = await StartAsync();
        try
        {
            using (server)
            using (var http = new HttpClient { BaseAddress = server.Address })
            {
                Assert.That(server.Address.Host, Is.EqualTo("127.0.0.1"));
                Assert.That(await http.GetStringAsync("readyz"), Does.Contain("\"devices\":1"));
                var npu = new RemoteNpu(http);
                (RemoteModel loaded, AttestationVerifier verifier, _) = await DeployStories260KAsync(npu, store);

                (int[] prompt, int[] generated) = Reference();
                using var owner = new DataOwnerSession(verifier) { RequiredModel = loaded.ExpectedGraphMeasurement };
                RemoteSession session = await npu.AcceptChannelAsync(owner.Attest(await npu.GetHelloAsync(owner.Nonce)));
                owner.Complete(session.Accept);
                Assert.That(owner.Result!.PolicySatisfied, Is.True, owner.Result.ToString());
                var tokens = new List<int>();
                await foreach (byte[] record in npu.GenerateAsync(session.Session, owner.EncryptPrompt(prompt), prompt.Length, generated.Length))
                {
                    tokens.Add(owner.DecryptToken(record).TokenId);
                }
                Assert.That(tokens, Is.EqualTo(generated));
                Assert.That(server.Output, Does.Contain("loaded package stories260K"), "the server's own log, over its stdout");
            }
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    [Test]
    public async Task A_server_killed_mid_reply_fails_the_client_at_once_and_a_restarted_one_holds_no_key()
    {
        (ServerProcess server, string store) = await StartAsync();
        try
        {
            RemoteModel loaded;
            byte[] digest;
            using (server)
            using (var http = new HttpClient { BaseAddress = server.Address })
            {
                var npu = new RemoteNpu(http);
                (loaded, AttestationVerifier verifier, digest) = await DeployStories260KAsync(npu, store);
                (int[] prompt, _) = Reference();
                using var owner = new DataOwnerSession(verifier) { RequiredModel = loaded.ExpectedGraphMeasurement };
                RemoteSession session = await npu.AcceptChannelAsync(owner.Attest(await npu.GetHelloAsync(owner.Nonce)));
                owner.Complete(session.Accept);
                int received = 0;
                var clock = System.Diagnostics.Stopwatch.StartNew();
                Exception? failure = null;
                try
                {
                    await foreach (byte[] record in npu.GenerateAsync(session.Session, owner.EncryptPrompt(prompt), prompt.Length, Context - prompt.Length))
                    {
                        owner.DecryptToken(record);
                        if (++received == 1)
                        {
                            server.Kill();
                            clock.Restart();
                        }
                    }
                }
                catch (Exception e) when (e is HttpRequestException or IOException)
                {
                    failure = e;
                }
                Assert.That(failure, Is.Not.Null, $"the stream ended cleanly after {received} records although the server was killed");
                Assert.That(received, Is.LessThan(Context - prompt.Length));
                Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "the client learns of the dead server from its socket, not from a timeout");
            }

            // Restarted on the same model store: the encrypted package is still on disk, but no key is
            // anywhere on the host; loading it is refused until a provider releases the key again.
            (ServerProcess again, _) = await StartAsync(store);
            using (again)
            using (var http = new HttpClient { BaseAddress = again.Address })
            {
                var npu = new RemoteNpu(http);
                var refusal = Assert.ThrowsAsync<RemoteNpuException>(async () => await npu.LoadModelAsync("stories260K", digest));
                Assert.That(refusal!.Status, Is.Not.EqualTo(HttpStatusCode.OK));
                TestContext.Out.WriteLine($"restarted server, load without a released key: {(int)refusal.Status} {refusal.Detail}");
                Assert.That(refusal.Detail, Does.Contain("key").IgnoreCase);
            }
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }
}
