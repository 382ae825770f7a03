using System.Security.Cryptography;
using AscendCC.Attacks;
using AscendCC.Device;
using AscendCC.Protocol.Messages;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Acl;
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
    /// <remarks>With passes of two tokens, every prompt is opened in one pass and continued in others, its last chunk ending exactly at the prompt's end.</remarks>
    [TestCase(ExecutionMode.Graph, 6)]
    [TestCase(ExecutionMode.Eager, 6)]
    [TestCase(ExecutionMode.Graph, 2)]
    public void EveryDataOwnerGetsLlama2csTokensFromRecordsOnlyItCanOpen(ExecutionMode mode, int maxBatchTokens)
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs once = ReferenceOutputs.Load(folder, "once_upon_a_time"), lily = ReferenceOutputs.Load(folder, "lily_had_a");
        using Testbed bed = Testbed.FromCheckpoint(folder, new TestbedOptions { Mode = mode, MaxContext = 96, MaxBatchTokens = maxBatchTokens, MaxSequences = 2, KvPrecision = KvCachePrecision.F32 });
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

    /// <summary>
    /// A batched deployment keeps its BF16 layer matrices in panels of 32 (PanelWeightLayout) and its Q4_0
    /// and Q4_K ones in panels of 16 (QuantizedWeightLayout.Q4_0PanelsFromQ4_0, Q4_KPanelsFromQ4_K), and the
    /// model provider's package carries them so: each data owner gets exactly the tokens the plaintext
    /// batched model gives the same prompt (the same program over the same bytes; a panel lane's sums do
    /// not depend on who else is in the pass). stories260K with its FFN padded to 192, so that every width
    /// is whole Q4_0 blocks; for Q4_K a random Llama whose widths are whole super-blocks of 256.
    /// </summary>
    [TestCase(WeightPrecision.BF16)]
    [TestCase(WeightPrecision.Q4_0)]
    [TestCase(WeightPrecision.Q4_K)]
    public void PanelPackageGivesEveryDataOwnerThePlaintextBatchedTokens(WeightPrecision precision)
    {
        (LlamaConfig config, Dictionary<string, TensorData> weights) = precision == WeightPrecision.Q4_K ? RandomModel() : Llama.PaddedStories260K.Build();
        int[][] prompts = [[1, 403, 407, 261, 378], [1, 317, 381, 261]];
        const int Tokens = 40;
        using Testbed bed = Testbed.Create(config, RopeConvention.Half, n => weights[n], new TestbedOptions
        {
            MaxContext = 96, MaxBatchTokens = 6, MaxSequences = 2, KvPrecision = KvCachePrecision.F32, Precision = precision,
        });
        Assert.That(bed.Deployment.BuildProgram().PanelMatrices, Does.Contain("model.layers.0.mlp.down_proj.weight"), $"the batched {precision} program keeps its matrices in panels");
        Assert.That(bed.Model.Manifest.Tensors.Single(t => t.Name == "model.layers.0.mlp.down_proj.weight").ElementType, Is.EqualTo($"{precision}Panels"), "the package says so");

        int[][] plain;
        using (var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true))
        using (var model = CausalLM.Load(runtime, config, RopeConvention.Half, n => weights[n], new CausalLMOptions
        {
            MaxContext = 96, MaxBatchTokens = 6, MaxSequences = 2, KvCachePrecision = KvCachePrecision.F32, WeightPrecision = precision,
        }))
        {
            CausalLMBatch batch = model.CreateBatch();
            BatchSequence[] sequences = [.. prompts.Select(p => batch.Add(p, Tokens, stopTokens: []))];
            while (batch.Count > 0)
            {
                batch.Step();
            }
            plain = [.. sequences.Select(s => s.Tokens.ToArray())];
        }

        using CausalLM llama = bed.Load();
        SealedBatch sealedBatch = llama.CreateSealedBatch();
        var owners = new List<(DataOwnerSession Owner, SealedSequence Sequence, List<int> Got)>();
        try
        {
            foreach (int[] prompt in prompts)
            {
                (DataOwnerSession owner, int session) = bed.OpenDataOwner();
                owners.Add((owner, sealedBatch.Add(session, owner.EncryptPrompt(prompt), prompt.Length, Tokens), []));
            }
            while (sealedBatch.Count > 0)
            {
                foreach ((SealedSequence s, byte[] record) in sealedBatch.Step())
                {
                    var party = owners.Single(o => o.Sequence == s);
                    party.Got.Add(party.Owner.DecryptToken(record).TokenId);
                }
            }
            for (int i = 0; i < prompts.Length; i++)
            {
                Assert.That(owners[i].Got, Is.EqualTo(plain[i]), $"prompt {i}");
                Assert.That(owners[i].Got, Has.Count.EqualTo(Tokens));
            }
        }
        finally
        {
            foreach (var party in owners)
            {
                party.Owner.Dispose();
            }
        }
    }

    /// <summary>
    /// The edges a batched pass may reach are legal: a pass of exactly as many tokens as it holds
    /// (a five-token prompt opened alone, then a decode beside a four-token prompt), and a session
    /// decoding at its context's last position. Both data owners run until their context is full and
    /// get llama2.c's tokens up to there.
    /// </summary>
    [Test]
    public void PassesFilledToCapacityAndSessionsRunToTheContextsEndAreAnswered()
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs once = ReferenceOutputs.Load(folder, "once_upon_a_time"), lily = ReferenceOutputs.Load(folder, "lily_had_a");
        const int maxContext = 16;
        Assert.That((once.PromptTokens.Length, lily.PromptTokens.Length), Is.EqualTo((5, 4)), "the passes below are sized for these prompts");
        using Testbed bed = Testbed.FromCheckpoint(folder, new TestbedOptions { MaxContext = maxContext, MaxBatchTokens = 5, MaxSequences = 2, KvPrecision = KvCachePrecision.F32 });
        using CausalLM llama = bed.Load();
        SealedBatch batch = llama.CreateSealedBatch();
        var owners = new List<(SealedSequence Sequence, DataOwnerSession Owner, ReferenceOutputs Reference, List<TokenMessage> Got)>();
        try
        {
            foreach (ReferenceOutputs reference in new[] { once, lily })
            {
                (DataOwnerSession owner, int session) = bed.OpenDataOwner();
                owners.Add((batch.Add(session, owner.EncryptPrompt(reference.PromptTokens), reference.PromptTokens.Length, 1000), owner, reference, []));
            }
            int steps = 0;
            while (batch.Count > 0)
            {
                foreach ((SealedSequence s, byte[] record) in batch.Step())
                {
                    var party = owners.Single(o => o.Sequence == s);
                    party.Got.Add(party.Owner.DecryptToken(record));
                }
                Assert.That(++steps, Is.LessThan(100));
            }
            foreach (var party in owners)
            {
                int prompt = party.Reference.PromptTokens.Length, produced = maxContext - prompt + 1;
                Assert.That(party.Got.Select(t => t.TokenId), Is.EqualTo(party.Reference.GeneratedTokens[..produced]), $"session {party.Sequence.Session}: the open's token and one per position up to {maxContext - 1}");
                Assert.That(party.Got.Select(t => t.Position), Is.EqualTo(Enumerable.Range(prompt, produced)));
            }
        }
        finally
        {
            foreach (var party in owners)
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

    /// <summary>
    /// The runtime opens one newcomer per pass, but the device must not depend on it: a host may open
    /// several prompts in one pass, in any segment order and any slots, and decode its sessions in any
    /// order. Here three data owners' prompts open in one pass (segments 0, 1, 2 in slots 2, 0, 1, each
    /// record staged at its segment's index), then decode in rotating segment orders, and one session
    /// opens a new prompt in another session's slot beside a decode: every data owner still gets
    /// llama2.c's tokens at its positions, the moved session's old slot is no longer its own, and the
    /// evicted session's is no longer its own either.
    /// </summary>
    [Test]
    public void OpensOfSeveralPromptsInOnePassAndDecodesInAnyOrderGiveEachItsOwnTokens()
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs once = ReferenceOutputs.Load(folder, "once_upon_a_time"), lily = ReferenceOutputs.Load(folder, "lily_had_a");
        using Testbed bed = Testbed.FromCheckpoint(folder, new TestbedOptions { MaxContext = 96, MaxBatchTokens = 16, MaxSequences = 3, KvPrecision = KvCachePrecision.F32 });
        using CausalLM llama = bed.Load();
        var parties = new List<(DataOwnerSession Owner, int Session, ReferenceOutputs Reference)>();
        foreach (ReferenceOutputs reference in new[] { lily, once, once })
        {
            (DataOwnerSession owner, int session) = bed.OpenDataOwner();
            parties.Add((owner, session, reference));
        }
        try
        {
            int recordBytes = Programs.CausalLMProgram.TokenRecordBytes;
            int[] slots = [2, 0, 1], positions = new int[3], produced = new int[3];
            byte[] records = new byte[3 * recordBytes];
            void Pass((int Party, int Mode, int Seq)[] segments, List<(int, byte[])> opens)
            {
                long[] requests = new long[segments.Length * SegmentRequest.Count];
                for (int i = 0; i < segments.Length; i++)
                {
                    (int party, int mode, int seq) = segments[i];
                    Span<long> r = requests.AsSpan(i * SegmentRequest.Count, SegmentRequest.Count);
                    (r[SegmentRequest.Session], r[SegmentRequest.Mode], r[SegmentRequest.Slot], r[SegmentRequest.Start], r[SegmentRequest.Seq]) =
                        (parties[party].Session, mode, slots[party], positions[party], seq);
                }
                llama.SealedSegmentsStep(requests, segments.Length, opens, records);
                for (int i = 0; i < segments.Length; i++)
                {
                    (int party, _, int seq) = segments[i];
                    positions[party] += seq;
                    TokenMessage got = parties[party].Owner.DecryptToken(records.AsSpan(i * recordBytes, recordBytes).ToArray());
                    ReferenceOutputs reference = parties[party].Reference;
                    Assert.That((got.TokenId, got.Position), Is.EqualTo((reference.GeneratedTokens[produced[party]], reference.PromptTokens.Length + produced[party])),
                        $"party {party} (session {parties[party].Session}, slot {slots[party]}), token {produced[party]}, segment {i}");
                    produced[party]++;
                }
            }
            (int, int, int) Open(int party) => (party, StepBlock.ModeOpenPrompt, parties[party].Reference.PromptTokens.Length);
            byte[] Record(int party) => parties[party].Owner.EncryptPrompt(parties[party].Reference.PromptTokens);

            Pass([Open(0), Open(1), Open(2)], [(0, Record(0)), (1, Record(1)), (2, Record(2))]);
            for (int step = 0; step < 6; step++)
            {
                int[] order = [step % 3, (step + 1) % 3, (step + 2) % 3];
                Pass([.. order.Select(p => (p, StepBlock.ModeDecode, 1))], []);
            }

            // Party 1 opens a new prompt (lily's) in party 0's slot, beside a decode of party 2.
            int oldSlot = slots[1];
            parties[1] = (parties[1].Owner, parties[1].Session, lily);
            (slots[1], positions[1], produced[1]) = (slots[0], 0, 0);
            Pass([(2, StepBlock.ModeDecode, 1), Open(1)], [(1, Record(1))]);
            for (int step = 0; step < 3; step++)
            {
                Pass([(1, StepBlock.ModeDecode, 1), (2, StepBlock.ModeDecode, 1)], []);
            }
            long[] Decode(int session, int slot, int start) => [session, StepBlock.ModeDecode, slot, start, 1];
            var moved = Assert.Throws<Driver.NpuException>(() => llama.SealedSegmentsStep(Decode(parties[1].Session, oldSlot, positions[1]), 1, [], records));
            Assert.That(moved!.Message, Does.Contain($"not slot {oldSlot}"), "the moved session's old slot");
            var evicted = Assert.Throws<Driver.NpuException>(() => llama.SealedSegmentsStep(Decode(parties[0].Session, slots[0], positions[0]), 1, [], records));
            Assert.That(evicted!.Message, Does.Contain("no slot"), "the evicted session");
            // A session fed twice, its second segment third in the pass and in another slot.
            long[] twice = [.. Decode(parties[2].Session, slots[2], positions[2]), .. Decode(parties[1].Session, slots[1], positions[1]), .. Decode(parties[1].Session, oldSlot, positions[1])];
            var fedTwice = Assert.Throws<Driver.NpuException>(() => llama.SealedSegmentsStep(twice, 3, [], records));
            Assert.That(fedTwice!.Message, Does.Contain($"segment 2: session {parties[1].Session} is fed twice in one pass"));
            Pass([(2, StepBlock.ModeDecode, 1), (1, StepBlock.ModeDecode, 1)], []);
        }
        finally
        {
            foreach (var party in parties)
            {
                party.Owner.Dispose();
            }
        }
    }

    private static (LlamaConfig Config, Dictionary<string, TensorData> Weights) RandomModel()
    {
        using var temp = new TempFolder();
        string folder = RandomLlamaCheckpoint.WriteFolder(temp.File("random"), seed: 77, edgeBlocks: false);
        using var checkpoint = ModelCheckpoint.Open(folder);
        var config = (LlamaConfig)checkpoint.Config;
        return (config, config.ExpectedTensors().ToDictionary(t => t.Name, t => TensorData.FromCheckpoint(checkpoint.GetTensor(t.Name))));
    }
}
