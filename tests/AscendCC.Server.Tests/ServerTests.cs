using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using AscendCC.Client;
using AscendCC.Runtime.Trusted.DataOwners;
using NUnit.Framework;
using AscendCC.Runtime.Inference;

namespace AscendCC.Server.Tests;

/// <summary>The untrusted host as a server, the parties as remote clients (issue 12, first slice).</summary>
[TestFixture]
[NonParallelizable]
public sealed class ServerTests : IDisposable
{
    private static readonly int[] Prompt = [1, 17, 5, 42, 9, 33];
    private static readonly int[] OtherPrompt = [1, 60, 3, 8];
    private const int MaxTokens = 8;

    private ServerWorld _world = null!;
    private RemoteModel _model = null!;

    [OneTimeSetUp]
    public async Task DeployOnce()
    {
        _world = new ServerWorld();
        _model = await _world.DeployAsync();
    }

    /// <summary>NUnit disposes the fixture after its last test.</summary>
    public void Dispose() => _world?.Dispose();

    [Test, Order(1)]
    public async Task Remote_generation_equals_the_in_process_flow()
    {
        Assert.That(_model.ExpectedGraphMeasurement, Is.EqualTo(_world.Model.Manifest.ExpectedGraphMeasurement.ToArray()), "the host loaded the provider's model");
        Assert.That(_model.UnlockedBytes, Is.GreaterThan(0));

        var inProcessClock = Stopwatch.StartNew();
        int[] expected = ServerWorld.InProcess(Prompt, MaxTokens);
        inProcessClock.Stop();

        var remoteClock = Stopwatch.StartNew();
        int[] remote = await _world.GenerateAsync(Prompt, MaxTokens);
        remoteClock.Stop();

        Assert.That(remote, Is.EqualTo(expected));
        Assert.That(remote, Has.Length.EqualTo(MaxTokens));

        // Time per token in the same run, HTTP (in-memory server) against in-process: seal, prefill,
        // 24 tokens, decrypt (attestation excluded); five alternating rounds, medians (the machine is shared).
        using (AscendCC.Attacks.Testbed bed = AscendCC.Attacks.Testbed.CreateTiny(seed: ServerWorld.Seed))
        using (AscendCC.Runtime.Inference.CausalLM llama = bed.Load())
        {
            var http = new List<double>();
            var local = new List<double>();
            for (int round = 0; round < 5; round++)
            {
                (DataOwnerSession owner, int session) = await _world.OpenDataOwnerAsync();
                using (owner)
                {
                    var clock = Stopwatch.StartNew();
                    int n = 0;
                    await foreach (byte[] record in _world.Npu.GenerateAsync(session, owner.EncryptPrompt(Prompt), Prompt.Length, 24))
                    {
                        owner.DecryptToken(record);
                        n++;
                    }
                    http.Add(clock.Elapsed.TotalMilliseconds / n);
                    await _world.Npu.CloseSessionAsync(session);
                }
                (DataOwnerSession localOwner, int localSession) = bed.OpenDataOwner(requiredModel: llama.Manifest!.ExpectedGraphMeasurement);
                using (localOwner)
                {
                    var clock = Stopwatch.StartNew();
                    int m = 0;
                    foreach (byte[] record in llama.Generate(localSession, localOwner.EncryptPrompt(Prompt), Prompt.Length, 24))
                    {
                        localOwner.DecryptToken(record);
                        m++;
                    }
                    local.Add(clock.Elapsed.TotalMilliseconds / m);
                    bed.Mailbox.CloseSession(localSession);
                }
            }
            http.Sort();
            local.Sort();
            TestContext.Out.WriteLine($"time per token, seal + prefill + 24 tokens + decrypt, median of 5: HTTP (in-memory server) {http[2]:F3} ms, in-process {local[2]:F3} ms; " +
                $"first conversation: remote (attest+generate) {remoteClock.ElapsedMilliseconds} ms, in-process (boot+export+load+attest+generate) {inProcessClock.ElapsedMilliseconds} ms");
        }

        RemoteDeviceInfo[] devices = await _world.Npu.ListDevicesAsync();
        Assert.That(devices, Has.Length.EqualTo(2));
        Assert.That(devices[0].LoadedPackage, Is.EqualTo(ServerWorld.PackageName));
        Assert.That(devices[0].CcMode, Is.EqualTo("On"));
    }

    [Test, Order(2)]
    public async Task The_host_never_sees_the_prompt_or_a_weight_window()
    {
        int before = _world.Recorder.Bodies.Count;
        int[] tokens = await _world.GenerateAsync(Prompt, MaxTokens);
        Assert.That(_world.Recorder.Bodies.Count, Is.GreaterThan(before));
        byte[][] bodies = [.. _world.Recorder.Bodies];
        Assert.That(bodies.Sum(b => (long)b.Length), Is.GreaterThan(_world.Package.Length), "the capture holds the package upload");

        // No prompt (nor reply) as an int32 sequence, in either byte order.
        foreach (int[] ids in new[] { Prompt, Prompt[1..], tokens })
        {
            byte[] le = MemoryMarshal.AsBytes(ids.AsSpan()).ToArray();
            byte[] be = ids.SelectMany(i => BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(i))).ToArray();
            foreach (byte[] body in bodies)
            {
                Assert.That(body.AsSpan().IndexOf(le), Is.EqualTo(-1), "token ids (little-endian) in a body the host handled");
                Assert.That(body.AsSpan().IndexOf(be), Is.EqualTo(-1), "token ids (big-endian) in a body the host handled");
            }
        }

        // No 32-byte window of any weight, at any offset.
        var windows = new HashSet<Window>();
        foreach (byte[] body in bodies)
        {
            for (int i = 0; i + 32 <= body.Length; i++)
            {
                windows.Add(Window.At(body, i));
            }
        }
        int checkedWindows = 0;
        foreach (string name in AscendCC.Runtime.Llama.LlamaTensorNames.Expected(AscendCC.Attacks.TinyLlama.Config()).Select(t => t.Name))
        {
            byte[] weights = _world.Weights(name).Bytes.ToArray();
            for (int i = 0; i + 32 <= weights.Length; i++, checkedWindows++)
            {
                Assert.That(windows.Contains(Window.At(weights, i)), Is.False, $"a 32-byte window of {name} at {i} is in a body the host handled");
            }
        }
        Assert.That(checkedWindows, Is.GreaterThan(10_000));
    }

    [Test, Order(3)]
    public async Task Bad_input_gets_problem_details_and_the_server_keeps_serving()
    {
        RemoteNpuException e;

        e = Assert.ThrowsAsync<RemoteNpuException>(() => new RemoteNpu(_world.Http, 9).GetHelloAsync(new byte[32]))!;
        Assert.That(e.Status, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(e.Detail, Does.Contain("no NPU 9"));

        e = Assert.ThrowsAsync<RemoteNpuException>(async () =>
        {
            await foreach (byte[] _ in _world.Npu.GenerateAsync(4242, new byte[64], 3, 2))
            {
            }
        })!;
        Assert.That(e.Status, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(e.Detail, Does.Contain("no session 4242"));

        e = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.AcceptChannelAsync(new byte[] { 1, 2, 3, 4, 5 }))!;
        Assert.That((int)e.Status, Is.InRange(400, 499));
        Assert.That(e.Detail, Is.Not.Empty);
        TestContext.Out.WriteLine($"malformed open message: {e.Message}");

        using (AscendCC.Runtime.Trusted.ModelProviders.KeyReleaseSession release = _world.Provider.BeginKeyRelease(_world.Model, _world.Verifier))
        {
            byte[] open = release.Attest(await _world.Npu.GetHelloAsync(release.Nonce));
            RemoteSession provider = await _world.Npu.AcceptChannelAsync(open);
            e = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.ReleaseModelKeyAsync(provider.Session, new byte[] { 9, 9, 9 }))!;
            Assert.That((int)e.Status, Is.InRange(400, 499));
            Assert.That(e.Detail, Is.Not.Empty);
            TestContext.Out.WriteLine($"malformed key record: {e.Message}");
            await _world.Npu.CloseSessionAsync(provider.Session);
        }

        (DataOwnerSession owner, int session) = await _world.OpenDataOwnerAsync();
        using (owner)
        {
            e = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.ReleaseModelKeyAsync(session, new byte[] { 9, 9, 9 }))!;
            Assert.That((int)e.Status, Is.InRange(400, 499));
            TestContext.Out.WriteLine($"key record on a data owner's session: {e.Message}");

            // A sealed prompt record of garbage: the device refuses it before any token is sealed.
            e = Assert.ThrowsAsync<RemoteNpuException>(async () =>
            {
                byte[] garbage = new byte[owner.EncryptPrompt(Prompt).Length];
                new Random(7).NextBytes(garbage);
                await foreach (byte[] _ in _world.Npu.GenerateAsync(session, garbage, Prompt.Length, 2))
                {
                }
            })!;
            Assert.That((int)e.Status, Is.InRange(400, 499));
            Assert.That(e.Detail, Is.Not.Empty);
            TestContext.Out.WriteLine($"malformed sealed prompt: {e.Message}");

            int[] tooLong = [.. Enumerable.Range(0, _world.Deployment.MaxContext + 4).Select(i => 1 + (i % 50))];
            e = Assert.ThrowsAsync<RemoteNpuException>(async () =>
            {
                byte[] sealedPrompt;
                try
                {
                    sealedPrompt = owner.EncryptPrompt(tooLong);
                }
                catch (ArgumentException)
                {
                    // The data owner's SDK may refuse it first; the host must refuse the count anyway.
                    sealedPrompt = owner.EncryptPrompt(Prompt);
                }
                await foreach (byte[] _ in _world.Npu.GenerateAsync(session, sealedPrompt, tooLong.Length, 2))
                {
                }
            })!;
            Assert.That(e.Status, Is.EqualTo(HttpStatusCode.BadRequest));
            Assert.That(e.Detail, Does.Contain("prompt"));
            TestContext.Out.WriteLine($"prompt longer than the context: {e.Message}");
            await _world.Npu.CloseSessionAsync(session);
        }

        e = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.CloseSessionAsync(session))!;
        Assert.That(e.Status, Is.EqualTo(HttpStatusCode.NotFound), "a closed session is gone");

        using (var truncated = new MemoryStream(_world.Package, 0, _world.Package.Length / 2, writable: false))
        {
            e = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.UploadPackageAsync("truncated", truncated, _world.Deployment.ToJson()))!;
        }
        Assert.That(e.Status, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(e.Detail, Does.Contain("truncated"));
        Assert.That(Directory.GetFiles(_world.Store).Select(Path.GetFileName), Has.None.StartsWith("truncated"), "nothing of the truncated upload is kept");

        e = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.GetHelloAsync(new byte[2 << 20]))!;
        Assert.That(e.Status, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        Assert.That(e.Detail, Does.Contain("bytes"));

        // NPU 1 has no model: a data owner may attest it, but a generation is refused.
        var second = new RemoteNpu(_world.Http, 1);
        using (var idle = new DataOwnerSession(_world.Verifier))
        {
            RemoteSession opened = await second.AcceptChannelAsync(idle.Attest(await second.GetHelloAsync(idle.Nonce)));
            idle.Complete(opened.Accept);
            e = Assert.ThrowsAsync<RemoteNpuException>(async () =>
            {
                await foreach (byte[] _ in second.GenerateAsync(opened.Session, idle.EncryptPrompt(Prompt), Prompt.Length, 2))
                {
                }
            })!;
            Assert.That(e.Status, Is.EqualTo(HttpStatusCode.Conflict));
            Assert.That(e.Detail, Does.Contain("no model is loaded on NPU 1"));
            await second.CloseSessionAsync(opened.Session);
        }

        e = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.LoadModelAsync("no-such-package", new byte[32]))!;
        Assert.That(e.Status, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(e.Detail, Does.Contain("no-such-package"));

        // Nothing lost: the loaded model still answers.
        Assert.That(await _world.GenerateAsync(Prompt, MaxTokens), Is.EqualTo(ServerWorld.InProcess(Prompt, MaxTokens)));
        HttpResponseMessage ready = await _world.Http.GetAsync(new Uri("/readyz", UriKind.Relative));
        Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test, Order(4)]
    public async Task Two_data_owners_get_their_own_answers()
    {
        int[] expectedA = ServerWorld.InProcess(Prompt, MaxTokens);
        int[] expectedB = ServerWorld.InProcess(OtherPrompt, MaxTokens);
        Assert.That(expectedA, Is.Not.EqualTo(expectedB), "the prompts must give different answers for this test to mean anything");

        Task<int[]> a = _world.GenerateAsync(Prompt, MaxTokens);
        Task<int[]> b = _world.GenerateAsync(OtherPrompt, MaxTokens);
        int[][] answers = await Task.WhenAll(a, b);

        Assert.That(answers[0], Is.EqualTo(expectedA));
        Assert.That(answers[1], Is.EqualTo(expectedB));
    }

    [Test, Order(5)]
    public async Task A_client_that_leaves_mid_stream_gets_its_session_closed()
    {
        (DataOwnerSession owner, int session) = await _world.OpenDataOwnerAsync();
        // A slow network (50 ms a write), so the server cannot have sealed all 24 records before
        // the client's departure reaches it.
        _world.Recorder.ResponseWriteDelay = TimeSpan.FromMilliseconds(50);
        using (owner)
        {
            using var leave = new CancellationTokenSource();
            int received = 0;
            Assert.CatchAsync<OperationCanceledException>(async () =>
            {
                await foreach (byte[] record in _world.Npu.GenerateAsync(session, owner.EncryptPrompt(Prompt), Prompt.Length, 24, leave.Token))
                {
                    owner.DecryptToken(record);
                    if (++received == 1)
                    {
                        await leave.CancelAsync();
                    }
                }
            });
            Assert.That(received, Is.EqualTo(1));
        }
        _world.Recorder.ResponseWriteDelay = TimeSpan.Zero;
        // The server noticed, stopped, and closed the device session (the device scrubbed the context).
        var deadline = Stopwatch.StartNew();
        RemoteNpuException? gone = null;
        while (gone is null && deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            RemoteDeviceInfo[] devices = await _world.Npu.ListDevicesAsync();
            if (devices[0].Sessions == 0)
            {
                gone = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.CloseSessionAsync(session));
            }
            else
            {
                await Task.Delay(50);
            }
        }
        Assert.That(gone?.Status, Is.EqualTo(HttpStatusCode.NotFound), "the session the client left is closed");
        Assert.That(await _world.GenerateAsync(OtherPrompt, MaxTokens), Is.EqualTo(ServerWorld.InProcess(OtherPrompt, MaxTokens)), "the next data owner is served");
    }

    [Test]
    public async Task A_cc_on_host_has_no_plaintext_chat_endpoint()
    {
        using HttpResponseMessage chat = await _world.Http.PostAsync("/v1/chat/completions",
            new StringContent("""{"messages":[{"role":"user","content":"hi"}]}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.That(chat.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        using HttpResponseMessage models = await _world.Http.GetAsync("/v1/models");
        Assert.That(models.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        string devices = await _world.Http.GetStringAsync("/v1/devices");
        Assert.That(devices, Does.Contain("\"ccMode\":\"On\"").And.Not.Contain("\"Off\""));
    }

    /// <summary>
    /// A deployment that does not fit the NPU's free HBM is refused before anything is staged, with a 507
    /// naming the sizes and the setting to raise; the NPU stays usable (nothing was left on it).
    /// </summary>
    [Test]
    public void A_deployment_larger_than_the_npus_hbm_is_a_507_naming_the_sizes()
    {
        // A random Llama of a few MiB (its F32 embedding alone is 2 MiB) on NPUs of 2 MiB.
        var config = AscendCC.Attacks.TinyLlama.Config(hidden: 256, intermediate: 512, vocab: 2048);
        using var small = new ServerWorld(config, AscendCC.Attacks.TinyLlama.Weights(config, ServerWorld.Seed), AscendCC.Runtime.Models.RopeConvention.Half, "small-llama",
            maxContext: 32, maxBatchTokens: 4, hbmBytes: 2L << 20);
        long before = small.Fleet.Devices[0].Runtime.MemoryInfo.Allocated;
        var e = Assert.ThrowsAsync<RemoteNpuException>(() => small.DeployAsync())!;
        Assert.That(e.Status, Is.EqualTo(HttpStatusCode.InsufficientStorage));
        Assert.That(e.Detail, Does.Match(@"needs at least [\d.]+ MiB of HBM and NPU 0 has [\d.]+ MiB free of 2\.0 MiB; raise Npu:HbmCapacity"));
        TestContext.Out.WriteLine(e.Detail);
        Assert.That(small.Fleet.Devices[0].Runtime.MemoryInfo.Allocated, Is.EqualTo(before), "nothing was staged");
    }

    [Test]
    public async Task Health_and_readiness()
    {
        HttpResponseMessage health = await _world.Http.GetAsync(new Uri("/healthz", UriKind.Relative));
        Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        HttpResponseMessage ready = await _world.Http.GetAsync(new Uri("/readyz", UriKind.Relative));
        Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await ready.Content.ReadAsStringAsync(), Does.Contain("\"devices\":2"));
    }

    private readonly record struct Window(ulong A, ulong B, ulong C, ulong D)
    {
        public static Window At(byte[] bytes, int offset)
        {
            ReadOnlySpan<ulong> u = MemoryMarshal.Cast<byte, ulong>(bytes.AsSpan(offset, 32));
            return new Window(u[0], u[1], u[2], u[3]);
        }
    }
}
