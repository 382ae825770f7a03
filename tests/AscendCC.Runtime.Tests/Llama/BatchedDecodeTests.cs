using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Tests.GptNeo;
using AscendCC.Runtime.Tests.Models;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Llama;

/// <summary>
/// Batched decode (continuous batching): several sequences in one model, each in its own KV-cache
/// slot at its own position, fed together pass by pass — prompt chunks beside decode rows, sequences
/// joining and leaving between steps, a slot reused by a newcomer. Every sequence must produce what it
/// produces alone: llama2.c's (or the GPT-Neo reference's) greedy tokens and logits, and with seeded
/// sampling the single-sequence runner's very tokens.
/// </summary>
public class BatchedDecodeTests
{
    private static NpuRuntime NewRuntime() => new(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);

    /// <summary>Steps <paramref name="batch"/> until every sequence has left; <paramref name="afterStep"/> may add sequences between steps.</summary>
    private static int StepUntilEmpty(CausalLMBatch batch, Action<int, IReadOnlyList<BatchToken>>? afterStep = null)
    {
        int steps = 0;
        while (batch.Count > 0)
        {
            IReadOnlyList<BatchToken> produced = batch.Step();
            afterStep?.Invoke(steps++, produced);
            Assert.That(steps, Is.LessThan(10_000), "the batch does not finish");
        }
        return steps;
    }

    [TestCase(ExecutionMode.Graph)]
    [TestCase(ExecutionMode.Eager)]
    public void Stories260KSequencesJoiningAndLeavingEachReproduceLlama2c(ExecutionMode mode)
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs once = ReferenceOutputs.Load(folder, "once_upon_a_time"), lily = ReferenceOutputs.Load(folder, "lily_had_a");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using NpuRuntime runtime = NewRuntime();
        // Two slots and passes of at most 5 rows: prompts are read in chunks beside the other slot's decode rows.
        using var model = CausalLM.Load(runtime, checkpoint,
            new CausalLMOptions { Mode = mode, MaxContext = 128, MaxBatchTokens = 5, MaxSequences = 2, KvCachePrecision = KvCachePrecision.F32 });
        CausalLMBatch batch = model.CreateBatch();

        var references = new Dictionary<BatchSequence, ReferenceOutputs>();
        BatchSequence a = batch.Add(once.PromptTokens, once.GeneratedTokens.Length);
        // lily leaves after 9 tokens; a second lily then joins in its slot and must not see the first one's cache.
        BatchSequence b = batch.Add(lily.PromptTokens, 9);
        references[a] = once;
        references[b] = lily;
        BatchSequence? c = null;
        int checkedLogits = 0;
        StepUntilEmpty(batch, (step, produced) =>
        {
            for (int i = 0; i < produced.Count; i++)
            {
                (BatchSequence s, int token) = produced[i];
                ReferenceOutputs r = references[s];
                // The logits that chose the k-th token are llama2.c's after position prompt + k − 2.
                ReferenceStep at = r.Steps[r.PromptTokens.Length + s.Produced - 2];
                Logits.AssertClose(batch.ReadLogits(i), at.Logits, $"slot {s.Slot}, token {s.Produced}");
                checkedLogits++;
            }
            if (b.IsFinished && c is null)
            {
                c = batch.Add(lily.PromptTokens, lily.GeneratedTokens.Length);
                references[c] = lily;
            }
        });

        Assert.That(a.Tokens, Is.EqualTo(once.GeneratedTokens));
        Assert.That(b.Tokens, Is.EqualTo(lily.GeneratedTokens[..9]));
        Assert.That(b.FinishReason, Is.EqualTo(BatchFinishReason.Length));
        Assert.That(c!.Slot, Is.EqualTo(b.Slot), "the newcomer takes the freed slot");
        Assert.That(c.Tokens, Is.EqualTo(lily.GeneratedTokens));
        Assert.That(checkedLogits, Is.EqualTo(once.GeneratedTokens.Length + 9 + lily.GeneratedTokens.Length));
    }

    [Test]
    public void GptNeoSequencesInOneBatchKeepTheReferenceTokens()
    {
        string folder = TestData.RequireModel("gptneo-shakespeare");
        GptNeoReference romeo = GptNeoReference.Load(folder, "romeo"), citizen = GptNeoReference.Load(folder, "first_citizen");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using NpuRuntime runtime = NewRuntime();
        // 70+ positions: the local layers' window of 32 is crossed in each slot.
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 128, MaxBatchTokens = 4, MaxSequences = 3 });
        CausalLMBatch batch = model.CreateBatch();
        BatchSequence r = batch.Add(romeo.PromptTokens, romeo.GeneratedTokens.Length, stopTokens: []);
        BatchSequence f = batch.Add(citizen.PromptTokens, citizen.GeneratedTokens.Length, stopTokens: []);
        StepUntilEmpty(batch);
        Assert.That(r.Tokens, Is.EqualTo(romeo.GeneratedTokens));
        Assert.That(f.Tokens, Is.EqualTo(citizen.GeneratedTokens));
    }

    /// <summary>
    /// Seeded sampling with penalties: each slot has its own generator, settings and token history, so
    /// three sequences sampled together give the tokens each gives alone in a single-sequence model
    /// (prompts read in one pass in both, so each generator is drawn once per token in both).
    /// </summary>
    [Test]
    public void SeededSamplingPerSequenceEqualsTheSingleSequenceRunner()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using NpuRuntime runtime = NewRuntime();
        int[][] prompts = [[1, 403, 407, 261], [1, 365, 136, 54, 37], [1, 403]];
        SamplingOptions[] settings =
        [
            new() { Temperature = 0.9f, TopK = 40, TopP = 0.95f, Seed = 7 },
            new() { Temperature = 1.1f, TopP = 0.9f, Seed = 8, RepeatPenalty = 1.3f, RepeatLastN = 16 },
            new() { Temperature = 0.7f, MinP = 0.05f, Seed = 9, FrequencyPenalty = 0.4f, PresencePenalty = 0.2f },
        ];
        const int Tokens = 48;
        int[][] alone;
        using (var single = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 96, MaxBatchTokens = 16 }))
        {
            alone = [.. prompts.Select((p, i) => single.Generate(p, Tokens, settings[i], stopTokens: []).ToArray())];
        }
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 96, MaxBatchTokens = 16, MaxSequences = 3 });
        CausalLMBatch batch = model.CreateBatch();
        BatchSequence[] together = [.. prompts.Select((p, i) => batch.Add(p, Tokens, settings[i], stopTokens: []))];
        StepUntilEmpty(batch);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.That(together[i].Tokens, Is.EqualTo(alone[i]), $"sequence {i}");
        }
        Assert.That(alone[0], Is.Not.EqualTo(alone[2][..Tokens]), "the three settings sample different texts");
    }

    [TestCase(WeightPrecision.Q8_0)]
    [TestCase(WeightPrecision.Q4_0)]
    [TestCase(WeightPrecision.BF16)]
    public void QuantizedWeightsBatchedGiveTheSingleSequenceTokens(WeightPrecision precision)
    {
        (LlamaConfig config, Dictionary<string, TensorData> weights) = PaddedStories260K.Build();
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs once = ReferenceOutputs.Load(folder, "once_upon_a_time"), lily = ReferenceOutputs.Load(folder, "lily_had_a");
        using NpuRuntime runtime = NewRuntime();
        int[][] expected;
        using (var single = CausalLM.Load(runtime, config, RopeConvention.Half, n => weights[n], new CausalLMOptions { MaxContext = 128, WeightPrecision = precision }))
        {
            expected = [single.Generate(once.PromptTokens, 64, stopTokens: []).ToArray(), single.Generate(lily.PromptTokens, 64, stopTokens: []).ToArray()];
        }
        using var model = CausalLM.Load(runtime, config, RopeConvention.Half, n => weights[n],
            new CausalLMOptions { MaxContext = 128, WeightPrecision = precision, MaxSequences = 2 });
        // The batched program keeps BF16 and Q4_0 layer matrices in panels, Q8_0 in strips.
        Assert.That(model.Layout.PanelMatrices.Contains("model.layers.0.mlp.down_proj.weight"), Is.EqualTo(precision != WeightPrecision.Q8_0));
        CausalLMBatch batch = model.CreateBatch();
        BatchSequence a = batch.Add(once.PromptTokens, 64, stopTokens: []), b = batch.Add(lily.PromptTokens, 64, stopTokens: []);
        StepUntilEmpty(batch);
        Assert.That(a.Tokens, Is.EqualTo(expected[0]));
        Assert.That(b.Tokens, Is.EqualTo(expected[1]));
    }

    [Test]
    public void ASequenceLeavesWhenItsContextIsFullAfterAsManyTokensAsAlone()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using NpuRuntime runtime = NewRuntime();
        int[] prompt = [1, 403, 407, 261, 365, 136, 54, 37, 30, 52];
        int[] alone;
        using (var single = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 16 }))
        {
            alone = single.Generate(prompt, 100, stopTokens: []).ToArray();
        }
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 16, MaxSequences = 2 });
        CausalLMBatch batch = model.CreateBatch();
        BatchSequence s = batch.Add(prompt, 100, stopTokens: []);
        StepUntilEmpty(batch);
        Assert.That(s.FinishReason, Is.EqualTo(BatchFinishReason.ContextFull));
        Assert.That(s.Tokens, Is.EqualTo(alone));
        Assert.That(alone, Has.Length.EqualTo(16 - prompt.Length + 1));
    }

    [Test]
    public void AStopTokenEndsItsSequenceOnly()
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs once = ReferenceOutputs.Load(folder, "once_upon_a_time");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using NpuRuntime runtime = NewRuntime();
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 128, MaxSequences = 2 });
        CausalLMBatch batch = model.CreateBatch();
        int stop = once.GeneratedTokens[5];
        BatchSequence stopped = batch.Add(once.PromptTokens, 64, stopTokens: [stop]);
        BatchSequence other = batch.Add(once.PromptTokens, 20, stopTokens: []);
        StepUntilEmpty(batch);
        int first = Array.IndexOf(once.GeneratedTokens, stop);
        Assert.That(stopped.Tokens, Is.EqualTo(once.GeneratedTokens[..(first + 1)]));
        Assert.That(stopped.FinishReason, Is.EqualTo(BatchFinishReason.Stop));
        Assert.That(other.Tokens, Is.EqualTo(once.GeneratedTokens[..20]));
    }

    [Test]
    public void MisuseIsRefusedWithWhatToDo()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using NpuRuntime runtime = NewRuntime();
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 32, MaxSequences = 2 });
        CausalLMBatch batch = model.CreateBatch();
        Assert.That(model.CreateBatch(), Is.SameAs(batch), "a model has one batch");
        BatchSequence first = batch.Add([1, 403], 4);
        batch.Add([1, 365], 4);
        var full = Assert.Throws<InvalidOperationException>(() => batch.Add([1, 37], 4));
        Assert.That(full!.Message, Does.Contain("all 2 sequences").And.Contain("MaxSequences"));
        var single = Assert.Throws<InvalidOperationException>(() => model.Generate([1, 403], 4).ToArray());
        Assert.That(single!.Message, Does.Contain("batch"));
        var tooLong = Assert.Throws<ArgumentException>(() => batch.Add(new int[33], 4));
        Assert.That(tooLong!.Message, Does.Contain("context holds 32"));
        var vocab = Assert.Throws<ArgumentOutOfRangeException>(() => batch.Add([1, 512], 4));
        Assert.That(vocab!.Message, Does.Contain("outside the vocabulary"));

        batch.Remove(first);
        Assert.That(first.FinishReason, Is.EqualTo(BatchFinishReason.Removed));
        Assert.That(batch.Count, Is.EqualTo(1));
        Assert.That(batch.Add([1, 37], 4).Slot, Is.EqualTo(first.Slot), "a removed sequence's slot is free again");
    }
}
