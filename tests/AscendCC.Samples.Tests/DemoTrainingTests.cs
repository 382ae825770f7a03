using System.Diagnostics;
using LlamaChat.Demo;
using NUnit.Framework;
using TorchSharp;

namespace AscendCC.Samples.Tests;

/// <summary>
/// The demo model's promise that one cache key names one model: training at the default size gives the
/// same bytes every time, and whatever changes those bytes is part of the key. The full default training
/// (about a minute) is timed by the benchmarks' demo suite (bench/results/demo-training.md), not here.
/// </summary>
public class DemoTrainingTests
{
    [Test]
    public void DefaultSizeTrainingIsByteIdenticalWhenRepeated()
    {
        // The default corpus, tokenizer and model shape, and enough steps for AdamW's moments, the
        // warm-up and the gradient clipping to have shaped the weights.
        DemoTrainingSettings settings = DemoTrainingSettings.Default with { Steps = 20 };
        var clock = Stopwatch.StartNew();
        byte[] first = TrainedCheckpoint(settings);
        byte[] second = TrainedCheckpoint(settings);
        TestContext.Out.WriteLine($"two trainings of {settings.Steps} steps at the default size: {clock.Elapsed.TotalSeconds:F1} s");
        Assert.That(second.SequenceEqual(first), "the same settings train the same model.safetensors bytes");
    }

    [Test]
    public void TrainingUsesItsOwnThreadCountAndGivesTheCallersBack()
    {
        int before = torch.get_num_threads();
        int seen = 0;
        DemoTrainingSettings settings = Tiny with { Threads = before == 1 ? 2 : 1 };
        TrainedCheckpoint(settings, new SyncProgress(_ => seen = torch.get_num_threads()));
        Assert.That(seen, Is.EqualTo(settings.Threads), "training runs on the settings' thread count");
        Assert.That(torch.get_num_threads(), Is.EqualTo(before), "the caller's thread count is restored");
    }

    [Test]
    public void TheCacheKeyNamesEverythingThatChangesTheBytes()
    {
        DemoTrainingSettings settings = DemoTrainingSettings.Default;
        Assert.That(settings.Threads, Is.EqualTo(2), "the default trains on the documented machine's 2 cores");
        Assert.That(settings.CacheKey(), Does.Contain($"torchsharp {DemoTrainingSettings.TorchSharpVersion}").And.Contain("\"Threads\":2"));
        Assert.That(DemoTrainingSettings.TorchSharpVersion, Does.StartWith(typeof(torch).Assembly.GetName().Version!.ToString(2)));
        Assert.That((settings with { Threads = 1 }).Hash(), Is.Not.EqualTo(settings.Hash()));
    }

    private static readonly DemoTrainingSettings Tiny = new(Documents: 200, Steps: 2, BatchSize: 2, SequenceLength: 32, Hidden: 32, Intermediate: 48, Layers: 1, Heads: 4, KvHeads: 2, MaxPositions: 64);

    private static byte[] TrainedCheckpoint(DemoTrainingSettings settings, IProgress<TrainingProgress>? progress = null)
    {
        string folder = Directory.CreateTempSubdirectory("llamachat-demo-determinism-").FullName;
        try
        {
            DemoTrainer.Train(settings, folder, progress);
            return File.ReadAllBytes(Path.Combine(folder, "model.safetensors"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
