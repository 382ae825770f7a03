using AscendCC.Attacks;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Programs;
using AscendCC.Tests;
using AscendCC.Tests.TorchGptNeo;
using NUnit.Framework;
using static TorchSharp.torch;
using AscendCC.Runtime.Tests.Models;

namespace AscendCC.Runtime.Tests.GptNeo;

/// <summary>
/// GPT-Neo, the second model family, on the NPU: gptneo-shakespeare's greedy tokens and last logits
/// against an independent float64 implementation, CC off and on, eager and graph; every position's
/// logits against a TorchSharp GPT-Neo written as users port Hugging Face's.
/// </summary>
public class GptNeoTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (string prompt in GptNeoReference.Prompts)
        {
            foreach (ExecutionMode mode in new[] { ExecutionMode.Eager, ExecutionMode.Graph })
            {
                yield return new TestCaseData(prompt, mode).SetArgDisplayNames(prompt, mode.ToString());
            }
        }
    }

    private static string Folder => TestData.RequireModel("gptneo-shakespeare");

    private static NpuRuntime NewRuntime() => new(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);

    [Test]
    public void TheCheckpointsConfigIsReadAsGptNeo()
    {
        using var checkpoint = ModelCheckpoint.Open(Folder);
        var config = checkpoint.Config as GptNeoConfig;
        Assert.That(config, Is.Not.Null, $"config.json names GPTNeoForCausalLM, read as {checkpoint.Config.GetType().Name}");
        Assert.That(config!.Family, Is.EqualTo("GPT-Neo"));
        Assert.That(config.AttentionLayers, Is.EqualTo(new[] { "global", "local", "global", "local" }));
        Assert.That(Enumerable.Range(0, 4).Select(config.WindowOf), Is.EqualTo(new[] { 0, 32, 0, 32 }));
        Assert.That((config.HiddenSize, config.NumHiddenLayers, config.NumAttentionHeads, config.IntermediateSize), Is.EqualTo((64, 4, 4, 256)));
        Assert.That(config.TieWordEmbeddings, Is.True);
        Assert.That(checkpoint.OutputWeight.Name, Is.EqualTo("transformer.wte.weight"));
        Assert.That(ModelConfig.Parse(config.ToJson()), Is.TypeOf<GptNeoConfig>().And.Property("AttentionLayers").EqualTo(config.AttentionLayers));
    }

    [TestCase("\"activation_function\": \"gelu\"", "activation_function 'gelu' is not supported", "tanh approximation")]
    [TestCase("\"attention_types\": [[[\"global\", \"local\"], 1]]", "describes 2 layers but num_layers is 4", "add up to num_layers")]
    [TestCase("\"attention_types\": [[[\"global\", \"sparse\"], 2]]", "attention kind 'sparse'", "\"global\" or \"local\"")]
    [TestCase("\"attention_types\": [\"global\"]", "\"attention_types\" is not a list of", "Fix config.json")]
    [TestCase("\"num_heads\": 5", "not divisible by num_heads 5", "Fix config.json")]
    public void ABadGptNeoConfigNamesTheProblemAndTheFix(string field, string problem, string remedy)
    {
        string json = File.ReadAllText(Path.Combine(Folder, "config.json"));
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
        var change = System.Text.Json.Nodes.JsonNode.Parse("{" + field + "}")!.AsObject();
        foreach ((string key, var value) in change.ToList())
        {
            change.Remove(key);
            node[key] = value;
        }
        Assert.That(() => ModelConfig.Parse(node.ToJsonString()), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains(problem).And.Message.Contains(remedy));
    }

    [TestCaseSource(nameof(Cases))]
    public void GreedyTokensAndLastLogitsEqualTheReference(string prompt, ExecutionMode mode)
    {
        GptNeoReference reference = GptNeoReference.Load(Folder, prompt);
        using var checkpoint = ModelCheckpoint.Open(Folder);
        using NpuRuntime runtime = NewRuntime();
        // Chunks of 4: the prompt's prefill crosses chunk boundaries, and the 70+ positions cross the local window of 32.
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { Mode = mode, MaxContext = 128, MaxBatchTokens = 4, KvCachePrecision = KvCachePrecision.F32 });
        int[] generated = model.Generate(reference.PromptTokens, reference.GeneratedTokens.Length, stopTokens: []).ToArray();
        Assert.That(generated, Is.EqualTo(reference.GeneratedTokens));
        Logits.AssertClose(model.ReadLogits(), reference.LastLogits, $"{prompt} {mode}: logits that chose the last token");
    }

    [TestCaseSource(nameof(Cases))]
    public void ConfidentialGreedyTokensEqualTheReference(string prompt, ExecutionMode mode)
    {
        GptNeoReference reference = GptNeoReference.Load(Folder, prompt);
        using var bed = Testbed.FromCheckpoint(Folder, new TestbedOptions { Mode = mode, MaxContext = 128, MaxBatchTokens = 4 });
        using CausalLM model = bed.Load();
        Assert.That(model.Confidential, Is.True);
        Assert.That(model.Manifest!.Items.Select(i => i.Name), Does.Contain("transformer.wpe.weight"), "the learned positions travel in the package like every weight");
        int[] tokens = bed.Generate(model, reference.PromptTokens, reference.GeneratedTokens.Length);
        Assert.That(tokens, Is.EqualTo(reference.GeneratedTokens));
    }

    [Test]
    public void AnAttentionThatScalesItsScoresIsTheClassicPortingBugAndDiffers()
    {
        GptNeoReference reference = GptNeoReference.Load(Folder, "romeo");
        using var checkpoint = ModelCheckpoint.Open(Folder);
        using var right = GPTNeoForCausalLM.Load(checkpoint);
        using var scaled = GPTNeoForCausalLM.Load(checkpoint, scaleScores: true);
        int[] fed = reference.AllTokens[..^1];
        using var noGrad = no_grad();
        using Tensor ids = tensor(fed.Select(i => (long)i).ToArray(), [1, fed.Length]);
        using Tensor rightLogits = right.call(ids), scaledLogits = scaled.call(ids);
        float[] last = rightLogits[0, -1].data<float>().ToArray();
        Logits.AssertClose(last, reference.LastLogits, "the TorchSharp GPT-Neo, unscaled");
        double gap = (scaledLogits[0, -1] - rightLogits[0, -1]).abs().max().item<float>();
        Assert.That(gap, Is.GreaterThan(0.1), "dividing scores by √head_dim must change the output, or this test could not catch the bug");

        // The device program's attention launches pass scale 1: GPT-Neo's scores are unscaled.
        CausalLMProgram program = CausalLMProgram.Build(checkpoint.Config, RopeConvention.Half, 128, 4, WeightPrecision.F32);
        var scales = program.Program.Ops.Where(o => o.Operator == "attention").Select(o => BitConverter.Int64BitsToDouble((long)o.Scalars[6].Value)).ToArray();
        Assert.That(scales, Has.Length.EqualTo(4).And.All.EqualTo(1.0));
    }

    [TestCase(ExecutionMode.Eager)]
    [TestCase(ExecutionMode.Graph)]
    public void EveryPositionsLogitsAgreeWithTorchSharpAcrossTheLocalWindow(ExecutionMode mode)
    {
        GptNeoReference reference = GptNeoReference.Load(Folder, "first_citizen");
        using var checkpoint = ModelCheckpoint.Open(Folder);
        using var module = GPTNeoForCausalLM.Load(checkpoint);
        int[] fed = reference.AllTokens[..^1];
        float[] expected;
        using (no_grad())
        using (Tensor ids = tensor(fed.Select(i => (long)i).ToArray(), [1, fed.Length]))
        using (Tensor logits = module.call(ids))
        {
            expected = logits.contiguous().data<float>().ToArray();
        }
        using NpuRuntime runtime = NewRuntime();
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { Mode = mode, MaxContext = 128, MaxBatchTokens = 16, KvCachePrecision = KvCachePrecision.F32 });
        int vocab = checkpoint.Config.VocabSize;
        var actual = new float[expected.Length];
        for (int pos = 0; pos < fed.Length; pos += 16)
        {
            int n = Math.Min(16, fed.Length - pos);
            model.ForwardAllLogits(fed.AsSpan(pos, n), pos).CopyTo(actual, (long)pos * vocab);
        }
        Assert.That(fed.Length, Is.GreaterThan(2 * 32), "positions far past the local window of 32");
        Logits.AssertClose(actual, expected, $"{mode}: all {fed.Length} positions");
    }

    [Test]
    public void AnUntiedClassifierIsItsOwnWeightAndTheModelRuns()
    {
        var config = new GptNeoConfig
        {
            Architecture = "GPTNeoForCausalLM",
            HiddenSize = 32,
            IntermediateSize = 64,
            NumHiddenLayers = 2,
            NumAttentionHeads = 4,
            VocabSize = 40,
            MaxPositionEmbeddings = 32,
            AttentionLayers = ["global", "local"],
            WindowSize = 4,
            TieWordEmbeddings = false,
        };
        Assert.That(config.ExpectedTensors().Select(t => t.Name), Does.Contain("lm_head.weight"));
        CausalLMProgram program = CausalLMProgram.Build(config, RopeConvention.Half, 32, 8, WeightPrecision.BF16);
        ProgramOp classifier = program.Program.Ops.Last(o => o.Operator == "linear");
        Assert.That(classifier.Args[1].Buffer!.Name, Is.EqualTo("lm_head.weight"), "the classifier reads lm_head, not wte");
        Assert.That(program.WeightPrecisions["transformer.wpe.weight"], Is.EqualTo(WeightPrecision.F32), "the position table is read as f32 rows");
        Assert.That(program.WeightPrecisions["lm_head.weight"], Is.EqualTo(WeightPrecision.BF16));

        Func<string, TensorData> weights = AscendCC.Attacks.TinyLlama.Weights(config, seed: 3);
        using NpuRuntime runtime = NewRuntime();
        using var model = CausalLM.Load(runtime, config, RopeConvention.Half, weights, new CausalLMOptions { MaxBatchTokens = 8, WeightPrecision = WeightPrecision.BF16 });
        int[] generated = model.Generate([1, 2, 3], 5, stopTokens: []).ToArray();
        Assert.That(generated, Has.Length.EqualTo(5).And.All.InRange(0, 39));
    }

    [Test]
    public void APositionPastTheLearnedTableIsRefusedNamingTheLimit()
    {
        using var checkpoint = ModelCheckpoint.Open(Folder);
        Assert.That(() => CausalLMProgram.Build(checkpoint.Config, RopeConvention.Half, 257, 4, WeightPrecision.F32),
            Throws.ArgumentException.With.Message.Contains("learns 256 positions").And.Message.Contains("at most 256"));
        using NpuRuntime runtime = NewRuntime();
        // The runner caps the context at the table's length by itself.
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 4096, MaxBatchTokens = 8 });
        Assert.That(model.MaxContext, Is.EqualTo(256));
    }
}
