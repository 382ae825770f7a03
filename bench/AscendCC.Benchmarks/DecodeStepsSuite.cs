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
/// A second table compares KV cache precisions at a long position (110M, @2048), where decode streams
/// the whole cache every token: the runners are prefilled to the same position and then decode in
/// interleaved rounds (one step each, the order rotating), so a contended machine slows them alike and
/// the ratios of a round's steps mean more than any runner's absolute time.
/// </summary>
internal sealed class DecodeStepsSuite : IBenchmarkSuite, IReportingSuite
{
    private static readonly double[] Bands = [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64];
    private readonly StringBuilder _report = new();

    public string Name => "steps";

    public string Description => "decode step latency distribution (percentiles, tick-sized stalls), stories260K and 110M; KV cache precision @2048 on 110M, interleaved";

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
        if (options.Includes("110M KV"))
        {
            RunKvPrecisions(options, WeightPrecision.BF16);
            RunKvPrecisions(options, WeightPrecision.Q4_0);
        }
    }

    /// <summary>
    /// 110M with <paramref name="weights"/>, graph mode, CC off, one runner per KV cache precision: each is prefilled
    /// with the same 2048-token prompt, then all decode in rounds of one step each (the order rotating
    /// every round). Reports each runner's median step and the median over rounds of F32's step divided
    /// by the other's (with the middle half of those ratios).
    /// </summary>
    private void RunKvPrecisions(BenchmarkOptions options, WeightPrecision weights)
    {
        const int position = 2048;
        int rounds = options.Quick ? 12 : 80;
        int context = position + rounds + 8;
        KvCachePrecision[] precisions = [KvCachePrecision.F32, KvCachePrecision.F16, KvCachePrecision.BF16, KvCachePrecision.Q8_0, KvCachePrecision.Q4_0];
        using ModelShape shape = ModelShape.Llama110M(context);
        var prompt = new int[position];
        var random = new Random(11);
        for (int i = 0; i < prompt.Length; i++)
        {
            prompt[i] = random.Next(3, shape.Config.VocabSize);
        }
        _report.AppendLine();
        _report.AppendLine(CultureInfo.InvariantCulture, $"## KV cache precision, 110M decode @2048, {weights} weights");
        _report.AppendLine();
        _report.AppendLine(FormattableString.Invariant($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC. {weights} weights, graph, CC off; each runner prefilled with the same {position}-token prompt (one pass), then {rounds} interleaved rounds of one decode step each (order rotating; the first 4 rounds not counted). KV bytes per step at @2048: {KvBytes(shape, position, 4) / 1e6:F0} MB in f32, {KvBytes(shape, position, 2) / 1e6:F0} MB in f16/bf16, {KvBytes(shape, position, 36.0 / 32) / 1e6:F0} MB in q8_0; weights streamed per token (all but the embedding) {CausalLMProgram.Build(shape.Config, shape.Rope, context, 1, weights).Weights.Where(w => w.Key != shape.Config.EmbeddingTensorName).Sum(w => w.Value.Bytes) / 1e6:F0} MB."));
        _report.AppendLine(CultureInfo.InvariantCulture, $"Load average at start: {LlamaSuite.LoadAverage()}.");
        _report.AppendLine();
        var runners = new List<DeviceRunner>();
        try
        {
            foreach (KvCachePrecision kv in precisions)
            {
                var runner = new DeviceRunner(shape, weights, ExecutionMode.Graph, context, position, kv);
                runners.Add(runner);
                double prefill = runner.Begin(prompt, rounds);
                Console.WriteLine(FormattableString.Invariant($"  {runner.Name}: prefill {position} tokens {prefill:F0} ms"));
            }
            var steps = new double[precisions.Length][];
            for (int r = 0; r < precisions.Length; r++)
            {
                steps[r] = new double[rounds];
            }
            for (int round = 0; round < rounds; round++)
            {
                for (int k = 0; k < precisions.Length; k++)
                {
                    int r = (round + k) % precisions.Length;
                    steps[r][round] = runners[r].Step();
                }
            }
            _report.AppendLine("| KV cache | median ms/token | p10 ms | p90 ms | F32 step ÷ this step (median of rounds) | middle half of ratios |");
            _report.AppendLine("|---|---:|---:|---:|---:|---:|");
            for (int r = 0; r < precisions.Length; r++)
            {
                double[] counted = steps[r][4..];
                double[] sorted = [.. counted.Order()];
                double[] ratios = [.. steps[0][4..].Zip(counted, (f32, t) => f32 / t).Order()];
                string row = FormattableString.Invariant(
                    $"| {precisions[r]} | {Percentile(sorted, 0.5):F2} | {Percentile(sorted, 0.1):F2} | {Percentile(sorted, 0.9):F2} | {Percentile(ratios, 0.5):F2}× | {Percentile(ratios, 0.25):F2}–{Percentile(ratios, 0.75):F2}× |");
                _report.AppendLine(row);
                Console.WriteLine(row);
            }
        }
        finally
        {
            foreach (DeviceRunner runner in runners)
            {
                runner.Dispose();
            }
        }
        _report.AppendLine();
        _report.AppendLine(CultureInfo.InvariantCulture, $"Load average at end: {LlamaSuite.LoadAverage()}.");
    }

    private static double KvBytes(ModelShape shape, int positions, double elementBytes) =>
        2.0 * shape.Config.NumHiddenLayers * shape.Config.KeyValueHeads * shape.Config.HeadDim * positions * elementBytes;

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
