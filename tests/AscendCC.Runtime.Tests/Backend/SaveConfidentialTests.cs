using AscendCC.Attacks;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.TorchSharpBackend;
using NUnit.Framework;
using static TorchSharp.torch;
using TinyCausalLM = AscendCC.Runtime.Tests.Backend.LlamaCompilerTests.TinyCausalLM;
using AscendCC.Runtime.Llama;

namespace AscendCC.Runtime.Tests.Backend;

/// <summary>
/// torch_npu.save_confidential: a TorchSharp module exported straight into a confidential package,
/// deployed on an attested CC-on NPU, generates what the same module compiled in the clear generates.
/// </summary>
public class SaveConfidentialTests
{
    private static readonly ExecutionMode[] Modes = [ExecutionMode.Eager, ExecutionMode.Graph];

    [TestCaseSource(nameof(Modes))]
    public void AnExportedModuleGeneratesOnAConfidentialNpuWhatItGeneratesInTheClear(ExecutionMode mode)
    {
        manual_seed(31);
        LlamaConfig config = LlamaCompilerTests.TinyConfig();
        using var model = new TinyCausalLM(config);
        int[] prompt = [1, 17, 42, 5, 88];
        const int count = 20;

        // In the clear: the module compiled on torch_npu's own NPU (CC off), anchored to its CPU forward.
        int[] clear;
        using (var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions { Config = config, JitCompile = mode == ExecutionMode.Graph, MaxContext = 64 }))
        {
            clear = compiled.generate(prompt, count).ToArray();
        }
        Assert.That(clear, Is.EqualTo(model.GreedyOnCpu(prompt, count)));

        // Confidential: manufacturer, attested CC-on NPU, model provider and data owner from the testbed.
        // Its own package holds other (random) weights, so only the exported package can give the module's tokens.
        using var world = Testbed.Create(config, RopeConvention.Half, TinyLlama.Weights(config, seed: 5), new TestbedOptions { Mode = mode, MaxContext = 64, MaxBatchTokens = 4 }, "decoy");
        using var output = new MemoryStream();
        using ProtectedModel exported = torch_npu.save_confidential(model, output, world.Deployment, world.Provider, world.Policy, "tiny-torchsharp");
        byte[] package = output.ToArray();

        Assert.That(exported.Manifest.ModelName, Is.EqualTo("tiny-torchsharp"));
        Assert.That(exported.Manifest.ExpectedGraphMeasurement.ToArray(), Is.EqualTo(world.Deployment.Measure(world.Provider.VerificationKey, "tiny-torchsharp")));
        Assert.That(exported.Manifest.Items.Select(i => i.Name), Is.EquivalentTo(world.WeightNames));
        // The package carries ciphertext only: no run of the embedding's plaintext bytes appears in it.
        byte[] embedding = model.named_parameters().Single(p => p.name == LlamaTensorNames.Embedding).parameter.detach().contiguous().bytes.ToArray();
        Assert.That(package.AsSpan().IndexOf(embedding.AsSpan(0, 64)), Is.EqualTo(-1), "plaintext embedding bytes found in the package");

        using CausalLM llama = world.Load(exported, package);
        int[] confidential = world.Generate(llama, prompt, count);
        Assert.That(confidential, Is.EqualTo(clear));
    }

    [Test]
    public void AModuleThatDoesNotFitTheDeploymentIsRefusedNamingTheTensorAndNothingIsWritten()
    {
        manual_seed(32);
        LlamaConfig config = LlamaCompilerTests.TinyConfig();
        using var model = new TinyCausalLM(config);
        using var world = Testbed.Create(config, RopeConvention.Half, TinyLlama.Weights(config), new TestbedOptions { MaxContext = 32 });

        void Refused(LlamaConfig wrong, params string[] named)
        {
            var deployment = world.Deployment with { Config = wrong };
            using var output = new MemoryStream();
            var ex = Assert.Throws<NpuCompileException>(() => torch_npu.save_confidential(model, output, deployment, world.Provider, world.Policy))!;
            Assert.That(ex.Message, Does.Contain(named[0]).And.Contains(named.Length > 1 ? named[1] : named[0]));
            Assert.That(output.Length, Is.Zero, "a refused module must leave the output untouched");
        }

        // k_proj is [kv heads * head dim, hidden] = [32, 64]; four KV heads would need [64, 64].
        Refused(config with { NumKeyValueHeads = 4 }, "'model.layers.0.self_attn.k_proj.weight'", "[32, 64]");
        Refused(config with { IntermediateSize = 128 }, "'model.layers.0.mlp.gate_proj.weight'", "[96, 64]");
        Refused(config with { NumHiddenLayers = 1 }, "model.layers.1.");
        Refused(config with { TieWordEmbeddings = true }, "lm_head.weight");

        string folder = Path.Combine(Path.GetTempPath(), "ascendcc-save-confidential-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            string path = Path.Combine(folder, "model.accpkg");
            Assert.Throws<NpuCompileException>(() => torch_npu.save_confidential(model, path, world.Deployment with { Config = config with { NumHiddenLayers = 3 } }, world.Provider, world.Policy));
            Assert.That(Directory.GetFiles(folder), Is.Empty, "a refused module must create no file");

            using ProtectedModel saved = torch_npu.save_confidential(model, path, world.Deployment, world.Provider, world.Policy);
            Assert.That(Directory.GetFiles(folder).Select(Path.GetFileName), Is.EqualTo(new[] { "model.accpkg" }));
            Assert.That(File.ReadAllBytes(path).AsSpan(0, 8).ToArray(), Is.EqualTo("ACCMPK01"u8.ToArray()));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
