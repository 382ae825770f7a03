using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using LlamaChat.Demo;

namespace AscendCC.Benchmarks;

/// <summary>
/// The LlamaChat demo model's training, timed once at its default settings against the sample's
/// promise (deterministic, under 3 minutes on 2 cores). It trains into a temporary folder, never the
/// user's cache, and records the time, the final loss and the checkpoint's SHA-256, so a change in the
/// trained bytes shows in the diff of bench/results/demo-training.md. It is a benchmark, not a test:
/// one run takes about a minute of both cores. --quick trains a tenth of the steps.
/// </summary>
internal sealed class DemoSuite : IBenchmarkSuite, IReportingSuite
{
    private readonly StringBuilder _report = new();

    public string Name => "demo";

    public string Description => "LlamaChat demo model: full default training (TorchSharp, CPU), once";

    public string ReportFileName => "demo-training.md";

    public string Report => _report.ToString();

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        DemoTrainingSettings settings = options.Quick ? DemoTrainingSettings.Default with { Steps = DemoTrainingSettings.Default.Steps / 10 } : DemoTrainingSettings.Default;
        string loadAtStart = LlamaSuite.LoadAverage();
        string folder = Directory.CreateTempSubdirectory("ascendcc-demo-bench-").FullName;
        try
        {
            int reported = 0;
            var progress = new InlineProgress(p =>
            {
                if (p.Step - reported >= settings.Steps / 10 || p.Step == p.Steps)
                {
                    reported = p.Step;
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  step {p.Step}/{p.Steps} loss {p.Loss:F3}"));
                }
            });
            (TimeSpan elapsed, double finalLoss) = DemoTrainer.Train(settings, folder, progress);
            string checkpoint = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(folder, "model.safetensors"))));
            var inv = CultureInfo.InvariantCulture;
            _report.AppendLine(inv, $"# demo: {Description}");
            _report.AppendLine();
            _report.AppendLine(inv, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {RuntimeInformation.ProcessArchitecture}, {RuntimeInformation.FrameworkDescription}, load average at start {loadAtStart}{(options.Quick ? "; --quick (a tenth of the steps, not the default demo)" : "")}.");
            _report.AppendLine();
            _report.AppendLine("| what | value |");
            _report.AppendLine("|---|---:|");
            _report.AppendLine(inv, $"| settings | {settings.Steps} steps × {settings.BatchSize} × {settings.SequenceLength} tokens, hidden {settings.Hidden}, {settings.Layers} layers, {settings.Documents} documents |");
            _report.AppendLine(inv, $"| training threads | {settings.Threads} |");
            _report.AppendLine(inv, $"| training time (corpus, tokenizer, training, export) | {elapsed.TotalSeconds:F1} s |");
            _report.AppendLine(inv, $"| steps per second | {settings.Steps / elapsed.TotalSeconds:F1} |");
            _report.AppendLine(inv, $"| final loss (mean of the last tenth of the steps) | {finalLoss:F3} |");
            _report.AppendLine(inv, $"| cache key | `{settings.CacheKey()}` |");
            _report.AppendLine(inv, $"| cache folder name | `{settings.Hash()}` |");
            _report.AppendLine(inv, $"| model.safetensors SHA-256 | `{checkpoint}` |");
            table.AddNote(string.Create(inv, $"| demo training ({settings.Steps} steps) | {elapsed.TotalSeconds:F1} s |"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
