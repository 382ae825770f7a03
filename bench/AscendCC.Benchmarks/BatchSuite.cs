using System.Diagnostics;
using System.Globalization;
using System.Text;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;

namespace AscendCC.Benchmarks;

/// <summary>
/// Batched decode (continuous batching, CC off, graph mode): tokens per second of 1, 2, 4 and 8
/// sequences decoding together in one model against one sequence in the single-sequence program, on
/// the same weights. Each sequence has its own 128-token prompt; decode steps are timed after every
/// prompt has been read. The configurations run interleaved, round by round in a rotating order, and
/// the report compares within rounds (the machine's speed drifts by tens of percent over minutes).
/// </summary>
internal sealed class BatchSuite : IBenchmarkSuite, IReportingSuite
{
    internal const int PromptTokens = 128;
    // Tokens a sequence may decode while the batch's later prompts are read.
    internal const int Headroom = 24;
    private static readonly int[] Sizes = [1, 2, 4, 8];

    /// <summary>
    /// The KV cache of every CC-off program here: the runtime's default, or ASCENDCC_BENCH_KV_CACHE (F32, F16,
    /// BF16, Q8_0) to see what a narrower cache does to a step of eight (it shortens their attention).
    /// </summary>
    private static readonly KvCachePrecision KvCache = Environment.GetEnvironmentVariable("ASCENDCC_BENCH_KV_CACHE") is { Length: > 0 } kv
        ? Enum.Parse<KvCachePrecision>(kv, ignoreCase: true)
        : CausalLMOptions.DefaultKvCachePrecision;
    private readonly StringBuilder _report = new();
    private readonly StringBuilder _operators = new();
    private readonly StringBuilder _ceiling = new();

    public string Name => "batch";

    public string Description => "batched decode: tokens/s of 1, 2, 4, 8 sequences vs one sequence (110M and 1.1B, BF16, Q8_0, Q4_0 and Q4_K; CC off, and CC on for BF16), interleaved, and the ceilings the machine's multiply-add rate and the kernels' inner loops set";

    public string ReportFileName => "batch.md";

    public string Report => _report.ToString();

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        int steps = options.Quick ? 8 : 24;
        _report.AppendLine(CultureInfo.InvariantCulture, $"# batch: {Description}");
        _report.AppendLine();
        _report.AppendLine(FormattableString.Invariant($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}. Load average at start: {LlamaSuite.LoadAverage()}. KV cache (CC off): {KvCache}."));
        _report.AppendLine();
        _report.AppendLine(FormattableString.Invariant($"Each configuration adds its sequences (distinct {PromptTokens}-token prompts, greedy), steps until every prompt is read, then times {steps} decode steps (context {PromptTokens}–{PromptTokens + steps + Headroom}); a step of n sequences produces n tokens. \"single\" is one sequence in the single-sequence program (MaxSequences 1); \"batch n\" is n sequences in a program of 8 slots. Per round every configuration runs once, in a rotating order; the ratio column is the median over rounds of (batch tokens/s ÷ single tokens/s) within the round, with its range."));
        _report.AppendLine();
        _report.AppendLine("| model | weights | configuration | step ms: median | tokens/s: median | × single: median of rounds | range |");
        _report.AppendLine("|---|---|---|---:|---:|---:|---|");
        var shapes = new List<(string Name, Func<ModelShape> Create, int Rounds)>
        {
            ("110M", () => ModelShape.Llama110M(Context(steps)), options.Quick ? 2 : 8),
        };
        if (!options.Quick)
        {
            shapes.Add(("1.1B", () => ModelShape.Llama1B(Context(steps)), 5));
        }
        foreach ((string shapeName, Func<ModelShape> create, int rounds) in shapes)
        {
            foreach (WeightPrecision precision in new[] { WeightPrecision.BF16, WeightPrecision.Q8_0, WeightPrecision.Q4_0, WeightPrecision.Q4_K })
            {
                if (!options.Includes($"{shapeName} {precision}"))
                {
                    continue;
                }
                using ModelShape shape = create();
                Measure(shape, precision, rounds, steps);
            }
        }
        _report.AppendLine();
        _report.AppendLine("Operators of one decode step of 8 sequences, ms by the device's operator clock (busiest first; in brackets one step of the single-sequence program; a batched operator is compared with its single-sequence form where it has one):");
        _report.AppendLine();
        _report.AppendLine("| model | weights | operators |");
        _report.AppendLine("|---|---|---|");
        _report.Append(_operators.Replace("_segments", ""));
        _report.AppendLine();
        _report.AppendLine("Compute ceiling. At eight tokens a step's linears are bound by the multiply-add rate, not by the weight stream. Both rates are measured on 2 threads started together, right after each configuration's rounds (bench/AscendCC.Benchmarks/ComputePeak.cs). \"Peak\": chains of the multiply instruction the linear kernel is made of, nothing else in the loop — 512-bit f32 FMA for BF16, 256-bit vpdpbusd for Q8_0, 512-bit vpmaddubsw for Q4_0 and Q4_K on AVX-512BW machines (.NET 10 exposes neither 512-bit VNNI nor AVX512-BF16's dot product on this CPU). \"Inner loop\": the batched GEMV's own per-token step at eight tokens, every operand in registers or L1 — the multiplies plus the activation broadcasts, partial-sum adds, conversion and scaling they cannot go without, and none of the weight stream, unpacking or scale loads. \"Batch 8 at peak\" and \"at the inner loop\" are the ratios the step would reach if its linears ran at that rate and everything else took what it took; the single step, the step of eight and its linears' operator-clock time all come from the clocked runs made one after the other after the rounds (so from the same minute of the machine's drifting speed; the step columns above are the rounds' medians): no kernel built from these instructions gets past the first, and none of this kernel's design past the second.");
        _report.AppendLine();
        _report.AppendLine("| model | weights | linear MACs per step of 8 | peak, both cores | inner loop, both cores | linears, batch 8 (operator clock) | at peak | at the inner loop | step of 8 (clocked) | rest of it | single step (clocked) | batch 8 at peak | batch 8 at the inner loop |");
        _report.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        _report.Append(_ceiling);
        _report.AppendLine();
        _report.AppendLine(CultureInfo.InvariantCulture, $"Load average at end: {LlamaSuite.LoadAverage()}.");
    }

    private void Measure(ModelShape shape, WeightPrecision precision, int rounds, int steps)
    {
        Console.WriteLine($"{shape.Name} {precision}: loading the single-sequence and the 8-slot models…");
        int context = Context(steps);
        var device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 24L << 30 });
        using var runtime = new NpuRuntime(device, ownsDevice: true);
        using var single = CausalLM.Load(runtime, shape.Config, shape.Rope, n => shape.Weight(n, precision),
            new CausalLMOptions { MaxContext = context, MaxBatchTokens = PromptTokens, WeightPrecision = precision, KvCachePrecision = KvCache });
        using var batched = CausalLM.Load(runtime, shape.Config, shape.Rope, n => shape.Weight(n, precision),
            new CausalLMOptions { MaxContext = context, MaxBatchTokens = PromptTokens, WeightPrecision = precision, MaxSequences = Sizes[^1], KvCachePrecision = KvCache });
        CausalLMBatch batch = batched.CreateBatch();
        // CC on: the same weights in a batched confidential deployment (BF16 only: a CC package of the
        // 1.1B shape in Q8_0 is quantized by the exporter like the plain load, but one configuration
        // per shape keeps the suite's length in bounds).
        using ConfidentialRunner? confidential = precision == WeightPrecision.BF16
            ? new ConfidentialRunner(shape, precision, ExecutionMode.Graph, context, PromptTokens, "CC on", maxSequences: Sizes[^1])
            : null;
        int[][] prompts = Prompts(Sizes[^1], shape.Config.VocabSize);

        string[] names = ["single", .. Sizes.Select(n => $"batch {n}"), .. confidential is null ? Array.Empty<string>() : Sizes.Select(n => $"CC on batch {n}")];
        // Warm-up: every code path once.
        RunSingle(single, prompts[0], 2);
        RunBatch(batch, prompts, Sizes[^1], 2);
        (Dictionary<string, List<double>> stepMs, List<Dictionary<string, double>> perRound) = RotatingRounds.Run(names, rounds, Sequences, name =>
            name == "single" ? RunSingle(single, prompts[0], steps)
            : name.StartsWith("CC on", StringComparison.Ordinal) ? confidential!.RunBatch(prompts, Sequences(name), steps, Headroom)
            : RunBatch(batch, prompts, Sequences(name), steps));
        var ratios = names.ToDictionary(n => n, n => perRound.Select(r => r[n] / r["single"]).ToList());
        // Where a step's time goes, by the device's operator clock: single vs the largest batch.
        var clock = device.OperatorClock;
        clock.Enabled = true;
        // The ceilings take the step times of these clocked runs, so that the linears' time, the step it is
        // taken from and the single step come from the same minute of the machine's drifting speed.
        double singleMs = RunSingle(single, prompts[0], steps, clock);
        var singleOps = clock.Read();
        double batchMs = RunBatch(batch, prompts, Sizes[^1], steps, clock);
        var batchOps = clock.Read();
        clock.Enabled = false;
        double peak = precision switch
        {
            WeightPrecision.BF16 => ComputePeak.F32MacsPerSecond(),
            WeightPrecision.Q4_0 or WeightPrecision.Q4_K when AscendCC.Device.Kernels.Int8Dot.DefaultIsa == AscendCC.Device.Kernels.Int8DotIsa.Avx512Bw => ComputePeak.NibbleMacsPerSecond(),
            _ => ComputePeak.Int8MacsPerSecond(),
        };
        double inner = ComputePeak.InnerLoopMacsPerSecond(precision);
        double macs = 8.0 * shape.StreamedMatrixParameters;
        double linearsMs = batchOps.Where(o => o.Key.StartsWith("linear", StringComparison.Ordinal)).Sum(o => o.Value.Milliseconds) / steps;
        double atPeakMs = macs / peak * 1000;
        double atInnerMs = inner > 0 ? macs / inner * 1000 : double.NaN;
        double restMs = batchMs - linearsMs;
        _ceiling.AppendLine(FormattableString.Invariant(
            $"| {shape.Name} | {precision} | {macs / 1e9:F2} G | {peak / 1e9:F0} GMAC/s | {inner / 1e9:F0} GMAC/s | {linearsMs:F2} ms ({macs / linearsMs / 1e6:F0} GMAC/s, {macs / linearsMs / 1e6 / (peak / 1e9):P0} of peak, {macs / linearsMs / 1e6 / (inner / 1e9):P0} of the inner loop) | {atPeakMs:F2} ms | {atInnerMs:F2} ms | {batchMs:F2} ms | {restMs:F2} ms | {singleMs:F2} ms | {8 * singleMs / (restMs + atPeakMs):F2}× | {8 * singleMs / (restMs + atInnerMs):F2}× |"));
        _operators.AppendLine(FormattableString.Invariant($"| {shape.Name} | {precision} | ") + string.Join(", ",
            batchOps.OrderByDescending(o => o.Value.Milliseconds).Take(6).Select(o =>
                FormattableString.Invariant($"{o.Key} {o.Value.Milliseconds / steps:F2} (single {(singleOps.TryGetValue(o.Key.Replace("_segments", "", StringComparison.Ordinal), out var s1) ? s1.Milliseconds / steps : 0):F2})"))) + " |");
        foreach (string name in names)
        {
            int n = Sequences(name);
            double median = Median(stepMs[name]);
            _report.AppendLine(FormattableString.Invariant(
                $"| {shape.Name} | {precision} | {name} | {median:F2} | {n * 1000 / median:F1} | {Median(ratios[name]):F2}× | {ratios[name].Min():F2}× … {ratios[name].Max():F2}× |"));
        }
    }

    private static int Sequences(string configuration) =>
        configuration == "single" ? 1 : int.Parse(configuration[(configuration.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);

    /// <summary>Median ms of one decode step of one sequence in the single-sequence program.</summary>
    private static double RunSingle(CausalLM model, int[] prompt, int steps, AscendCC.Device.Scheduler.OperatorClock? clock = null)
    {
        int next = model.Forward(prompt, 0);
        clock?.Reset();
        var times = new double[steps];
        int[] one = new int[1];
        for (int i = 0; i < steps; i++)
        {
            one[0] = next;
            long start = Stopwatch.GetTimestamp();
            next = model.Forward(one, prompt.Length + i);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        return Median(times);
    }

    /// <summary>The context a sequence needs: its prompt, the timed steps, the headroom, and a margin of 8.</summary>
    internal static int Context(int steps) => PromptTokens + steps + Headroom + 8;

    /// <summary><paramref name="count"/> distinct seeded prompts of <see cref="PromptTokens"/> tokens (BOS, then random ids from 3 up).</summary>
    internal static int[][] Prompts(int count, int vocab)
    {
        var random = new Random(5);
        return [.. Enumerable.Range(0, count).Select(_ => (int[])[1, .. Enumerable.Range(0, PromptTokens - 1).Select(_ => random.Next(3, vocab))])];
    }

    /// <summary>Median ms of one batch step of <paramref name="n"/> decoding sequences.</summary>
    internal static double RunBatch(CausalLMBatch batch, int[][] prompts, int n, int steps, AscendCC.Device.Scheduler.OperatorClock? clock = null)
    {
        // The first sequences decode while the later ones read their prompts (about two steps each,
        // decode rows taking their share of a pass): their budget covers that and the timed steps.
        BatchSequence[] sequences = [.. prompts.Take(n).Select(p => batch.Add(p, steps + Headroom, stopTokens: []))];
        // Prompts first, untimed.
        while (sequences.Any(s => s.Produced == 0))
        {
            batch.Step();
        }
        clock?.Reset();
        var times = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            long start = Stopwatch.GetTimestamp();
            IReadOnlyList<BatchToken> produced = batch.Step();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (produced.Count != n)
            {
                throw new InvalidOperationException($"a decode step of {n} sequences produced {produced.Count} tokens");
            }
        }
        foreach (BatchSequence s in sequences)
        {
            batch.Remove(s);
        }
        return Median(times);
    }

    internal static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
