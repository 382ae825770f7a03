using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Tests.GptNeo;
using AscendCC.Tests;
using AscendCC.Tests.TorchGptNeo;
using AscendCC.TorchSharpBackend;
using NUnit.Framework;
using static TorchSharp.torch;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Runtime.Tests.Backend;

/// <summary>
/// GPT-Neo modules compiled through torch_npu: the tests' own TorchSharp GPT-Neo (Hugging Face names,
/// written as users port modeling_gpt_neo.py) with random weights and with gptneo-shakespeare's.
/// </summary>
public class GptNeoCompilerTests
{
    private static readonly ExecutionMode[] Modes = [ExecutionMode.Eager, ExecutionMode.Graph];

    /// <summary>Small, with a local window much shorter than the sequences fed.</summary>
    private static GptNeoConfig TinyConfig() => new()
    {
        Architecture = "GPTNeoForCausalLM",
        ModelType = "gpt_neo",
        HiddenSize = 32,
        IntermediateSize = 80,
        NumHiddenLayers = 3,
        NumAttentionHeads = 4,
        VocabSize = 50,
        MaxPositionEmbeddings = 64,
        AttentionLayers = ["global", "local", "global"],
        WindowSize = 5,
        TieWordEmbeddings = true,
        EosTokenIds = [49],
    };

    [TestCaseSource(nameof(Modes))]
    public void AUserWrittenTorchSharpGptNeoAgreesWithTheDeviceOnEveryPositionsLogits(ExecutionMode mode)
    {
        manual_seed(11);
        GptNeoConfig config = TinyConfig();
        using var model = new GPTNeoForCausalLM(config);
        using var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions
        {
            Config = config,
            JitCompile = mode == ExecutionMode.Graph,
            MaxContext = 64,
            MaxBatchTokens = 8,
        });
        Assert.That(compiled.SelfCheckMaxDifference, Is.LessThan(1e-4));
        var random = new Random(5);
        int[] prompt = Enumerable.Range(0, 27).Select(_ => random.Next(config.VocabSize)).ToArray();
        using var noGrad = no_grad();
        using Tensor ids = tensor(prompt.Select(i => (long)i).ToArray(), [1, prompt.Length]);
        using Tensor cpu = model.call(ids), device = compiled.forward(ids);
        Assert.That(device.shape, Is.EqualTo(cpu.shape));
        double diff = (device - cpu).abs().max().item<float>();
        Assert.That(diff, Is.LessThan(1e-4), "every one of 27 positions (4 chunks of 8, windows of 5) within 1e-4");

        // A module that scales its attention scores is not this GPT-Neo: the device would not agree.
        using var scaled = new GPTNeoForCausalLM(config, scaleScores: true);
        scaled.load_state_dict(model.state_dict());
        using Tensor wrong = scaled.call(ids);
        Assert.That((wrong - device).abs().max().item<float>(), Is.GreaterThan(1e-2));
    }

    [TestCaseSource(nameof(Modes))]
    public void TheShakespeareGptNeoCompiledFromItsModuleGeneratesTheReference(ExecutionMode mode)
    {
        string folder = TestData.RequireModel("gptneo-shakespeare");
        GptNeoReference reference = GptNeoReference.Load(folder, "romeo");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using var model = GPTNeoForCausalLM.Load(checkpoint);
        using var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions
        {
            ConfigPath = Path.Combine(folder, "config.json"),
            JitCompile = mode == ExecutionMode.Graph,
            MaxContext = 128,
        });
        Assert.That(compiled.Config, Is.TypeOf<GptNeoConfig>());
        int[] generated = compiled.generate(reference.PromptTokens, reference.GeneratedTokens.Length, stop_tokens: []).ToArray();
        Assert.That(generated, Is.EqualTo(reference.GeneratedTokens));
        var tokenizer = TextTokenizer.Load(folder);
        Assert.That(tokenizer.HasBos, Is.False, "GPT-2 style byte-level BPE: no BOS");
        Assert.That("ROMEO:" + compiled.generate_text(tokenizer, "ROMEO:", 64), Is.EqualTo(File.ReadAllText(Path.Combine(folder, "reference", "romeo.text.txt"))));
    }

    [Test]
    public void TheSelfCheckRefusesAModuleThatScalesItsAttentionScores()
    {
        manual_seed(11);
        using var scaled = new GPTNeoForCausalLM(TinyConfig(), scaleScores: true);
        var ex = Assert.Throws<NpuSelfCheckException>(() => torch_npu.compile_causal_lm(scaled, new NpuCompileOptions { Config = TinyConfig(), MaxContext = 64 }));
        Assert.That(ex!.Message, Does.Contain("does not scale scores by 1/sqrt(head_dim)"));
    }

    [Test]
    public void AConfigurationOfTheOtherFamilyIsRefusedNamingBoth()
    {
        GptNeoConfig config = TinyConfig();
        using var model = new GPTNeoForCausalLM(config);
        var llama = LlamaCompilerTests.TinyConfig();
        var ex = Assert.Throws<NpuCompileException>(() => torch_npu.compile_causal_lm(model, new NpuCompileOptions { Config = llama }));
        Assert.That(ex!.Message, Does.Contain("is a GPT-Neo model").And.Contain("is a Llama one"));
    }
}
