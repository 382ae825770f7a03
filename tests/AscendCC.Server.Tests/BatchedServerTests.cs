using System.Net;
using AscendCC.Attacks;
using AscendCC.Client;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.DataOwners;
using NUnit.Framework;

namespace AscendCC.Server.Tests;

/// <summary>
/// A batched confidential deployment (four sessions at once) behind the server: data owners arriving
/// together are answered in the same passes, each with the answer it gets alone; a prompt the device
/// refuses fails that request alone, as a problem-details error; a client that leaves is taken out of
/// the batch and its session closed while the others finish.
/// </summary>
[TestFixture]
public sealed class BatchedServerTests : IDisposable
{
    private static readonly int[][] Prompts = [[1, 7, 11, 13, 17], [1, 60, 3, 8], [1, 5, 9], [1, 22, 40, 2, 33, 8]];
    private const int MaxTokens = 10;
    private ServerWorld _world = null!;

    [OneTimeSetUp]
    public async Task DeployBatched()
    {
        var options = new TestbedOptions();
        _world = new ServerWorld(TinyLlama.Config(), TinyLlama.Weights(TinyLlama.Config(), ServerWorld.Seed), RopeConvention.Half, ServerWorld.PackageName,
            options.MaxContext, options.MaxBatchTokens, maxSequences: 4);
        await _world.DeployAsync();
    }

    [OneTimeTearDown]
    public void Dispose() => _world?.Dispose();

    [Test, Order(1)]
    public async Task Data_owners_arriving_together_are_answered_in_the_same_passes_each_as_alone()
    {
        int[][] alone = [.. Prompts.Select(p => ServerWorld.InProcess(p, MaxTokens))];
        int[][] together = await Task.WhenAll(Prompts.Select(p => _world.GenerateAsync(p, MaxTokens)));
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.That(together[i], Is.EqualTo(alone[i]), $"data owner {i}");
        }
        Assert.That(_world.Fleet[0].Batch!.MostSessionsInOnePass, Is.GreaterThan(1), "the sessions shared passes");
    }

    [Test, Order(2)]
    public async Task A_refused_prompt_fails_its_request_alone()
    {
        (DataOwnerSession a, int sessionA) = await _world.OpenDataOwnerAsync();
        (DataOwnerSession b, int _) = await _world.OpenDataOwnerAsync();
        using (a)
        using (b)
        {
            Task<int[]> good = _world.GenerateAsync(Prompts[1], MaxTokens);
            // B's sealed prompt relayed on A's session: it does not authenticate there.
            var refused = Assert.ThrowsAsync<RemoteNpuException>(async () =>
            {
                await foreach (byte[] _ in _world.Npu.GenerateAsync(sessionA, b.EncryptPrompt(Prompts[0]), Prompts[0].Length, MaxTokens))
                {
                }
            });
            Assert.That(refused!.Status, Is.EqualTo(HttpStatusCode.UnprocessableEntity));
            Assert.That(refused.Message, Does.Contain("failed authentication"));
            Assert.That(await good, Is.EqualTo(ServerWorld.InProcess(Prompts[1], MaxTokens)), "the other data owner is answered");
        }
    }

    [Test, Order(3)]
    public async Task A_client_that_leaves_is_taken_out_and_its_session_closed_while_the_others_finish()
    {
        (DataOwnerSession owner, int session) = await _world.OpenDataOwnerAsync();
        // A slow network (50 ms a write), so that the server is still relaying when the client's
        // departure reaches it (the in-memory transport would otherwise take every record at once).
        _world.Recorder.ResponseWriteDelay = TimeSpan.FromMilliseconds(50);
        using (owner)
        {
            Task<int[]> other = _world.GenerateAsync(Prompts[2], 20);
            using var leave = new CancellationTokenSource();
            int received = 0;
            Assert.CatchAsync<OperationCanceledException>(async () =>
            {
                await foreach (byte[] record in _world.Npu.GenerateAsync(session, owner.EncryptPrompt(Prompts[3]), Prompts[3].Length, 20, leave.Token))
                {
                    owner.DecryptToken(record);
                    if (++received == 1)
                    {
                        await leave.CancelAsync();
                    }
                }
            });
            Assert.That(await other, Is.EqualTo(ServerWorld.InProcess(Prompts[2], 20)), "the other data owner finishes");
            _world.Recorder.ResponseWriteDelay = TimeSpan.Zero;
            // The server's batch loop notices between steps and closes the session (the device scrubs its slot);
            // watched on the host's own books, without touching the session.
            var deadline = System.Diagnostics.Stopwatch.StartNew();
            bool closed = false;
            while (!closed && deadline.Elapsed < TimeSpan.FromSeconds(10))
            {
                try
                {
                    _world.Fleet[0].RequireSession(session);
                    await Task.Delay(50);
                }
                catch (UnknownResourceException)
                {
                    closed = true;
                }
            }
            Assert.That(closed, Is.True, "the server closed the session the client left");
            var gone = Assert.ThrowsAsync<RemoteNpuException>(() => _world.Npu.CloseSessionAsync(session));
            Assert.That(gone!.Status, Is.EqualTo(HttpStatusCode.NotFound));
        }
    }

    /// <summary>
    /// A client gone before its first record was relayed (its token cancelled, the endpoint never
    /// calling <see cref="BatchLoop.Left"/>): the loop takes its request out at the next step and closes
    /// its session, so the device scrubs its slot. The test holds the NPU's gate to let the loop run
    /// exactly one step (the open) before the cancellation.
    /// </summary>
    [Test, Order(4)]
    public async Task A_request_cancelled_after_its_open_has_its_session_closed()
    {
        (DataOwnerSession owner, int session) = await _world.OpenDataOwnerAsync();
        using (owner)
        {
            NpuSlot npu = _world.Fleet[0];
            using var cancel = new CancellationTokenSource();
            await npu.EnterAsync(CancellationToken.None);
            System.Threading.Channels.ChannelReader<byte[]> records = npu.Batch!.Enqueue(session, owner.EncryptPrompt(Prompts[2]), Prompts[2].Length, MaxTokens, cancel.Token);
            for (int i = 0; i < 2000 && npu.Queued < 2; i++)
            {
                await Task.Delay(1);
            }
            Assert.That(npu.Queued, Is.EqualTo(2), "the loop waits for the NPU with the request");
            npu.Leave();
            await npu.EnterAsync(CancellationToken.None);
            await cancel.CancelAsync();
            npu.Leave();
            int relayed = 0;
            Assert.CatchAsync<OperationCanceledException>(async () =>
            {
                await foreach (byte[] _ in records.ReadAllAsync())
                {
                    relayed++;
                }
            });
            Assert.That(relayed, Is.EqualTo(1), "the open's record, then nothing");
            for (int i = 0; i < 500 && npu.HasSession(session); i++)
            {
                await Task.Delay(10);
            }
            Assert.That(npu.HasSession(session), Is.False, "its session was closed");
        }
    }
}
