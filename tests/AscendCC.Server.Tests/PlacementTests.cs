using System.Net;
using AscendCC.Client;
using NUnit.Framework;

namespace AscendCC.Server.Tests;

/// <summary>
/// Many data owners, several NPUs: a data owner names the package and the host sends it to an NPU
/// with that package loaded and the shortest queue; on one NPU, requests are served first come,
/// first served.
/// </summary>
[NonParallelizable]
public sealed class PlacementTests : IDisposable
{
    private static readonly int[] Prompt = [1, 17, 5, 42, 9, 33];
    private ServerWorld _world = null!;

    [OneTimeSetUp]
    public void Start() => _world = new ServerWorld();

    public void Dispose() => _world?.Dispose();

    [Test, Order(1)]
    public async Task A_data_owner_is_placed_on_an_npu_with_its_package_and_the_shortest_queue()
    {
        RemoteNpuException none = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.PlaceAsync(ServerWorld.PackageName))!;
        Assert.That(none.Status, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(none.Detail, Does.Contain("none has a model loaded yet"));

        await _world.DeployAsync();
        Assert.That((await _world.Npu.PlaceAsync(ServerWorld.PackageName)).Device, Is.EqualTo(0));
        RemoteNpuException other = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.PlaceAsync("another-model"))!;
        Assert.That(other.Detail, Does.Contain("loaded: " + ServerWorld.PackageName));

        // The provider also deploys on NPU 1 (the package is stored once).
        await RemoteModelProvider.ReleaseAndLoadAsync(new RemoteNpu(_world.Http, 1), _world.Provider, _world.Model, _world.Verifier, ServerWorld.PackageName);
        NpuSlot npu0 = _world.Fleet[0];
        await npu0.EnterAsync(CancellationToken.None);
        try
        {
            RemoteNpu placed = await _world.Npu.PlaceAsync(ServerWorld.PackageName);
            Assert.That(placed.Device, Is.EqualTo(1), "NPU 0 is busy");

            // The data owner sent there is served while NPU 0 stays busy.
            (var owner, int session) = await OpenOnAsync(placed);
            using (owner)
            {
                var tokens = new List<int>();
                await foreach (byte[] record in placed.GenerateAsync(session, owner.EncryptPrompt(Prompt), Prompt.Length, 4))
                {
                    tokens.Add(owner.DecryptToken(record).TokenId);
                }
                Assert.That(tokens, Is.EqualTo(ServerWorld.InProcess(Prompt, 4)));
            }
        }
        finally
        {
            npu0.Leave();
        }
        Assert.That((await _world.Npu.PlaceAsync(ServerWorld.PackageName)).Device, Is.EqualTo(0), "idle again: the lowest index");
    }

    private async Task<(AscendCC.Runtime.Trusted.DataOwners.DataOwnerSession, int)> OpenOnAsync(RemoteNpu npu)
    {
        var owner = new AscendCC.Runtime.Trusted.DataOwners.DataOwnerSession(_world.Verifier) { RequiredModel = _world.Model.Manifest.ExpectedGraphMeasurement };
        RemoteSession s = await npu.AcceptChannelAsync(owner.Attest(await npu.GetHelloAsync(owner.Nonce)));
        owner.Complete(s.Accept);
        return (owner, s.Session);
    }

    [Test, Order(2)]
    public async Task Requests_queued_for_one_npu_are_served_in_arrival_order()
    {
        NpuSlot npu = _world.Fleet[1];
        await npu.EnterAsync(CancellationToken.None);
        var order = new List<int>();
        var waiters = new List<Task>();
        for (int i = 0; i < 6; i++)
        {
            int me = i;
            waiters.Add(Task.Run(async () =>
            {
                await npu.EnterAsync(CancellationToken.None);
                lock (order)
                {
                    order.Add(me);
                }
                npu.Leave();
            }));
            // Each waiter is queued before the next one starts.
            while (npu.Queued < i + 2)
            {
                await Task.Delay(1);
            }
        }
        Assert.That(npu.Queued, Is.EqualTo(7));
        npu.Leave();
        await Task.WhenAll(waiters);
        Assert.That(order, Is.EqualTo(new[] { 0, 1, 2, 3, 4, 5 }));
        Assert.That(npu.Queued, Is.Zero);
    }
}
