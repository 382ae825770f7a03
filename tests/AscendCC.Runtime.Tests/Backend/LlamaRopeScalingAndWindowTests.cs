using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using AscendCC.Tests.TorchLlama;
using AscendCC.TorchSharpBackend;
using NUnit.Framework;
using static TorchSharp.torch;

namespace AscendCC.Runtime.Tests.Backend;

/// <summary>
/// The shared reference TorchSharp Llama with rope_scaling (llama3, linear) or a Mistral sliding window,
/// random weights, compiled through torch_npu: the self-check and greedy tokens must match the module's
/// CPU forward in eager and graph mode. Each case also compiles the same weights with the feature
/// dropped from the configuration and requires the logits to move, so a device that ignored the
/// feature would fail.
/// </summary>
public class LlamaRopeScalingAndWindowTests
{
    private const int Window = 6;

    private static readonly LlamaConfig Tiny = LlamaCompilerTests.TinyConfig();

    // head_dim 16, theta 1e4: wavelengths 2π·10^(i/2) = 6.3, 20, 63, 199, … With original context 64 and
    // low/high factors 1/4, pair 0 is kept (< 16), pairs 1 and 2 are blended (16..64), the rest divided.
    private static IEnumerable<TestCaseData> Cases()
    {
        var features = new (string Name, LlamaConfig Config)[]
        {
            ("llama3 rope_scaling", Tiny with { RopeScaling = RopeScaling.Llama3(8, 1, 4, 64) }),
            ("linear rope_scaling", Tiny with { RopeScaling = RopeScaling.Linear(4) }),
            ("sliding window", Tiny with { Architecture = "MistralForCausalLM", ModelType = "mistral", SlidingWindow = Window }),
            ("llama3 and sliding window", Tiny with { RopeScaling = RopeScaling.Llama3(4, 1, 2, 32), SlidingWindow = Window }),
        };
        foreach (var (name, config) in features)
        {
            foreach (ExecutionMode mode in new[] { ExecutionMode.Eager, ExecutionMode.Graph })
            {
                yield return new TestCaseData(config, mode).SetName($"{name}, {mode}");
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void TheCompiledModelAgreesWithTheModulesCpuForward(LlamaConfig config, ExecutionMode mode)
    {
        manual_seed(17);
        using var model = new LlamaForCausalLM(config);
        // Longer than the window, so prefill already sees it; decode then slides it over 24 more positions.
        int[] prompt = [1, 17, 42, 5, 88, 3, 61, 29, 74, 12, 50, 33];
        int[] expected = model.GenerateGreedy(prompt, 24).ToArray();

        NpuCompileOptions Options(LlamaConfig c, bool selfCheck) => new()
        {
            Config = c,
            JitCompile = mode == ExecutionMode.Graph,
            MaxContext = 64,
            // 16 probe tokens > the window: the self-check itself crosses it.
            ProbeTokens = 16,
            SelfCheck = selfCheck,
            ResetState = m => ((LlamaForCausalLM)m).ResetCache(),
        };
        using var compiled = torch_npu.compile_causal_lm(model, Options(config, selfCheck: true));
        Assert.That(compiled.SelfCheckMaxDifference, Is.LessThan(1e-3));
        Assert.That(compiled.generate(prompt, 24).ToArray(), Is.EqualTo(expected));

        // Prefill logits at a position well past the window and the blended frequencies.
        int[] longPrompt = [.. prompt, .. expected];
        using Tensor ids = tensor(longPrompt.Select(i => (long)i).ToArray(), [1, longPrompt.Length]);
        model.ResetCache();
        using var noGrad = no_grad();
        using Tensor cpuAll = model.call(ids);
        using Tensor cpu = cpuAll[0, -1];
        model.ResetCache();
        // Every position, not only the last: forward(Tensor) returns [1, T, vocab] like the module.
        using Tensor device = compiled.forward(ids);
        Assert.That((device - cpuAll).abs().max().item<float>(), Is.LessThan(1e-3));

        // The same weights without the feature: the device output must move well past the tolerance.
        LlamaConfig without = config with { RopeScaling = null, SlidingWindow = null, Architecture = "LlamaForCausalLM", ModelType = null };
        using var plain = torch_npu.compile_causal_lm(model, Options(without, selfCheck: false));
        using Tensor plainLogits = plain.forward(ids);
        Assert.That((plainLogits[0, -1] - cpu).abs().max().item<float>(), Is.GreaterThan(1e-2), "the feature should change these logits");
    }
}
