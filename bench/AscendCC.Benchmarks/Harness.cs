using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace AscendCC.Benchmarks;

/// <summary>A named group of benchmark cases, selected on the command line.</summary>
internal interface IBenchmarkSuite
{
    string Name { get; }

    string Description { get; }

    void Run(BenchmarkOptions options, ResultTable table);
}

/// <summary>Command-line options every suite honours.</summary>
/// <param name="Quick">Fewer repetitions, for smoke runs.</param>
/// <param name="Filter">Only cases whose name contains this (case-insensitive; alternatives separated by '|'); null runs all.</param>
internal sealed record BenchmarkOptions(bool Quick, string? Filter)
{
    public bool Includes(string caseName) => Filter is null || Filter.Split('|').Any(f => caseName.Contains(f, StringComparison.OrdinalIgnoreCase));
}

/// <summary>Median and fastest of several timed repetitions, in milliseconds.</summary>
internal readonly record struct Timing(double MedianMs, double MinMs);

/// <summary>
/// A plain Stopwatch harness: warm-up runs (JIT tiers, page faults, thread wake-up), then timed
/// repetitions reported as median (typical) and min (least disturbed by the other builds sharing the
/// machine). The two sides of a comparison are timed in alternating rounds so both sample the same
/// stretch of background load, and each batch is followed by a pause, because both our AI Cores and
/// libtorch's OpenMP workers keep spinning for a while after work and would otherwise steal the CPU
/// from the side measured next.
/// </summary>
internal static class Measure
{
    private const int Rounds = 5;
    private static readonly TimeSpan CoolDown = TimeSpan.FromMilliseconds(100);

    /// <summary>Times <paramref name="ours"/> and <paramref name="theirs"/>, <paramref name="repetitions"/> runs each.</summary>
    public static (Timing Ours, Timing Theirs) Compare(Action ours, Action theirs, int warmup, int repetitions)
    {
        // Suites allocate large inputs just before measuring; a background gen2 collection would
        // otherwise run on one of the two cores in the middle of the timed runs.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        for (int i = 0; i < warmup; i++)
        {
            ours();
        }
        Thread.Sleep(CoolDown);
        for (int i = 0; i < warmup; i++)
        {
            theirs();
        }
        Thread.Sleep(CoolDown);
        var oursMs = new List<double>(repetitions);
        var theirsMs = new List<double>(repetitions);
        int perRound = Math.Max(1, (repetitions + Rounds - 1) / Rounds);
        while (oursMs.Count < repetitions)
        {
            int batch = Math.Min(perRound, repetitions - oursMs.Count);
            TimeBatch(ours, batch, oursMs);
            TimeBatch(theirs, batch, theirsMs);
        }
        return (Summarise(oursMs), Summarise(theirsMs));
    }

    private static void TimeBatch(Action action, int count, List<double> into)
    {
        for (int i = 0; i < count; i++)
        {
            long start = Stopwatch.GetTimestamp();
            action();
            into.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        Thread.Sleep(CoolDown);
    }

    private static Timing Summarise(List<double> samples)
    {
        samples.Sort();
        int n = samples.Count;
        double median = n % 2 == 1 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
        return new Timing(median, samples[0]);
    }

    /// <summary>Repetitions so one side runs about <paramref name="budgetMs"/>, within [5, 50].</summary>
    public static int RepetitionsFor(double estimateMs, double budgetMs) =>
        Math.Clamp((int)(budgetMs / Math.Max(estimateMs, 0.01)), 5, 50);
}

/// <summary>One compared case: ours against TorchSharp, with a throughput unit derived from the work size.</summary>
/// <param name="Case">What was run.</param>
/// <param name="Ours">AscendCC timing.</param>
/// <param name="Torch">TorchSharp timing.</param>
/// <param name="WorkPerRun">FLOPs or bytes per run.</param>
/// <param name="Unit">"GFLOPS" or "GB/s".</param>
internal sealed record ResultRow(string Case, Timing Ours, Timing Torch, double WorkPerRun, string Unit);

/// <summary>Rows of a suite, rendered as markdown.</summary>
internal sealed class ResultTable
{
    private readonly List<ResultRow> _rows = [];
    private readonly List<string> _notes = [];

    /// <summary>A row of a second, free-form two-column table (| step | value |), for suites that time one-off phases.</summary>
    public void AddNote(string markdownRow) => _notes.Add(markdownRow);

    public void Add(ResultRow row)
    {
        _rows.Add(row);
        Console.WriteLine(Format(row));
    }

    public string ToMarkdown(string suite, string description)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"# {suite}: {description}");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {RuntimeInformation.ProcessArchitecture}, {RuntimeInformation.FrameworkDescription}, Vector512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}. Times are median (min) in ms; ratio = TorchSharp median / AscendCC median, so > 1 means AscendCC is faster.");
        sb.AppendLine();
        sb.AppendLine("| case | AscendCC ms | TorchSharp ms | ratio | AscendCC | TorchSharp |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (ResultRow row in _rows)
        {
            sb.AppendLine(Format(row));
        }
        if (_notes.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("| step | time |");
            sb.AppendLine("|---|---:|");
            foreach (string note in _notes)
            {
                sb.AppendLine(note);
            }
        }
        return sb.ToString();
    }

    private static string Format(ResultRow r)
    {
        static string Rate(ResultRow r, Timing t) => string.Create(CultureInfo.InvariantCulture, $"{r.WorkPerRun / (t.MedianMs * 1e-3) / 1e9:F1} {r.Unit}");
        return string.Create(CultureInfo.InvariantCulture,
            $"| {r.Case} | {r.Ours.MedianMs:F3} ({r.Ours.MinMs:F3}) | {r.Torch.MedianMs:F3} ({r.Torch.MinMs:F3}) | {r.Torch.MedianMs / r.Ours.MedianMs:F2}× | {Rate(r, r.Ours)} | {Rate(r, r.Torch)} |");
    }

    /// <summary>bench/results in the repository (found from the executable's folder).</summary>
    public static string ResultsDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "AscendCC.Runtime.sln")))
            {
                string results = Path.Combine(dir.FullName, "bench", "results");
                Directory.CreateDirectory(results);
                return results;
            }
        }
        return Directory.GetCurrentDirectory();
    }
}
