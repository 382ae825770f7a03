using System.Security.Cryptography;
using AscendCC.Attacks;
using AscendCC.Protocol.Messages;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Tests.Models;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Confidential;

/// <summary>
/// Batched decode with confidential computing on: several data owners' sessions answered together in
/// one confidential program, each in its own KV-cache slot. Every data owner must get what it gets
/// alone — llama2.c's greedy tokens for its prompt, at its positions — from records only it can open,
/// while sessions join, leave and a newcomer takes a freed slot.
/// </summary>
public class ConfidentialBatchTests
{
    [TestCase(ExecutionMode.Graph)]
    [TestCase(ExecutionMode.Eager)]
    public void EveryDataOwnerGetsLlama2csTokensFromRecordsOnlyItCanOpen(ExecutionMode mode)
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs once = ReferenceOutputs.Load(folder, "once_upon_a_time"), lily = ReferenceOutputs.Load(folder, "lily_had_a");
        using Testbed bed = Testbed.FromCheckpoint(folder, new TestbedOptions { Mode = mode, MaxContext = 96, MaxBatchTokens = 6, MaxSequences = 2, KvPrecision = KvCachePrecision.F32 });
        using CausalLM llama = bed.Load();
        SealedBatch batch = llama.CreateSealedBatch();
        var owners = new Dictionary<SealedSequence, (DataOwnerSession Owner, ReferenceOutputs Reference, List<TokenMessage> Got)>();
        var lastRecord = new Dictionary<SealedSequence, byte[]>();
        SealedSequence Join(ReferenceOutputs reference, int tokens)
        {
            (DataOwnerSession owner, int session) = bed.OpenDataOwner();
            SealedSequence s = batch.Add(session, owner.EncryptPrompt(reference.PromptTokens), reference.PromptTokens.Length, tokens);
            owners[s] = (owner, reference, []);
            return s;
        }
        try
        {
            SealedSequence a = Join(once, once.GeneratedTokens.Length);
            // lily leaves after 7 tokens; a second lily then joins in its slot.
            SealedSequence b = Join(lily, 7);
            SealedSequence? c = null;
            int steps = 0;
            while (batch.Count > 0)
            {
                foreach ((SealedSequence s, byte[] record) in batch.Step())
                {
                    (DataOwnerSession owner, _, List<TokenMessage> got) = owners[s];
                    got.Add(owner.DecryptToken(record));
                    lastRecord[s] = record;
                }
                if (b.IsFinished && c is null)
                {
                    c = Join(lily, lily.GeneratedTokens.Length);
                }
                Assert.That(++steps, Is.LessThan(1000));
            }
            // Nobody else's session opens a record (a failed open closes the channel, so once per data owner, at the end).
            foreach ((SealedSequence s, var party) in owners)
            {
                byte[] others = lastRecord.First(r => r.Key != s).Value;
                Assert.Catch<CryptographicException>(() => party.Owner.DecryptToken(others), "a record opened under another data owner's session");
            }
            foreach ((SealedSequence s, var party) in owners)
            {
                int[] expected = party.Reference.GeneratedTokens[..s.Produced];
                Assert.That(party.Got.Select(t => t.TokenId), Is.EqualTo(expected), $"session {s.Session} in slot {s.Slot}");
                Assert.That(party.Got.Select(t => t.Position), Is.EqualTo(Enumerable.Range(party.Reference.PromptTokens.Length, s.Produced)));
            }
            Assert.That(owners[a].Got, Has.Count.EqualTo(once.GeneratedTokens.Length));
            Assert.That(owners[b].Got, Has.Count.EqualTo(7));
            Assert.That(c!.Slot, Is.EqualTo(b.Slot), "the newcomer took the freed slot (and evicted the finished session there)");
            Assert.That(owners[c].Got, Has.Count.EqualTo(lily.GeneratedTokens.Length));
        }
        finally
        {
            foreach (var party in owners.Values)
            {
                party.Owner.Dispose();
            }
        }
    }

    [Test]
    public void TheDeploymentsSlotCountIsMeasuredAndTravelsInItsDescriptor()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = AscendCC.Runtime.Models.ModelCheckpoint.Open(folder);
        var one = new ModelDeployment(checkpoint.Config, checkpoint.RopeConvention, 64, 8, WeightPrecision.F32);
        ModelDeployment four = one with { MaxSequences = 4 };
        byte[] key = new byte[32];
        Assert.That(four.Measure(key, "m"), Is.Not.EqualTo(one.Measure(key, "m")));
        Assert.That(ModelDeployment.FromJson(four.ToJson()), Is.EqualTo(four).Using<ModelDeployment>((x, y) => x.MaxSequences == y.MaxSequences && x.MaxContext == y.MaxContext));
        Assert.That(ModelDeployment.FromJson(one.ToJson()).MaxSequences, Is.EqualTo(1));
        Assert.That(one.ToJson(), Does.Not.Contain("MaxSequences"), "a single-session descriptor is written as before");
        var bad = Assert.Throws<FormatException>(() => ModelDeployment.FromJson(four.ToJson().Replace("\"MaxSequences\": 4", "\"MaxSequences\": 0", StringComparison.Ordinal)));
        Assert.That(bad!.Message, Does.Contain("maxSequences 0"));
    }

    [Test]
    public void ABatchedDeploymentIsAnsweredOnlyThroughItsBatchAndSaysSo()
    {
        using Testbed bed = Testbed.CreateTiny(new TestbedOptions { MaxSequences = 2 });
        using CausalLM llama = bed.Load();
        (DataOwnerSession owner, int session) = bed.OpenDataOwner();
        using (owner)
        {
            var ex = Assert.Throws<InvalidOperationException>(() => llama.Generate(session, owner.EncryptPrompt(AttackKit.Prompt), AttackKit.Prompt.Length, 2).ToArray());
            Assert.That(ex!.Message, Does.Contain("CreateSealedBatch"));
        }
        SealedBatch batch = llama.CreateSealedBatch();
        batch.Add(1, [], 1, 1);
        batch.Add(2, [], 1, 1);
        var full = Assert.Throws<InvalidOperationException>(() => batch.Add(3, [], 1, 1));
        Assert.That(full!.Message, Does.Contain("all 2 sessions").And.Contain("MaxSequences"));
    }
}
