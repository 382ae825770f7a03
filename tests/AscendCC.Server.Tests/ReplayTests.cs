using System.Net;
using AscendCC.Client;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.ModelProviders;
using NUnit.Framework;

namespace AscendCC.Server.Tests;

/// <summary>
/// The host replays what it relayed: every record is bound to its channel and its place in it, so a
/// sealed prompt answers once, on its own session only, and a released key record opens no other
/// session — the device refuses and the server relays the refusal (422), and keeps serving.
/// </summary>
[NonParallelizable]
public sealed class ReplayTests : IDisposable
{
    private static readonly int[] Prompt = [1, 17, 5, 42, 9, 33];
    private ServerWorld _world = null!;

    [OneTimeSetUp]
    public void Start() => _world = new ServerWorld();

    public void Dispose() => _world?.Dispose();

    private async Task<List<int>> DrainAsync(DataOwnerSession owner, int session, byte[] sealedPrompt)
    {
        var tokens = new List<int>();
        await foreach (byte[] record in _world.Npu.GenerateAsync(session, sealedPrompt, Prompt.Length, 4))
        {
            tokens.Add(owner.DecryptToken(record).TokenId);
        }
        return tokens;
    }

    [Test, Order(1)]
    public async Task A_replayed_key_release_record_opens_no_other_session()
    {
        // The provider's release, with the record the host relays kept by the host.
        using var upload = new MemoryStream(_world.Package, writable: false);
        await _world.Npu.UploadPackageAsync(_world.PackageFileName, upload, _world.Deployment.ToJson());
        byte[] releaseRecord;
        byte[] digest;
        using (KeyReleaseSession release = _world.Provider.BeginKeyRelease(_world.Model, _world.Verifier))
        {
            RemoteSession s = await _world.Npu.AcceptChannelAsync(release.Attest(await _world.Npu.GetHelloAsync(release.Nonce)));
            releaseRecord = release.CompleteAndRelease(s.Accept);
            digest = await _world.Npu.ReleaseModelKeyAsync(s.Session, releaseRecord);
            await _world.Npu.CloseSessionAsync(s.Session);
        }

        // The host as a model provider of its own opens a channel and replays the victim's record on it.
        using var hostProvider = ModelProvider.Create();
        using var hostModel = ModelPackageExporter.Export(hostProvider, _world.Deployment, AscendCC.Attacks.TinyLlama.Weights(AscendCC.Attacks.TinyLlama.Config(), 99), _world.Model.Manifest.Policy, Stream.Null, "host");
        using (KeyReleaseSession own = hostProvider.BeginKeyRelease(hostModel, _world.Verifier))
        {
            RemoteSession s = await _world.Npu.AcceptChannelAsync(own.Attest(await _world.Npu.GetHelloAsync(own.Nonce)));
            own.CompleteAndRelease(s.Accept);
            RemoteNpuException e = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.ReleaseModelKeyAsync(s.Session, releaseRecord))!;
            Assert.That(e.Status, Is.EqualTo(HttpStatusCode.UnprocessableEntity), e.Message);
        }

        // The genuine release stands: the model loads and answers.
        await _world.Npu.LoadModelAsync(_world.PackageFileName, digest);
        Assert.That(await _world.GenerateAsync(Prompt, 4), Is.EqualTo(ServerWorld.InProcess(Prompt, 4)));
    }

    [Test, Order(2)]
    public async Task A_replayed_sealed_prompt_answers_once_on_its_own_session_only()
    {
        (DataOwnerSession victim, int session) = await _world.OpenDataOwnerAsync();
        using (victim)
        {
            byte[] sealedPrompt = victim.EncryptPrompt(Prompt);
            List<int> first = await DrainAsync(victim, session, sealedPrompt);
            Assert.That(first, Is.EqualTo(ServerWorld.InProcess(Prompt, 4)));

            // Again on the same session: the record's sequence number is spent.
            RemoteNpuException again = Assert.ThrowsAsync<RemoteNpuException>(async () => await DrainAsync(victim, session, sealedPrompt))!;
            Assert.That(again.Status, Is.EqualTo(HttpStatusCode.UnprocessableEntity), again.Message);
            Assert.That(again.Detail, Does.Contain("already received"));

            // On a session the host opened as a data owner of its own: other channel keys.
            (DataOwnerSession host, int hostSession) = await _world.OpenDataOwnerAsync();
            using (host)
            {
                RemoteNpuException other = Assert.ThrowsAsync<RemoteNpuException>(async () => await DrainAsync(host, hostSession, sealedPrompt))!;
                Assert.That(other.Status, Is.EqualTo(HttpStatusCode.UnprocessableEntity), other.Message);
                Assert.That(other.Detail, Does.Contain("failed authentication"));
                TestContext.Out.WriteLine($"same session: {again.Detail}\nanother session: {other.Detail}");
            }
        }
        Assert.That(await _world.GenerateAsync(Prompt, 4), Is.EqualTo(ServerWorld.InProcess(Prompt, 4)), "the server keeps serving");
    }
}
