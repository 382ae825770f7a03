using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using AscendCC.Device.AiCore;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using TorchSharp;

namespace AscendCC.Benchmarks;

/// <summary>A suite that writes its own report instead of the ours-vs-theirs table.</summary>
internal interface IReportingSuite
{
    /// <summary>File name under bench/results for the report of the last run.</summary>
    string ReportFileName { get; }

    /// <summary>The markdown report of the last run.</summary>
    string Report { get; }
}

/// <summary>
/// Whole-model Llama inference: prefill and greedy decode of stories260K (real weights), a 110M and a
/// 1.1B shape (seeded random weights) on the TorchSharp CPU baseline and on the device with CC off
/// and on, eager and graph, BF16 weights (and F32 at 110M). Runners run one after another (a 1.1B
/// model is several GB per runner), each case repeated, so the load average is recorded per runner.
/// </summary>
internal sealed class LlamaSuite : IBenchmarkSuite, IReportingSuite
{
    private readonly List<LlamaResult> _results = [];
    private readonly List<RunnerInfo> _runners = [];
    private readonly List<string> _notes = [];
    private bool _quick;

    public string Name => "llama";

    public string Description => "Llama prefill and decode: TorchSharp fp32 vs the device, CC off/on, eager/graph";

    public string ReportFileName => _quick ? "llama-quick.md" : "llama.md";

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        _quick = options.Quick;
        torch.set_num_threads(AiCoreGrid.Shared.CoreCount);
        string loadAtStart = LoadAverage();
        int[] lengths = options.Quick ? [128, 512] : [128, 512, 2048];
        int maxLength = lengths[^1];
        // Room for the decode steps after the longest prompt.
        int maxContext = maxLength + 64;
        var shapes = new List<ModelShape>();
        if (!options.Quick)
        {
            if (ModelShape.Stories260K() is { } stories)
            {
                shapes.Add(stories);
            }
            else
            {
                _notes.Add("stories260K skipped: ../shared/models/stories260K not found.");
            }
        }
        shapes.Add(ModelShape.Llama110M(maxContext));
        if (!options.Quick)
        {
            shapes.Add(ModelShape.Llama1B(maxContext));
        }
        foreach (ModelShape shape in shapes)
        {
            using (shape)
            {
                RunShape(shape, lengths, maxContext, options);
            }
        }
        _notes.Add($"Load average (1/5/15 min) at start: {loadAtStart}; at end: {LoadAverage()}.");
        string chart = Chart();
        if (options.Filter is null)
        {
            File.WriteAllText(Path.Combine(ResultTable.ResultsDirectory(), Path.ChangeExtension(ReportFileName, ".svg")), chart);
        }
    }

    private void RunShape(ModelShape shape, int[] allLengths, int maxContext, BenchmarkOptions options)
    {
        bool big = shape.Name == "1.1B";
        // A prompt plus its decode steps must fit the shape's context.
        int[] lengths = [.. allLengths.Where(l => l + 40 <= Math.Min(shape.MaxPositions, maxContext))];
        int context = Math.Min(shape.MaxPositions, maxContext), batch = lengths[^1];
        int decodeSteps = options.Quick ? 6 : big ? 4 : 16, warmSteps = big ? 1 : 2;
        var factories = new List<(string Name, Func<ILlamaRunner> Create)>
        {
            ("TorchSharp f32", () => new TorchRunner(shape)),
        };
        foreach (WeightPrecision precision in shape.Name == "110M" ? new[] { WeightPrecision.BF16, WeightPrecision.F32 } : [WeightPrecision.BF16])
        {
            // F32 is the secondary precision: graph mode only, to keep the run short.
            ExecutionMode[] modes = precision == WeightPrecision.F32 ? [ExecutionMode.Graph] : [ExecutionMode.Eager, ExecutionMode.Graph];
            foreach (ExecutionMode mode in modes)
            {
                factories.Add(($"CC off {precision} {mode}", () => new DeviceRunner(shape, precision, mode, context, batch)));
            }
            foreach (ExecutionMode mode in modes)
            {
                factories.Add(($"CC on {precision} {mode}", () => new ConfidentialRunner(shape, precision, mode, context, batch)));
            }
        }
        var rng = new Random(7);
        int[] promptPool = [.. Enumerable.Range(0, context).Select(_ => rng.Next(3, shape.Config.VocabSize))];
        foreach ((string name, Func<ILlamaRunner> create) in factories)
        {
            if (!options.Includes($"{shape.Name} {name}"))
            {
                continue;
            }
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            ResetPeakRss();
            string load = LoadAverage();
            Console.WriteLine($"[{shape.Name}] {name}: loading (load average {load})");
            var loadTimer = System.Diagnostics.Stopwatch.StartNew();
            using ILlamaRunner runner = create();
            double loadSeconds = loadTimer.Elapsed.TotalSeconds;
            long peakRss = PeakRssBytes();
            // The load path's garbage (a CC package is built, copied and staged: 2.2 GB arrays at 1.1B)
            // must not sit in the process through the timed runs.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            // Warm-up: JIT tiers, first-touch page faults of activations and the KV cache, thread wake-up.
            runner.Run(promptPool[..Math.Min(64, lengths[0])], 2);
            foreach (int length in lengths)
            {
                int reps = options.Quick ? 1 : big ? (length >= 2048 ? 1 : 2) : (length >= 2048 ? 2 : 3);
                var prefill = new List<double>();
                double[] last = [];
                for (int r = 0; r < reps; r++)
                {
                    Thread.Sleep(100);
                    last = runner.Run(promptPool[..length], r == reps - 1 ? warmSteps + decodeSteps : 0);
                    prefill.Add(last[0]);
                }
                double[] decode = last[(1 + warmSteps)..];
                var result = new LlamaResult(shape.Name, name, runner.IsBaseline, runner.WeightBytes, length, Median(prefill), Median([.. decode]),
                    shape.PrefillFlops(length), shape.StreamedMatrixParameters * (double)runner.WeightBytes);
                _results.Add(result);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  L={length}: prefill {result.PrefillMs:F1} ms ({length / result.PrefillMs * 1e3:F0} tok/s), decode {result.DecodeMs:F2} ms/token"));
            }
            var hbm = runner.Hbm;
            _runners.Add(new RunnerInfo(shape.Name, name, loadSeconds, hbm?.Allocated ?? 0, hbm?.PeakAllocated ?? 0, Math.Max(peakRss, PeakRssBytes()), load, LoadAverage()));
        }
    }

    public string Report
    {
        get
        {
            var sb = new StringBuilder();
            sb.AppendLine(CultureInfo.InvariantCulture, $"# llama: {Description}{(_quick ? " (--quick)" : "")}");
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {RuntimeInformation.ProcessArchitecture}, {RuntimeInformation.FrameworkDescription}, Vector512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}, torch threads {torch.get_num_threads()}.");
            sb.AppendLine();
            sb.AppendLine("Prefill: one pass over L prompt tokens from position 0 up to the chosen next token (median of the repetitions). Decode: median ms per greedy token with L tokens already in the KV cache (after warm-up steps). " +
                "× torch = TorchSharp ms / runner ms (> 1: faster than TorchSharp). CC overhead = CC on vs CC off with the same precision and mode. " +
                "GFLOPS counts the same work for every runner (matrices, causal attention, classifier on the last position); GB/s is matrix weights streamed per decoded token at the runner's storage width (TorchSharp: f32). " +
                "The TorchSharp baseline also runs the classifier on the last position only. CC on times are the host's: from staging the sealed prompt to each sealed token record.");
            sb.AppendLine();
            foreach (string note in _notes)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"- {note}");
            }
            sb.AppendLine();
            sb.AppendLine("| model | runner | L | prefill ms | prefill tok/s | × torch | CC ovh | GFLOPS | decode ms/tok | decode tok/s | × torch | CC ovh | GB/s |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (LlamaResult r in _results)
            {
                LlamaResult? torchRow = _results.FirstOrDefault(t => t.Model == r.Model && t.Length == r.Length && t.IsBaseline);
                LlamaResult? off = r.Runner.StartsWith("CC on", StringComparison.Ordinal)
                    ? _results.FirstOrDefault(t => t.Model == r.Model && t.Length == r.Length && t.Runner == r.Runner.Replace("CC on", "CC off", StringComparison.Ordinal))
                    : null;
                string Ratio(double? theirs, double ours) => theirs is { } t ? string.Create(CultureInfo.InvariantCulture, $"{t / ours:F2}×") : "";
                string Overhead(double? offMs, double onMs) => offMs is { } o ? string.Create(CultureInfo.InvariantCulture, $"{(onMs - o) / o * 100:+0.0;-0.0}%") : "";
                sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {r.Model} | {r.Runner} | {r.Length} | {r.PrefillMs:F1} | {r.Length / r.PrefillMs * 1e3:F0} | {(r.IsBaseline ? "1.00×" : Ratio(torchRow?.PrefillMs, r.PrefillMs))} | {Overhead(off?.PrefillMs, r.PrefillMs)} | {r.PrefillFlops / (r.PrefillMs * 1e-3) / 1e9:F1} " +
                    $"| {r.DecodeMs:F2} | {1e3 / r.DecodeMs:F1} | {(r.IsBaseline ? "1.00×" : Ratio(torchRow?.DecodeMs, r.DecodeMs))} | {Overhead(off?.DecodeMs, r.DecodeMs)} | {r.DecodeWeightBytes / (r.DecodeMs * 1e-3) / 1e9:F1} |"));
            }
            sb.AppendLine();
            sb.AppendLine("Memory per runner (each runner loaded on its own; process peak RSS reset before each load, so it includes the runner's load path, e.g. the CC package export and staging):");
            sb.AppendLine();
            sb.AppendLine("| model | runner | load s | HBM allocated MiB | HBM peak MiB | process peak RSS MiB | load avg before | load avg after |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---|---|");
            foreach (RunnerInfo i in _runners)
            {
                sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {i.Model} | {i.Runner} | {i.LoadSeconds:F1} | {i.HbmAllocated / 1048576.0:F0} | {i.HbmPeak / 1048576.0:F0} | {i.PeakRss / 1048576.0:F0} | {i.LoadBefore} | {i.LoadAfter} |"));
            }
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"![speed-up vs TorchSharp]({Path.ChangeExtension(ReportFileName, ".svg")})");
            return sb.ToString();
        }
    }

    /// <summary>Grouped bars of × TorchSharp, prefill and decode per model and length, one colour per runner.</summary>
    private string Chart()
    {
        string[] runners = [.. _results.Where(r => !r.IsBaseline).Select(r => r.Runner).Distinct()];
        var groups = _results.Where(r => r.IsBaseline).SelectMany(t => new[] { (t, Prefill: true), (t, Prefill: false) }).ToList();
        string[] colours = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"];
        const int Bar = 12, Gap = 18, Height = 320, Top = 40, Left = 50;
        double max = 1;
        foreach (var (t, prefill) in groups)
        {
            foreach (LlamaResult r in _results.Where(r => r.Model == t.Model && r.Length == t.Length && !r.IsBaseline))
            {
                max = Math.Max(max, prefill ? t.PrefillMs / r.PrefillMs : t.DecodeMs / r.DecodeMs);
            }
        }
        max = Math.Ceiling(max);
        int width = Left + (groups.Count * ((runners.Length * Bar) + Gap)) + 20;
        var svg = new StringBuilder();
        svg.AppendLine(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{Height + Top + 150 + (runners.Length * 16)}\" font-family=\"sans-serif\" font-size=\"11\">");
        svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{Left}\" y=\"20\" font-size=\"14\">Speed-up vs TorchSharp fp32 (higher is better; line = 1×)</text>");
        double Y(double v) => Top + Height - (v / max * Height);
        for (int tick = 0; tick <= (int)max; tick++)
        {
            svg.AppendLine(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" x2=\"{width - 10}\" y1=\"{Y(tick):F1}\" y2=\"{Y(tick):F1}\" stroke=\"{(tick == 1 ? "#000" : "#ddd")}\"/><text x=\"{Left - 8}\" y=\"{Y(tick) + 4:F1}\" text-anchor=\"end\">{tick}×</text>");
        }
        int x = Left + 10;
        foreach (var (t, prefill) in groups)
        {
            for (int i = 0; i < runners.Length; i++)
            {
                LlamaResult? r = _results.FirstOrDefault(r => r.Model == t.Model && r.Length == t.Length && r.Runner == runners[i]);
                if (r is not null)
                {
                    double v = prefill ? t.PrefillMs / r.PrefillMs : t.DecodeMs / r.DecodeMs;
                    svg.AppendLine(CultureInfo.InvariantCulture, $"<rect x=\"{x + (i * Bar)}\" y=\"{Y(v):F1}\" width=\"{Bar - 2}\" height=\"{Top + Height - Y(v):F1}\" fill=\"{colours[i % colours.Length]}\"><title>{t.Model} {(prefill ? "prefill" : "decode")} {t.Length}, {runners[i]}: {v:F2}×</title></rect>");
                }
            }
            int cx = x + (runners.Length * Bar / 2);
            svg.AppendLine(CultureInfo.InvariantCulture, $"<text transform=\"translate({cx},{Top + Height + 12}) rotate(60)\">{t.Model} {(prefill ? "prefill" : "decode")} {t.Length}</text>");
            x += (runners.Length * Bar) + Gap;
        }
        for (int i = 0; i < runners.Length; i++)
        {
            int ly = Top + Height + 130 + (i * 16);
            svg.AppendLine(CultureInfo.InvariantCulture, $"<rect x=\"{Left}\" y=\"{ly - 10}\" width=\"10\" height=\"10\" fill=\"{colours[i % colours.Length]}\"/><text x=\"{Left + 16}\" y=\"{ly}\">{runners[i]}</text>");
        }
        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        int n = values.Count;
        return n == 0 ? double.NaN : n % 2 == 1 ? values[n / 2] : (values[(n / 2) - 1] + values[n / 2]) / 2;
    }

    internal static string LoadAverage()
    {
        try
        {
            string[] parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return $"{parts[0]} {parts[1]} {parts[2]}";
        }
        catch (IOException)
        {
            return "n/a";
        }
    }

    /// <summary>Resets the kernel's peak-RSS counter (VmHWM) so each runner's peak is its own.</summary>
    private static void ResetPeakRss()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static long PeakRssBytes()
    {
        try
        {
            string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? Environment.WorkingSet : long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException)
        {
            return Environment.WorkingSet;
        }
    }

    private sealed record LlamaResult(string Model, string Runner, bool IsBaseline, int WeightBytes, int Length, double PrefillMs, double DecodeMs, double PrefillFlops, double DecodeWeightBytes);

    private sealed record RunnerInfo(string Model, string Runner, double LoadSeconds, long HbmAllocated, long HbmPeak, long PeakRss, string LoadBefore, string LoadAfter);
}
