using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Tests.TorchLlama;
using AscendCC.TorchSharpBackend;
using NUnit.Framework;
using static TorchSharp.torch;

namespace AscendCC.Runtime.Tests.Backend;

/// <summary>
/// The shared reference TorchSharp Llama as a Qwen3 (per-head q/k RMSNorm before RoPE, as transformers'
/// Qwen3Attention; head_dim 24 against hidden 64 / 4 heads), random weights with its q/k norm weights
/// drawn away from 1, compiled through torch_npu unchanged: the self-check, every position's logits and
/// the greedy tokens match the module's own CPU forward, eager and graph.
/// </summary>
public class Qwen3CompilerTests
{
    private static readonly LlamaConfig Config = LlamaCompilerTests.TinyConfig() with
    {
        Architecture = LlamaConfig.Qwen3Architecture,
        ModelType = "qwen3",
        QkNorm = true,
        ExplicitHeadDim = 24,
        RopeTheta = 1000000,
    };

    [TestCase(ExecutionMode.Eager)]
    [TestCase(ExecutionMode.Graph)]
    public void ATorchSharpQwen3CompiledForTheNpuAgreesWithItsCpuForward(ExecutionMode mode)
    {
        manual_seed(23);
        using var model = new LlamaForCausalLM(Config);
        int norms = 0;
        using (no_grad())
        {
            foreach (var (name, p) in model.named_parameters())
            {
                if (name.EndsWith("q_norm.weight", StringComparison.Ordinal) || name.EndsWith("k_norm.weight", StringComparison.Ordinal))
                {
                    Assert.That(p.shape, Is.EqualTo(new long[] { 24 }), name);
                    p.copy_(1 + (0.5 * randn(p.shape)));
                    norms++;
                }
            }
        }
        Assert.That(norms, Is.EqualTo(2 * Config.NumHiddenLayers), "the module's q_norm and k_norm weights");
        int[] prompt = [1, 17, 42, 5, 88, 3, 61, 29];
        int[] expected = model.GenerateGreedy(prompt, 24).ToArray();

        using var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions
        {
            Config = Config,
            JitCompile = mode == ExecutionMode.Graph,
            MaxContext = 64,
            ResetState = m => ((LlamaForCausalLM)m).ResetCache(),
        });
        Assert.That(compiled.SelfCheckMaxDifference, Is.LessThan(1e-3));
        Assert.That(compiled.generate(prompt, 24).ToArray(), Is.EqualTo(expected));

        int[] longPrompt = [.. prompt, .. expected];
        using Tensor ids = tensor(longPrompt.Select(i => (long)i).ToArray(), [1, longPrompt.Length]);
        model.ResetCache();
        using var noGrad = no_grad();
        using Tensor cpuAll = model.call(ids);
        using Tensor device = compiled.forward(ids);
        Assert.That((device - cpuAll).abs().max().item<float>(), Is.LessThan(1e-3));
    }
}
