using AscendCC.Attacks;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Tests.Models;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Llama;

/// <summary>
/// A Llama in <see cref="WeightPrecision.Q4_K"/> end to end: the 256-wide random checkpoint
/// (<see cref="RandomLlamaCheckpoint"/>, whose widths are whole super-blocks) through every path that
/// Q8_0 and Q4_0 take — eager and graph, prompt chunks, batched decode, and a confidential package —
/// giving the same tokens. (Its numerics against llama.cpp and the exact arithmetic are
/// <see cref="Q4_KLlamaCppTests"/>'.)
/// </summary>
public class Q4_KModelTests
{
    private const int Tokens = 24;

    private static (LlamaConfig Config, Dictionary<string, TensorData> Weights) Model()
    {
        using var temp = new TempFolder();
        string folder = RandomLlamaCheckpoint.WriteFolder(temp.File("random"), seed: 77, edgeBlocks: false);
        using var checkpoint = ModelCheckpoint.Open(folder);
        var config = (LlamaConfig)checkpoint.Config;
        return (config, config.ExpectedTensors().ToDictionary(t => t.Name, t => TensorData.FromCheckpoint(checkpoint.GetTensor(t.Name))));
    }

    private static readonly int[] Prompt = [1, 403, 407, 261, 365, 136, 54, 37, 30, 52, 16];

    private static NpuRuntime NewRuntime() => new(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);

    [Test]
    public void EagerGraphChunkedAndBatchedGiveTheSameTokens()
    {
        (LlamaConfig config, Dictionary<string, TensorData> weights) = Model();
        using NpuRuntime runtime = NewRuntime();
        int[] Greedy(ExecutionMode mode, int maxBatchTokens)
        {
            using var model = CausalLM.Load(runtime, config, RopeConvention.Half, n => weights[n],
                new CausalLMOptions { MaxContext = 64, MaxBatchTokens = maxBatchTokens, WeightPrecision = WeightPrecision.Q4_K, Mode = mode });
            return [.. model.Generate(Prompt, Tokens, stopTokens: [])];
        }
        int[] graph = Greedy(ExecutionMode.Graph, 0);
        Assert.That(graph.Distinct().Count(), Is.GreaterThan(4), "a model whose tokens vary (so equal tokens say something)");
        Assert.That(Greedy(ExecutionMode.Eager, 0), Is.EqualTo(graph), "eager");
        Assert.That(Greedy(ExecutionMode.Graph, 2), Is.EqualTo(graph), "2-token prompt chunks (the GEMV) against the whole prompt (the GEMM)");

        using var batched = CausalLM.Load(runtime, config, RopeConvention.Half, n => weights[n],
            new CausalLMOptions { MaxContext = 64, WeightPrecision = WeightPrecision.Q4_K, MaxSequences = 3 });
        Assert.That(batched.Layout.PanelMatrices, Does.Contain("model.layers.0.mlp.down_proj.weight"), "the batched program keeps its Q4_K matrices in panels");
        CausalLMBatch batch = batched.CreateBatch();
        BatchSequence[] sequences = [batch.Add(Prompt, Tokens, stopTokens: []), batch.Add(Prompt[..5], Tokens, stopTokens: []), batch.Add(Prompt, Tokens, stopTokens: [])];
        while (batch.Count > 0)
        {
            batch.Step();
        }
        Assert.That(sequences[0].Tokens, Is.EqualTo(graph), "in a batch of three");
        Assert.That(sequences[2].Tokens, Is.EqualTo(graph));
    }

    [Test]
    public void AConfidentialQ4_KPackageGivesThePlaintextTokens()
    {
        (LlamaConfig config, Dictionary<string, TensorData> weights) = Model();
        var options = new TestbedOptions { MaxContext = 64, MaxBatchTokens = 8, Precision = WeightPrecision.Q4_K };
        int[] plain;
        using (Testbed off = Testbed.Create(config, RopeConvention.Half, n => weights[n], options with { CcMode = AscendCC.Protocol.Attestation.CcMode.Off }))
        using (CausalLM model = off.LoadPlaintext())
        {
            plain = [.. model.Generate(Prompt, Tokens, stopTokens: [])];
        }
        using Testbed on = Testbed.Create(config, RopeConvention.Half, n => weights[n], options);
        Assert.That(on.Model.Manifest.Tensors.Where(t => t.Name.StartsWith("model.layers.", StringComparison.Ordinal) && t.Shape.Count == 2).Select(t => t.ElementType),
            Is.All.EqualTo("Q4_K"), "the package's layer matrices are Q4_K");
        Assert.That(on.Model.Manifest.Tensors.Single(t => t.Name == "lm_head.weight").ElementType, Is.EqualTo("Q8_0"), "the classifier is Q8_0");
        using CausalLM llama = on.Load();
        Assert.That(on.Generate(llama, Prompt, Tokens), Is.EqualTo(plain));
    }

    [Test]
    public void AModelWhoseWidthsAreNotWholeSuperBlocksIsRefusedNamingTheTensorAndTheRemedy()
    {
        (LlamaConfig config, Dictionary<string, TensorData> weights) = PaddedStories260K.Build();
        using NpuRuntime runtime = NewRuntime();
        var ex = Assert.Throws<ArgumentException>(() => CausalLM.Load(runtime, config, RopeConvention.Half, n => weights[n],
            new CausalLMOptions { MaxContext = 64, WeightPrecision = WeightPrecision.Q4_K }));
        Assert.That(ex!.Message, Does.Contain("not whole Q4_K super-blocks of 256").And.Contain("Q8_0 or Q4_0"));
    }
}
