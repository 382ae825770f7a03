using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Tests.Models;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Llama;

/// <summary>
/// stories260K on the NPU, in both checkpoint layouts and both execution modes: every logit within
/// 1e-4 of llama2.c's and the greedy tokens identical.
/// </summary>
public class LlamaDeviceModelTests
{
    private const double Tolerance = 1e-4;

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (string prompt in new[] { "once_upon_a_time", "lily_had_a" })
        {
            foreach (string layout in new[] { "model.safetensors", "stories260K.bin" })
            {
                foreach (ExecutionMode mode in new[] { ExecutionMode.Eager, ExecutionMode.Graph })
                {
                    yield return new TestCaseData(prompt, layout, mode).SetArgDisplayNames(prompt, layout, mode.ToString());
                }
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void ReproducesLlama2cLogitsAndTokens(string prompt, string weights, ExecutionMode mode)
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs reference = ReferenceOutputs.Load(folder, prompt);
        using var checkpoint = LlamaCheckpoint.Open(Path.Combine(folder, weights));
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        using var model = LlamaDeviceModel.Load(runtime, checkpoint, new LlamaDeviceOptions { Mode = mode, MaxContext = 128 });

        foreach (ReferenceStep step in reference.Steps)
        {
            int next = model.Forward([step.Token], step.Pos);
            float[] logits = model.ReadLogits();
            AssertClose(logits, step.Logits, $"{prompt} {weights} {mode} pos {step.Pos}");
            Assert.That(next, Is.EqualTo(step.Argmax), $"device argmax at pos {step.Pos}");
        }

        int[] generated = model.Generate(reference.PromptTokens, reference.GeneratedTokens.Length).ToArray();
        Assert.That(generated, Is.EqualTo(reference.GeneratedTokens));
    }

    [Test]
    public void ChunkedPrefillMatchesTokenByToken()
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs reference = ReferenceOutputs.Load(folder, "once_upon_a_time");
        using var checkpoint = LlamaCheckpoint.Open(folder);
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        using var model = LlamaDeviceModel.Load(runtime, checkpoint, new LlamaDeviceOptions { MaxContext = 128, MaxBatchTokens = 16 });
        int[] tokens = reference.Steps.Select(s => s.Token).ToArray();
        // 7 tokens, then chunks of up to 16: the last position's logits of each chunk must match.
        for (int pos = 0, n = 7; pos < tokens.Length; n = Math.Min(16, tokens.Length - pos))
        {
            int next = model.Forward(tokens.AsSpan(pos, n), pos);
            pos += n;
            ReferenceStep last = reference.Steps[pos - 1];
            AssertClose(model.ReadLogits(), last.Logits, $"chunk ending at pos {pos - 1}");
            Assert.That(next, Is.EqualTo(last.Argmax));
        }
    }

    [Test]
    public void APromptLongerThanTheContextIsRefusedWithAClearMessage()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = LlamaCheckpoint.Open(folder);
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        using var model = LlamaDeviceModel.Load(runtime, checkpoint, new LlamaDeviceOptions { MaxContext = 32 });
        int[] prompt = Enumerable.Repeat(1, 40).ToArray();
        var ex = Assert.Throws<ArgumentException>(() => model.Generate(prompt, 4).ToArray());
        Assert.That(ex!.Message, Does.Contain("40 tokens").And.Contain("32"));
    }

    [Test]
    public void SeededSamplingIsReproducible()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = LlamaCheckpoint.Open(folder);
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        using var model = LlamaDeviceModel.Load(runtime, checkpoint, new LlamaDeviceOptions { MaxContext = 128 });
        int[] prompt = [1, 403, 407, 261, 378];
        var sampling = new SamplingOptions(Temperature: 0.9f, TopK: 40, TopP: 0.9f, Seed: 1234);
        int[] first = model.Generate(prompt, 32, sampling).ToArray();
        int[] second = model.Generate(prompt, 32, sampling with { Seed = 1234 }).ToArray();
        int[] other = model.Generate(prompt, 32, sampling with { Seed = 99 }).ToArray();
        Assert.That(second, Is.EqualTo(first));
        Assert.That(other, Is.Not.EqualTo(first), "a different seed should change a 32-token sample");
    }

    private static void AssertClose(float[] actual, float[] expected, string where)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), where);
        double worst = 0;
        int at = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = Math.Abs(actual[i] - expected[i]);
            if (d > worst)
            {
                worst = d;
                at = i;
            }
        }
        Assert.That(worst, Is.LessThanOrEqualTo(Tolerance), $"{where}: largest logit difference {worst:g3} at token {at}");
    }
}
