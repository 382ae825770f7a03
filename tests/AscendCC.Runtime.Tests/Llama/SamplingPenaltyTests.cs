using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Tests;
using NUnit.Framework;
using static TorchSharp.torch;

namespace AscendCC.Runtime.Tests.Llama;

/// <summary>
/// The repetition penalties and min-p as the device applies them inside a generation: the device
/// keeps the history of fed tokens itself (prompt and fed-back replies), so a greedy reply with
/// penalties must equal a host-side reference that rescores the whole context each step and applies
/// llama.cpp's penalties with TorchSharp to the last <c>repeat_last_n</c> tokens. (That the data owner's
/// sealed penalties reach the device in CC mode is ConfidentialContextTests'.)
/// </summary>
public class SamplingPenaltyTests
{
    [TestCase(8, 1.5f, 0f, 0f)]
    [TestCase(64, 1.3f, 0.2f, 0.1f)]
    [TestCase(-1, 1.2f, 0f, 0.5f)]
    public void GreedyWithPenaltiesMatchesAReferenceOverTheWholeContext(int lastN, float repeat, float frequency, float presence)
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 128, MaxBatchTokens = 64 });
        int[] prompt = [1, 403, 407, 261, 378, 403, 407];
        var sampling = SamplingOptions.Greedy with { RepeatPenalty = repeat, RepeatLastN = lastN, FrequencyPenalty = frequency, PresencePenalty = presence };

        int[] onDevice = model.Generate(prompt, 40, sampling, stopTokens: []).ToArray();
        int[] plainGreedy = model.Generate(prompt, 40, stopTokens: []).ToArray();

        var context = new List<int>(prompt);
        var expected = new List<int>();
        for (int i = 0; i < onDevice.Length; i++)
        {
            model.Forward(context.ToArray(), 0);
            float[] logits = model.ReadLogits();
            int window = lastN < 0 ? context.Count : Math.Min(lastN, context.Count);
            int next = (int)argmax(Penalised(logits, context.Skip(context.Count - window).ToArray(), repeat, frequency, presence)).item<long>();
            expected.Add(next);
            context.Add(next);
        }
        Assert.That(onDevice, Is.EqualTo(expected.ToArray()));
        Assert.That(onDevice, Is.Not.EqualTo(plainGreedy), "the penalties change this greedy reply (else the test shows nothing)");
    }

    [Test]
    public void MinPOfOneIsGreedyAtAnyTemperature()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 128 });
        int[] prompt = [1, 403, 407, 261, 378];
        var hot = new SamplingOptions(Temperature: 1.5f, Seed: 3);
        int[] greedy = model.Generate(prompt, 24, stopTokens: []).ToArray();
        Assert.That(model.Generate(prompt, 24, hot with { MinP = 1f }, stopTokens: []).ToArray(), Is.EqualTo(greedy), "min-p 1 keeps only the most likely token");
        Assert.That(model.Generate(prompt, 24, hot, stopTokens: []).ToArray(), Is.Not.EqualTo(greedy), "without min-p this temperature wanders off the greedy path");
    }

    [Test]
    public void SettingsOutOfRangeAreRefusedBeforeAnythingRuns()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 32 });
        Assert.That(Assert.Throws<ArgumentException>(() => model.Generate([1, 2], 4, SamplingOptions.Greedy with { MinP = 2f }))!.Message, Does.Contain("min-p 2"));
        Assert.That(Assert.Throws<ArgumentException>(() => model.Generate([1, 2], 4, SamplingOptions.Greedy with { RepeatPenalty = 0f }))!.Message, Does.Contain("repeat penalty"));
        Assert.That(Assert.Throws<ArgumentException>(() => model.Generate([1, 2], 4, SamplingOptions.Greedy with { RepeatLastN = -2 }))!.Message, Does.Contain("repeat-last-n"));
    }

    /// <summary>llama.cpp's penalties written with TorchSharp: each distinct recent token once, with its count.</summary>
    private static Tensor Penalised(float[] logits, int[] recent, float repeat, float frequency, float presence)
    {
        var t = tensor(logits);
        if (recent.Length == 0)
        {
            return t;
        }
        long[] distinct = [.. recent.Distinct().Select(i => (long)i)];
        float[] counts = [.. distinct.Select(d => (float)recent.Count(r => r == d))];
        var ids = tensor(distinct);
        var picked = t.gather(0, ids);
        var penalised = where(picked <= 0f, picked * repeat, picked / repeat) - ((tensor(counts) * frequency) + presence);
        return t.scatter_(0, ids, penalised);
    }
}
