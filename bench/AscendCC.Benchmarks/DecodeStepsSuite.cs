using System.Globalization;
using System.Text;
using AscendCC.Device.AiCore;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using TorchSharp;

namespace AscendCC.Benchmarks;

/// <summary>
/// The distribution of single decode steps, not only their median: a step that waits for the
/// operating system's scheduler tick (4 ms on this kernel) shows up as a second mode in the
/// histogram, which a median hides until it is the median. Each runner decodes many tokens after a
/// short prompt; the report gives percentiles and how many steps fell in each latency band.
/// </summary>
internal sealed class DecodeStepsSuite : IBenchmarkSuite, IReportingSuite
{
    private static readonly double[] Bands = [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64];
    private readonly StringBuilder _report = new();

    public string Name => "steps";

    public string Description => "decode step latency distribution (percentiles, tick-sized stalls), stories260K and 110M";

    public string ReportFileName => "decode-steps.md";

    public string Report => _report.ToString();

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        torch.set_num_threads(AiCoreGrid.Shared.CoreCount);
        int promptLength = 128, steps = options.Quick ? 60 : 400;
        int context = promptLength + steps + 8;
        _report.AppendLine(CultureInfo.InvariantCulture, $"# steps: {Description}");
        _report.AppendLine();
        _report.AppendLine(FormattableString.Invariant($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}; prompt {promptLength} tokens, then {steps} greedy decode steps per runner (the first 8 not counted)."));
        _report.AppendLine(CultureInfo.InvariantCulture, $"Load average at start: {LlamaSuite.LoadAverage()}.");
        _report.AppendLine();
        _report.AppendLine("| model | runner | p10 ms | p50 ms | p90 ms | p99 ms | max ms | " + string.Join(" | ", Bands.Select(b => $"≤{b.ToString(CultureInfo.InvariantCulture)}")) + " | more |");
        _report.AppendLine("|---|---|---:|---:|---:|---:|---:|" + string.Concat(Enumerable.Repeat("---:|", Bands.Length + 1)));

        var shapes = new List<ModelShape>();
        if (ModelShape.Stories260K() is { } small)
        {
            shapes.Add(small);
        }
        shapes.Add(ModelShape.Llama110M(Math.Max(context, 1024)));
        try
        {
            foreach (ModelShape shape in shapes)
            {
                var factories = new (string Name, Func<ILlamaRunner> Create)[]
                {
                    ("TorchSharp", () => new TorchRunner(shape)),
                    ("CC off Eager", () => new DeviceRunner(shape, WeightPrecision.BF16, ExecutionMode.Eager, context, promptLength)),
                    ("CC off Graph", () => new DeviceRunner(shape, WeightPrecision.BF16, ExecutionMode.Graph, context, promptLength)),
                    ("CC on Graph", () => new ConfidentialRunner(shape, WeightPrecision.BF16, ExecutionMode.Graph, context, promptLength)),
                };
                var prompt = new int[promptLength];
                var random = new Random(7);
                for (int i = 0; i < prompt.Length; i++)
                {
                    prompt[i] = random.Next(3, shape.Config.VocabSize);
                }
                foreach ((string name, Func<ILlamaRunner> create) in factories)
                {
                    if (!options.Includes($"{shape.Name} {name}"))
                    {
                        continue;
                    }
                    using ILlamaRunner runner = create();
                    runner.Run(prompt[..16], 16);
                    Thread.Sleep(200);
                    double[] times = runner.Run(prompt, Math.Min(steps, shape.MaxPositions - promptLength - 1));
                    double[] decode = times[9..];
                    Array.Sort(decode);
                    string row = FormattableString.Invariant($"| {shape.Name} | {runner.Name} | {Percentile(decode, 0.10):F3} | {Percentile(decode, 0.50):F3} | {Percentile(decode, 0.90):F3} | {Percentile(decode, 0.99):F3} | {decode[^1]:F3} | ")
                        + string.Join(" | ", Histogram(decode)) + " |";
                    _report.AppendLine(row);
                    Console.WriteLine(row);
                    Thread.Sleep(200);
                }
            }
        }
        finally
        {
            foreach (ModelShape shape in shapes)
            {
                shape.Dispose();
            }
        }
        _report.AppendLine();
        _report.AppendLine(CultureInfo.InvariantCulture, $"Load average at end: {LlamaSuite.LoadAverage()}. Band columns count steps whose time is at most the band's ms and above the previous band's.");
    }

    private static double Percentile(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

    private static int[] Histogram(double[] sorted)
    {
        var counts = new int[Bands.Length + 1];
        foreach (double t in sorted)
        {
            int band = Array.FindIndex(Bands, b => t <= b);
            counts[band < 0 ? Bands.Length : band]++;
        }
        return counts;
    }
}
