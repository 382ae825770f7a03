using System.Diagnostics;
using System.Globalization;
using System.Text;
using AscendCC.Device.AiCore;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using LLama.Native;

namespace AscendCC.Benchmarks;

/// <summary>
/// The device against llama.cpp (LLamaSharp 0.30.0, 2 threads, mmap) on the same GGUF files:
/// stories260K (its real weights, as llama.cpp's converter writes them) and the 110M and 1.1B shapes
/// (seeded random weights), each written as an F32 GGUF from which llama.cpp's own quantizer writes
/// the BF16, Q8_0, Q4_0 and Q4_K_M files (Q4_K_M where every width is whole 256-blocks). At every precision llama.cpp, the device with CC off and the device
/// with CC on (graph mode) run the same file: prefill of L = 512 and 2048 prompt tokens, decode with
/// 512 and 2048 tokens in the KV cache. The machine's speed drifts by tens of percent over minutes, so
/// all runners of a shape are loaded side by side and run in rounds (prefills one after another in a
/// rotating order; decode step by step, one step of each runner in turn), and only ratios taken within
/// a round are compared. The machine's read bandwidth is measured in every round too.
/// </summary>
internal sealed class LlamaCppSuite : IBenchmarkSuite, IReportingSuite
{
    private static readonly TimeSpan CoolDown = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan StepPause = TimeSpan.FromMilliseconds(20);

    /// <summary>Context the random shapes' files declare (and stories260K's is raised to): above 2048 plus the decode steps.</summary>
    private const int FileContext = 4096;

    private const double DeviceTarget = 1.0, BestTarget = 1.3, BandwidthTarget = 0.80;

    private readonly StringBuilder _report = new();

    /// <summary>The shapes a suite of this class runs.</summary>
    public enum Shapes
    {
        /// <summary>stories260K, 110M and 1.1B (suite <c>llamacpp</c>).</summary>
        Llama,

        /// <summary>Qwen3 0.6B (suite <c>qwen3cpp</c>).</summary>
        Qwen3,

        /// <summary>Llama 3 8B in Q4_0, written directly (suite <c>llama8b</c>).</summary>
        Llama8B,
    }

    /// <summary>A suite of <paramref name="shapes"/>.</summary>
    public LlamaCppSuite(Shapes shapes = Shapes.Llama) => _shapes = shapes;

    private readonly Shapes _shapes;

    public string Name => _shapes switch { Shapes.Qwen3 => "qwen3cpp", Shapes.Llama8B => "llama8b", _ => "llamacpp" };

    public string Description => _shapes switch
    {
        Shapes.Qwen3 => "the device vs llama.cpp on the same Qwen3 0.6B-shaped GGUF files (architecture qwen3), BF16/Q8_0/Q4_0/Q4_K, CC on and off, prefill 512/2048, decode @512/@2048, interleaved",
        Shapes.Llama8B => "the device vs llama.cpp on one Llama 3 8B-shaped Q4_0 GGUF (a confidential package of 4.6 GB), CC on and off, prefill 512, decode @512, interleaved",
        _ => "the device vs llama.cpp on the same GGUF files (stories260K, 110M, 1.1B), BF16/Q8_0/Q4_0/Q4_K, CC on and off, prefill 512/2048, decode @512/@2048, interleaved",
    };

    public string ReportFileName => _shapes switch { Shapes.Qwen3 => "llamacpp-qwen3.md", Shapes.Llama8B => "llamacpp-8b.md", _ => "llamacpp.md" };

    public string Report => _report.ToString();

    /// <summary>One model: how its F32 GGUF is written, its rounds and lengths.</summary>
    /// <param name="ProbeEachStep">
    /// Take a read-bandwidth probe (<see cref="ReadBandwidth.MeasureSlice"/>) before every decode step, for
    /// the same-moment share of the bandwidth. Not for stories260K: its 1 MB of weights live in cache,
    /// which the probe would empty before each step.
    /// </param>
    /// <param name="Written">
    /// The precision <paramref name="WriteF32"/> writes the file in when it is not F32 (an 8B, whose F32
    /// file would not fit the disk): that file is the only one run, with no quantizer pass.
    /// </param>
    /// <param name="Lengths">The prompt lengths of a full run (default 512 and 2048).</param>
    private sealed record Plan(string Shape, string Description, int Rounds, int QuickRounds, int[] QuickLengths, int QuickSteps, Func<string, LlamaConfig> WriteF32, bool ProbeEachStep = true,
        WeightPrecision? Written = null, int[]? Lengths = null);

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        var wall = Stopwatch.StartNew();
        string loadAtStart = LlamaSuite.LoadAverage();
        var plans = new List<Plan>();
        var skipped = new List<string>();
        string? stories = ModelShape.FindSharedModel("stories260K");
        if (_shapes == Shapes.Llama8B)
        {
            plans.Add(new Plan("8B", "Llama 3 8B's shape (4096 wide, 32 layers, 32 heads / 8 KV heads, MLP 14336, untied 128256-token vocabulary), seeded uniform ±1/√in, written directly as Q4_0 (embedding and classifier Q8_0: an F32 file would be 32 GB)", 3, 1, [512], 2,
                path => GgufModels.WriteRandomLlama(path, (LlamaConfig)ModelShape.Llama3_8B(FileContext).Config, GgufTensorType.Q4_0), Written: WeightPrecision.Q4_0, Lengths: [512]));
        }
        else if (_shapes == Shapes.Qwen3)
        {
            plans.Add(new Plan("Qwen3 0.6B", "Qwen3-0.6B's shape (1024 wide, 28 layers, 16 heads / 8 KV heads of head_dim 128, per-head q/k norms, MLP 3072, tied 151936-token vocabulary), seeded uniform ±1/√in", 4, 1, [512], 2,
                path => GgufModels.WriteRandomLlama(path, (LlamaConfig)ModelShape.Qwen3_0_6B(FileContext).Config)));
        }
        else if (stories is not null)
        {
            plans.Add(new Plan("stories260K", "stories260K's real weights (64 wide, 5 layers, 8 heads / 4 KV heads, MLP 172, tied 512-token vocabulary)", 10, 3, [512, 2048], 4,
                path => GgufModels.WriteCheckpoint(path, stories, FileContext), ProbeEachStep: false));
        }
        else
        {
            skipped.Add("stories260K: ../shared/models/stories260K (or $ASCENDCC_MODELS) is not there");
        }
        if (_shapes == Shapes.Llama)
        {
            AddLlamaPlans(plans);
        }

        var results = new List<ShapeResult>();
        var bandwidth = new ReadBandwidth();
        foreach (Plan plan in plans)
        {
            WeightPrecision[] candidates = [WeightPrecision.F32, WeightPrecision.BF16, WeightPrecision.Q8_0, WeightPrecision.Q4_0];
            if (!candidates.Any(p => options.Includes($"{plan.Shape} {p}")))
            {
                continue;
            }
            if (options.Quick && plan.Shape == "1.1B" && options.Filter is null)
            {
                skipped.Add("1.1B: not in a --quick run unless named (--filter 1.1B, or --filter \"1.1B Q4_0\" for one precision)");
                continue;
            }
            results.Add(RunShape(plan, options, bandwidth));
        }
        _report.Append(BuildReport(results, skipped, options, loadAtStart, LlamaSuite.LoadAverage(), wall.Elapsed, bandwidth.Bytes));
    }

    private static void AddLlamaPlans(List<Plan> plans)
    {
        plans.Add(new Plan("110M", "llama2.c's 110M shape (768 wide, 12 layers, 12 heads, MLP 2048, untied 32000-token classifier), seeded uniform ±1/√in", 8, 2, [512, 2048], 4,
            path => GgufModels.WriteRandomLlama(path, (LlamaConfig)ModelShape.Llama110M(FileContext).Config)));
        plans.Add(new Plan("1.1B", "TinyLlama 1.1B's shape (2048 wide, 22 layers, 32 heads / 4 KV heads, MLP 5632, 32000-token vocabulary, tied classifier as in the other suites: a CC package is one managed array of at most 2 GiB), seeded uniform ±1/√in", 4, 1, [512], 2,
            path => GgufModels.WriteRandomLlama(path, (LlamaConfig)ModelShape.Llama1B(FileContext).Config)));

    }

    private sealed class ShapeResult
    {
        public required string Shape { get; init; }
        public required string Description { get; init; }
        public required int[] Lengths { get; init; }
        public required int Rounds { get; init; }
        public required int WarmSteps { get; init; }
        public required int Steps { get; init; }
        public required List<RunnerInfo> Runners { get; init; }
        public required List<string> Notes { get; init; }
        public required List<double> Bandwidth { get; init; }
        public required string LlamaSettings { get; init; }

        /// <summary>Bytes of f16 KV cache a decode step reads per position it attends to (every layer's K and V).</summary>
        public required double KvBytesPerPosition { get; init; }

        public TimeSpan Elapsed { get; set; }

        /// <summary>
        /// Bytes a timed decode step at length <paramref name="length"/> streams besides the weights: its KV
        /// cache, read in full by every step (both engines keep it in f16), at the timed steps' mean position.
        /// </summary>
        public double KvBytes(int length) => KvBytesPerPosition * (length + WarmSteps + ((Steps + 1) / 2.0));

        /// <summary>[runner][length] prefill ms per round.</summary>
        public Dictionary<string, Dictionary<int, List<double>>> Prefill { get; } = [];

        /// <summary>[runner][length] per round, the timed decode steps' ms.</summary>
        public Dictionary<string, Dictionary<int, List<double[]>>> Decode { get; } = [];

        /// <summary>[runner][length] per round, the read bandwidth (GB/s) probed right before each timed decode step; empty when the plan does not probe.</summary>
        public Dictionary<string, Dictionary<int, List<double[]>>> StepBandwidth { get; } = [];

        /// <summary>[CC-off device runner] its decode step at the first length by operator (device clock): ms and launches per step.</summary>
        public Dictionary<string, Dictionary<string, (double Ms, double Launches)>> Profiles { get; } = [];
    }

    /// <param name="Name">Runner name.</param>
    /// <param name="Engine">"llama.cpp" or "device".</param>
    /// <param name="Precision">Weight precision (the file's and the device's).</param>
    /// <param name="Cc">"on", "off" or "—" for llama.cpp.</param>
    /// <param name="StreamedBytes">Matrix bytes a decode step streams.</param>
    /// <param name="LoadSeconds">Load time (CC on: package export, key release and load).</param>
    private sealed record RunnerInfo(string Name, string Engine, WeightPrecision Precision, string Cc, double StreamedBytes, double LoadSeconds);

    private static ShapeResult RunShape(Plan plan, BenchmarkOptions options, ReadBandwidth bandwidth)
    {
        var wall = Stopwatch.StartNew();
        int rounds = options.Quick ? plan.QuickRounds : plan.Rounds;
        int[] lengths = options.Quick ? plan.QuickLengths : plan.Lengths ?? [512, 2048];
        int warmSteps = options.Quick ? 1 : 2, steps = options.Quick ? plan.QuickSteps : 16;
        int context = lengths.Max() + warmSteps + steps + 8;
        var notes = new List<string>();
        string folder = Directory.CreateTempSubdirectory("ascendcc-llamacpp-").FullName;
        var runners = new List<(ISteppedRunner Runner, RunnerInfo Info)>();
        try
        {
            string writtenName = (plan.Written ?? WeightPrecision.F32).ToString();
            string f32 = Path.Combine(folder, $"{plan.Shape}-{writtenName.ToLowerInvariant()}.gguf");
            Console.WriteLine($"{plan.Shape}: writing the {writtenName} GGUF in {folder} ({new DriveInfo(folder).AvailableFreeSpace / 1e9:F1} GB free)…");
            var timer = Stopwatch.StartNew();
            LlamaConfig config = plan.WriteF32(f32);
            long f32Bytes = new FileInfo(f32).Length;
            notes.Add(string.Create(CultureInfo.InvariantCulture, $"{writtenName} file {Size(f32Bytes)}{(plan.Written is null ? "" : $" ({GgufModels.DescribeTypes(f32)})")}, written in {timer.Elapsed.TotalSeconds:F0} s"));

            bool blocks = config.ExpectedTensors().Where(t => t.Shape.Length == 2).All(t => t.Shape[1] % 32 == 0);
            // Q4_K (llama.cpp's Q4_K_M file, the common download) where every width is whole 256-value super-blocks.
            bool superBlocks = config.ExpectedTensors().Where(t => t.Shape.Length == 2).All(t => t.Shape[1] % 256 == 0);
            WeightPrecision[] precisions = blocks ? [WeightPrecision.BF16, WeightPrecision.Q8_0, WeightPrecision.Q4_0] : [WeightPrecision.F32, WeightPrecision.BF16];
            if (superBlocks)
            {
                precisions = [.. precisions, WeightPrecision.Q4_K];
            }
            if (plan.Written is { } written)
            {
                // The written file is the run: no quantizer pass (its F32 source never existed).
                precisions = [written];
            }
            precisions = [.. precisions.Where(p => options.Includes($"{plan.Shape} {p}"))];
            double quantizedBytes = precisions.Sum(p => p switch { WeightPrecision.BF16 => 0.5, WeightPrecision.Q8_0 => 0.27, WeightPrecision.Q4_0 or WeightPrecision.Q4_K => 0.16, _ => 0 }) * f32Bytes;
            long free = new DriveInfo(folder).AvailableFreeSpace;
            if (free < quantizedBytes + (1L << 30))
            {
                throw new IOException($"{folder}: {free / 1e9:F1} GB free, the quantized files need about {quantizedBytes / 1e9:F1} GB (+1 GB)");
            }
            var files = new Dictionary<WeightPrecision, string> { [plan.Written ?? WeightPrecision.F32] = f32 };
            foreach (WeightPrecision p in precisions.Where(p => !files.ContainsKey(p)))
            {
                string path = Path.Combine(folder, $"{plan.Shape}-{p.ToString().ToLowerInvariant()}.gguf");
                timer.Restart();
                if (!GgufModels.Quantize(f32, path, Ftype(p)))
                {
                    throw new InvalidOperationException($"{plan.Shape}: llama.cpp's quantizer refused {p}");
                }
                files[p] = path;
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"{p} file {Size(new FileInfo(path).Length)} ({GgufModels.DescribeTypes(path)}), quantized in {timer.Elapsed.TotalSeconds:F0} s"));
            }
            if (!blocks)
            {
                // Widths that are not whole 32-value blocks: neither the device's Q8_0/Q4_0 nor (we
                // check, it takes a moment) llama.cpp's quantizer can store them.
                foreach (WeightPrecision p in new[] { WeightPrecision.Q8_0, WeightPrecision.Q4_0 })
                {
                    string path = Path.Combine(folder, $"{plan.Shape}-{p.ToString().ToLowerInvariant()}-attempt.gguf");
                    bool ok = GgufModels.Quantize(f32, path, Ftype(p));
                    notes.Add($"{p}: no row: the MLP's input width {config.IntermediateSize} is not a multiple of 32, which the device's {p} needs; llama.cpp's quantizer "
                        + (ok ? $"wrote a file ({GgufModels.DescribeTypes(path)})" : $"refused the file (llama_model_quantize: ffn_down's 172 columns are not divisible by 32, \"no tensor type fallback is defined for type {p.ToString().ToLowerInvariant()}\")"));
                    File.Delete(path);
                }
            }
            if (!precisions.Contains(plan.Written ?? WeightPrecision.F32))
            {
                File.Delete(f32);
            }

            // Everything below stays resident together: llama.cpp's mapped file and two devices' copies of the weights per precision.
            double resident = precisions.Sum(p => 3.0 * new FileInfo(files[p]).Length);
            double available = MemAvailable();
            notes.Add(string.Create(CultureInfo.InvariantCulture, $"memory: about {Size(resident)} resident for the runners; {Size(available)} available before loading"));
            if (resident > available - (1.5 * (1L << 30)))
            {
                throw new InsufficientMemoryException(string.Create(CultureInfo.InvariantCulture,
                    $"{plan.Shape}: the runners need about {resident / 1e9:F1} GB, {available / 1e9:F1} GB is available; run fewer precisions at once (--filter \"{plan.Shape} Q4_0\")"));
            }

            // CC on first (its package export holds the weights twice for a moment), while the least is resident.
            foreach ((WeightPrecision p, string cc) in precisions.Select(p => (p, "on")).Concat(precisions.Select(p => (p, "off"))).Concat(precisions.Select(p => (p, "—"))))
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                timer.Restart();
                ISteppedRunner runner;
                string name;
                if (cc == "on")
                {
                    name = $"device {p} CC on";
                    using ModelShape shape = ModelShape.Open($"{plan.Shape} {p}", files[p]);
                    runner = new ConfidentialRunner(shape, p, ExecutionMode.Graph, context, lengths.Max(), name);
                }
                else if (cc == "off")
                {
                    name = $"device {p} CC off";
                    runner = new DeviceGgufRunner(files[p], p, context, lengths.Max(), name);
                }
                else
                {
                    name = $"llama.cpp {p}";
                    runner = new LlamaCppRunner(files[p], name, context, lengths.Max());
                }
                double bytes = cc == "—" ? GgufModels.StreamedBytes(files[p]) : GgufModels.StreamedBytes(config, p, GgufModels.KeptWider(files[p], p));
                runners.Add((runner, new RunnerInfo(name, cc == "—" ? "llama.cpp" : "device", p, cc, bytes, timer.Elapsed.TotalSeconds)));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{plan.Shape}: loaded {name} in {timer.Elapsed.TotalSeconds:F1} s"));
            }
            // Compared runners side by side: per precision llama.cpp, CC off, CC on.
            runners = [.. precisions.SelectMany(p => runners.Where(r => r.Info.Precision == p).OrderBy(r => r.Info.Cc switch { "—" => 0, "off" => 1, _ => 2 }))];
            string llamaSettings = runners.Select(r => r.Runner).OfType<LlamaCppRunner>().Select(r =>
                string.Create(CultureInfo.InvariantCulture, $"n_ctx {r.Parameters.ContextSize}, n_batch {r.Parameters.BatchSize}, n_ubatch {r.Parameters.UBatchSize}, flash attention {r.Parameters.FlashAttention?.ToString() ?? "default (auto)"}, KV cache {r.Parameters.TypeK?.ToString() ?? "default (f16)"}")).FirstOrDefault() ?? "";

            var rng = new Random(11);
            int[] pool = [1, .. Enumerable.Range(0, lengths.Max() - 1).Select(_ => rng.Next(3, config.VocabSize))];
            foreach ((ISteppedRunner runner, _) in runners)
            {
                runner.Run(pool[..16], 2);
            }

            var result = new ShapeResult
            {
                Shape = plan.Shape, Description = plan.Description, Lengths = lengths, Rounds = rounds, WarmSteps = warmSteps, Steps = steps,
                KvBytesPerPosition = 2.0 * config.NumHiddenLayers * config.NumKeyValueHeads * config.HeadDim * sizeof(ushort),
                Runners = [.. runners.Select(r => r.Info)], Notes = notes, Bandwidth = [], LlamaSettings = llamaSettings,
            };
            foreach ((_, RunnerInfo info) in runners)
            {
                result.Prefill[info.Name] = lengths.ToDictionary(l => l, _ => new List<double>());
                result.Decode[info.Name] = lengths.ToDictionary(l => l, _ => new List<double[]>());
                result.StepBandwidth[info.Name] = lengths.ToDictionary(l => l, _ => new List<double[]>());
            }
            int n = runners.Count;
            for (int round = 0; round < rounds; round++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Thread.Sleep(CoolDown);
                result.Bandwidth.Add(bandwidth.Measure());
                foreach (int length in lengths)
                {
                    int[] prompt = pool[..length];
                    for (int i = 0; i < n; i++)
                    {
                        (ISteppedRunner runner, RunnerInfo info) = runners[(i + round) % n];
                        // Finalizers too: a CC run leaves the data owner's crypto objects behind.
                        GC.Collect();
                        GC.WaitForPendingFinalizers();
                        Thread.Sleep(CoolDown);
                        result.Prefill[info.Name][length].Add(runner.Begin(prompt, warmSteps + steps));
                    }
                    var times = runners.ToDictionary(r => r.Info.Name, _ => new double[steps]);
                    var probes = runners.ToDictionary(r => r.Info.Name, _ => new double[steps]);
                    for (int step = 0; step < warmSteps + steps; step++)
                    {
                        for (int i = 0; i < n; i++)
                        {
                            (ISteppedRunner runner, RunnerInfo info) = runners[(i + step + round) % n];
                            // The probe comes after the pause, right before the step, so it meets the memory
                            // the step meets and none of the previous runner's wind-down (llama.cpp's workers
                            // spin a while before they sleep).
                            Thread.Sleep(StepPause);
                            double probe = plan.ProbeEachStep ? bandwidth.MeasureSlice() : double.NaN;
                            double ms = runner.Step();
                            if (step >= warmSteps)
                            {
                                times[info.Name][step - warmSteps] = ms;
                                probes[info.Name][step - warmSteps] = probe;
                            }
                        }
                    }
                    foreach ((ISteppedRunner runner, RunnerInfo info) in runners)
                    {
                        runner.End();
                        result.Decode[info.Name][length].Add(times[info.Name]);
                        if (plan.ProbeEachStep)
                        {
                            result.StepBandwidth[info.Name][length].Add(probes[info.Name]);
                        }
                    }
                }
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{plan.Shape} round {round + 1}/{rounds} ({wall.Elapsed.TotalMinutes:F1} min; read bandwidth {result.Bandwidth[^1]:F1} GB/s; load {LlamaSuite.LoadAverage()}): ")
                    + string.Join(", ", runners.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Info.Name} {Median(result.Decode[r.Info.Name][lengths[0]][^1]):F2}"))) + $" ms/token @{lengths[0]}");
            }
            // Where a CC-off decode step's time goes, by the device's operator clock (after the timed
            // rounds, so the clock's bookkeeping never touches them).
            foreach ((ISteppedRunner runner, RunnerInfo info) in runners)
            {
                if (runner is DeviceGgufRunner device)
                {
                    const int profiled = 8;
                    IReadOnlyDictionary<string, (double Milliseconds, long Launches)> ops = device.ClockedDecode(pool[..lengths[0]], 2, profiled);
                    result.Profiles[info.Name] = ops.ToDictionary(o => o.Key, o => (o.Value.Milliseconds / profiled, (double)o.Value.Launches / profiled));
                }
            }
            result.Elapsed = wall.Elapsed;
            return result;
        }
        finally
        {
            foreach ((ISteppedRunner runner, _) in runners)
            {
                runner.Dispose();
            }
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>MemAvailable from /proc/meminfo, in bytes (infinity where there is none).</summary>
    private static double MemAvailable()
    {
        try
        {
            string? line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal));
            return line is null ? double.PositiveInfinity : double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException)
        {
            return double.PositiveInfinity;
        }
    }

    private static LLamaFtype Ftype(WeightPrecision precision) => precision switch
    {
        WeightPrecision.BF16 => LLamaFtype.MOSTLY_BF16,
        WeightPrecision.Q8_0 => LLamaFtype.MOSTLY_Q8_0,
        WeightPrecision.Q4_0 => LLamaFtype.MOSTLY_Q4_0,
        WeightPrecision.Q4_K => LLamaFtype.MOSTLY_Q4_K_M,
        _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "llama.cpp writes the other precisions from the F32 file"),
    };

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>A runner's decode at <paramref name="length"/>: the median over rounds of each round's median step.</summary>
    private static double DecodeMs(ShapeResult s, string runner, int length) => Median(s.Decode[runner][length].Select(Median));

    /// <summary>
    /// <paramref name="other"/> ÷ <paramref name="ours"/> in decode at <paramref name="length"/>: per
    /// pair of interleaved steps (the two runners' i-th steps of a round), the median and quartiles.
    /// </summary>
    private static (double Median, double Low, double High) DecodeRatio(ShapeResult s, string other, string ours, int length)
    {
        double[] r = [.. s.Decode[other][length].Zip(s.Decode[ours][length]).SelectMany(p => p.First.Zip(p.Second, (o, q) => o / q)).Order()];
        return (Median(r), r[r.Length / 4], r[Math.Min(r.Length - 1, r.Length * 3 / 4)]);
    }

    /// <summary>The same for prefill, per round: the median and the range.</summary>
    private static (double Median, double Low, double High) PrefillRatio(ShapeResult s, string other, string ours, int length)
    {
        double[] r = [.. s.Prefill[other][length].Zip(s.Prefill[ours][length], (o, q) => o / q)];
        return (Median(r), r.Min(), r.Max());
    }

    private static string Size(double bytes) => bytes >= 1e9 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e9:F2} GB") : string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e6:F1} MB");

    /// <summary>A share as a whole percent, rounded down (so that a row shown at 80 % has reached 80 %).</summary>
    /// <summary>
    /// A runner's same-moment share of the read bandwidth at <paramref name="length"/>: per timed step, the
    /// GB/s it streamed ÷ the bandwidth probed right before it; the median over every step of every
    /// round (null where the shape was not probed).
    /// </summary>
    private static double? ProbedShare(ShapeResult s, RunnerInfo r, int length)
    {
        List<double[]> probes = s.StepBandwidth[r.Name][length];
        return probes.Count == 0 ? null : Median(probes.Zip(s.Decode[r.Name][length])
            .SelectMany(round => round.First.Zip(round.Second, (gbs, ms) => r.StreamedBytes / (ms * 1e-3) / 1e9 / gbs)));
    }

    /// <summary>Every read-bandwidth probe taken before a timed step of the shape, GB/s.</summary>
    private static List<double> StepProbes(ShapeResult s) =>
        [.. s.StepBandwidth.Values.SelectMany(byLength => byLength.Values).SelectMany(rounds => rounds).SelectMany(steps => steps)];

    private static string Percent(double share) => string.Create(CultureInfo.InvariantCulture, $"{Math.Floor(share * 100):F0} %");

    private static string Mark(double value, double target) => value >= target ? "✓" : "✗";

    private string BuildReport(List<ShapeResult> results, List<string> skipped, BenchmarkOptions options, string loadAtStart, string loadAtEnd, TimeSpan elapsed, long bandwidthBytes)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(c, $"# {Name}: the device vs llama.cpp on the same GGUF files{(_shapes == Shapes.Qwen3 ? " (architecture qwen3)" : "")}, BF16 / Q8_0 / Q4_0 / Q4_K(_M), CC on and off (interleaved)");
        sb.AppendLine();
        sb.Append(c, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC{(options.Quick ? " (--quick)" : "")}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, AI Cores {AiCoreGrid.Shared.CoreCount}, ")
            .Append(c, $"llama.cpp via LLamaSharp 0.30.0 (CPU backend, 2 threads for decode and prefill, the file memory-mapped, greedy pick in C#). ")
            .Append(c, $"Load average (1/5/15 min) at start {loadAtStart}, at end {loadAtEnd} (above 2 on these 2 cores, other work shared the machine); the whole run took {elapsed.TotalMinutes:F1} min. ")
            .AppendLine("The machine's speed drifts by tens of percent over minutes, so compare the ratios, which are taken within a round.");
        sb.AppendLine();
        sb.AppendLine("Method: per shape, an F32 GGUF is written (stories260K as llama.cpp's converter writes it, context_length raised from 512 to 4096 so that both engines take")
            .AppendLine("2048-token prompts; the random shapes with seeded uniform ±1/√in weights), llama.cpp's quantizer (llama_model_quantize, its default recipe) writes the")
            .AppendLine("BF16, Q8_0, Q4_0 and (where every width is whole 256-blocks) Q4_K_M files from it — the Q4_K_M file's Q6_K matrices the device keeps in Q8_0 (CheckpointPrecisions) —")
            .AppendLine("and each file is run by llama.cpp, the device with CC off (the GGUF loaded directly, `ModelCheckpoint.Open`) and the device")
            .AppendLine("with CC on (the model provider exports the same tensors as an encrypted package, releases its key to the attested device; the data owner seals each prompt),")
            .AppendLine("both in graph mode, KV cache f16. All runners of a shape are loaded side by side. A round: the read bandwidth (below), then for each L every runner's prefill")
            .AppendLine("of the same L-token prompt from position 0 to its greedy next token, one after another in an order rotated each round (300 ms apart), then the decode steps")
            .AppendLine("interleaved step by step (one step of each runner in a rotating order, 20 ms apart; context L to L + warm-up + steps). CC on times are the host's: from")
            .AppendLine("staging the sealed prompt to the first sealed token record, then from record to record. Decode = the median over rounds of each round's median step.")
            .AppendLine(c, $"Read bandwidth: 2 threads summing a {bandwidthBytes >> 20} MiB buffer (far above the 32 MiB L3) with vector loads, the best of 3 passes, at the start of every round;")
            .AppendLine("GB/s = matrix bytes a decode step streams (layers and classifier; an untied embedding is only gathered; the device's Q4_0 and Q4_K keep the classifier in Q8_0,")
            .AppendLine("llama.cpp's Q4_0 and Q4_K_M files have it in Q6_K; the device's Q4_K is 4.75 bits a weight) ÷ the decode time, which also reads the KV cache (L × the per-token KV bytes) and the activations; % bw = that ÷ the")
            .AppendLine("median of the rounds' bandwidth. For the random shapes a 256 MiB slice of the same buffer is also read (2 threads, one pass, a few ms) after")
            .AppendLine("the 20 ms pause, right before every decode step: % bw probed = the median over steps of (the step's GB/s ÷ the probe before it), a share taken within milliseconds, where the")
            .AppendLine("once-a-round figure can sit on the other side of one of the machine's minute-to-minute flips between about 40 and 70 GB/s.")
            .AppendLine("% bw with KV = (the matrix bytes + the f16 KV cache the step reads: every layer's K and V at the timed steps' mean position) ÷ the decode time ÷ the")
            .AppendLine("rounds' bandwidth: every byte the step must stream, for comparison (the target counts the weights).");
        foreach (string s in skipped)
        {
            sb.AppendLine().AppendLine("Not run: " + s + ".");
        }
        sb.AppendLine();

        // The targets, all shapes together.
        sb.AppendLine("## Targets");
        sb.AppendLine();
        sb.AppendLine("| target | shape | result |");
        sb.AppendLine("|---|---|---|");
        foreach (ShapeResult s in results)
        {
            var cells = new List<(string What, double Value)>();
            foreach (WeightPrecision p in s.Runners.Select(r => r.Precision).Distinct())
            {
                string llama = $"llama.cpp {p}", on = $"device {p} CC on";
                if (!s.Decode.ContainsKey(llama) || !s.Decode.ContainsKey(on))
                {
                    continue;
                }
                foreach (int l in s.Lengths)
                {
                    cells.Add(($"{p} prefill {l}", PrefillRatio(s, llama, on, l).Median));
                    cells.Add(($"{p} decode @{l}", DecodeRatio(s, llama, on, l).Median));
                }
            }
            if (cells.Count > 0)
            {
                var failed = cells.Where(x => x.Value < DeviceTarget).ToList();
                sb.Append(c, $"| device CC on ≥ {DeviceTarget:F1}× llama.cpp at every matching precision, prefill and decode | {s.Shape} | {cells.Count - failed.Count} of {cells.Count} ✓ (lowest {cells.Min(x => x.Value):F2}×)")
                    .Append(failed.Count > 0 ? "; ✗ " + string.Join(", ", failed.Select(x => string.Create(c, $"{x.What} {x.Value:F2}×"))) : "").AppendLine(" |");
            }
            foreach (int l in s.Lengths)
            {
                if (Best(s, l) is { } best)
                {
                    (double m, _, _) = DecodeRatio(s, best.Llama, best.Device, l);
                    sb.AppendLine(c, $"| device's best decode ≥ {BestTarget:F1}× llama.cpp's best{(s.Shape == "1.1B" ? "" : " (the target is at 1.1B)")} | {s.Shape} @{l} | {best.Llama} ÷ {best.Device}: {m:F2}× {Mark(m, BestTarget)} |");
                }
            }
            double bw = Median(s.Bandwidth);
            var shares = s.Runners.Where(r => r.Engine == "device").SelectMany(r => s.Lengths.Select(l => (r.Name, l, Share: r.StreamedBytes / (DecodeMs(s, r.Name, l) * 1e-3) / 1e9 / bw))).ToList();
            if (shares.Count > 0)
            {
                var top = shares.MaxBy(x => x.Share);
                sb.AppendLine(c, $"| device decode streams weights at ≥ {Percent(BandwidthTarget)} of the read bandwidth (median of the rounds' probes, {bw:F1} GB/s) | {s.Shape} | {shares.Count(x => x.Share >= BandwidthTarget)} of {shares.Count} rows ✓; best {top.Name} @{top.l} {Percent(top.Share)}, lowest {Percent(shares.Min(x => x.Share))}{(s.Shape == "stories260K" ? " (its 1 MB of weights sit in L2: not a memory-bound decode)" : "")} |");
                var probed = s.Runners.Where(r => r.Engine == "device").SelectMany(r => s.Lengths.Select(l => (r.Name, l, Share: ProbedShare(s, r, l)))).Where(x => x.Share is not null).Select(x => (x.Name, x.l, Share: x.Share!.Value)).ToList();
                if (probed.Count > 0)
                {
                    var best = probed.MaxBy(x => x.Share);
                    sb.AppendLine(c, $"| device decode streams weights at ≥ {Percent(BandwidthTarget)} of the read bandwidth probed right before each step (probes' median {Median(StepProbes(s)):F1} GB/s) | {s.Shape} | {probed.Count(x => x.Share >= BandwidthTarget)} of {probed.Count} rows ✓; best {best.Name} @{best.l} {Percent(best.Share)}, lowest {Percent(probed.Min(x => x.Share))} |");
                }
                // The same share counting every byte a step must stream: at @2048 a small model's f16 KV cache
                // outweighs its 4-bit weights, which the weights-only share leaves out.
                var withKv = s.Runners.Where(r => r.Engine == "device").SelectMany(r => s.Lengths.Select(l => (r.Name, l, Share: (r.StreamedBytes + s.KvBytes(l)) / (DecodeMs(s, r.Name, l) * 1e-3) / 1e9 / bw))).ToList();
                var topKv = withKv.MaxBy(x => x.Share);
                sb.AppendLine(c, $"| (for comparison, not the target) device decode streams weights and KV cache at ≥ {Percent(BandwidthTarget)} of the read bandwidth (median of the rounds' probes) | {s.Shape} | {withKv.Count(x => x.Share >= BandwidthTarget)} of {withKv.Count} rows; best {topKv.Name} @{topKv.l} {Percent(topKv.Share)}, lowest {Percent(withKv.Min(x => x.Share))} |");
            }
        }
        sb.AppendLine();

        foreach (ShapeResult s in results)
        {
            sb.AppendLine(c, $"## {s.Shape}");
            sb.AppendLine();
            sb.AppendLine(c, $"{s.Description}. {s.Rounds} round{(s.Rounds == 1 ? "" : "s")}, {s.WarmSteps} warm-up and {s.Steps} timed decode steps per runner and length; {s.Elapsed.TotalMinutes:F1} min with loading. llama.cpp: {s.LlamaSettings}.");
            sb.AppendLine();
            foreach (string note in s.Notes)
            {
                sb.AppendLine("- " + note + ".");
            }
            double bw = Median(s.Bandwidth);
            sb.AppendLine(c, $"- Read bandwidth: median of rounds {bw:F1} GB/s (rounds {s.Bandwidth.Min():F1}–{s.Bandwidth.Max():F1}).");
            List<double> stepProbes = StepProbes(s);
            bool probedShape = stepProbes.Count > 0;
            if (probedShape)
            {
                stepProbes.Sort();
                sb.AppendLine(c, $"- Read bandwidth probed right before each decode step: median {Median(stepProbes):F1} GB/s, tenth to ninetieth percentile {stepProbes[stepProbes.Count / 10]:F1}–{stepProbes[stepProbes.Count * 9 / 10]:F1} over {stepProbes.Count} probes.");
            }
            sb.AppendLine();
            sb.Append("| runner | precision | CC | MB / token | load s |");
            sb.Append(string.Concat(s.Lengths.Select(l => $" prefill {l} ms |")));
            sb.Append(string.Concat(s.Lengths.Select(l => $" decode @{l} ms/token |")));
            sb.AppendLine(string.Concat(s.Lengths.Select(l => $" GB/s @{l} | % bw @{l} |" + (probedShape ? $" % bw probed @{l} |" : "") + $" % bw with KV @{l} |")));
            sb.AppendLine("|---|---|---|---:|---:|" + string.Concat(Enumerable.Repeat("---:|", s.Lengths.Length * (probedShape ? 6 : 5))));
            foreach (RunnerInfo r in s.Runners)
            {
                sb.Append(c, $"| {r.Engine} | {r.Precision} | {r.Cc} | {r.StreamedBytes / 1e6:F1} | {r.LoadSeconds:F1} |");
                foreach (int l in s.Lengths)
                {
                    sb.Append(c, $" {Median(s.Prefill[r.Name][l]):F1} |");
                }
                foreach (int l in s.Lengths)
                {
                    sb.Append(c, $" {DecodeMs(s, r.Name, l):F2} |");
                }
                foreach (int l in s.Lengths)
                {
                    double gbs = r.StreamedBytes / (DecodeMs(s, r.Name, l) * 1e-3) / 1e9;
                    sb.Append(c, $" {gbs:F1} | {Percent(gbs / bw)}{(r.Engine == "device" ? " " + Mark(gbs / bw, BandwidthTarget) : "")} |");
                    if (probedShape && ProbedShare(s, r, l) is { } share)
                    {
                        sb.Append(c, $" {Percent(share)}{(r.Engine == "device" ? " " + Mark(share, BandwidthTarget) : "")} |");
                    }
                    sb.Append(c, $" {Percent((r.StreamedBytes + s.KvBytes(l)) / (DecodeMs(s, r.Name, l) * 1e-3) / 1e9 / bw)} |");
                }
                sb.AppendLine();
            }
            sb.AppendLine();
            if (s.Profiles.Count > 0)
            {
                sb.AppendLine(c, $"Device decode step @{s.Lengths[0]} by operator (CC off, the device's operator clock over 8 steps after the timed rounds; ms per step, the eight largest, then the rest). The linears are `linear`/`linear_fused`; the decode table's wall time per step less the clocked total is the host's share (task writing, launches, waits).");
                sb.AppendLine();
                string[] names = [.. s.Profiles.Keys];
                sb.AppendLine("| operator |" + string.Concat(names.Select(n => $" {n} |")));
                sb.AppendLine("|---|" + string.Concat(names.Select(_ => "---:|")));
                var order = s.Profiles.Values.SelectMany(p => p).GroupBy(o => o.Key).OrderByDescending(g => g.Max(o => o.Value.Ms)).Select(g => g.Key).ToList();
                foreach (string op in order.Take(8))
                {
                    sb.AppendLine($"| {op} |" + string.Concat(names.Select(n => s.Profiles[n].TryGetValue(op, out var v) ? string.Create(c, $" {v.Ms:F2} |") : " – |")));
                }
                sb.AppendLine($"| (the rest) |" + string.Concat(names.Select(n => string.Create(c, $" {s.Profiles[n].Where(o => !order.Take(8).Contains(o.Key)).Sum(o => o.Value.Ms):F2} |"))));
                sb.AppendLine($"| **clocked total** |" + string.Concat(names.Select(n => string.Create(c, $" **{s.Profiles[n].Sum(o => o.Value.Ms):F2}** |"))));
                sb.AppendLine($"| decode wall (table above) |" + string.Concat(names.Select(n => string.Create(c, $" {DecodeMs(s, n, s.Lengths[0]):F2} |"))));
                sb.AppendLine();
            }
            sb.AppendLine("Ratios, llama.cpp ÷ the device (> 1: the device is faster). Prefill: per round, the median (and the range over rounds); decode: per pair of")
                .AppendLine("interleaved steps (the two runners' i-th steps of a round), the median (and the middle half of the pairs). Target: CC on ≥ 1.0×; CC off for comparison.");
            sb.AppendLine();
            sb.Append("| ratio |");
            sb.Append(string.Concat(s.Lengths.Select(l => $" prefill {l} |")));
            sb.AppendLine(string.Concat(s.Lengths.Select(l => $" decode @{l} |")));
            sb.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---:|", s.Lengths.Length * 2)));
            foreach (WeightPrecision p in s.Runners.Select(r => r.Precision).Distinct())
            {
                foreach (string cc in new[] { "on", "off" })
                {
                    string llama = $"llama.cpp {p}", device = $"device {p} CC {cc}";
                    if (!s.Decode.ContainsKey(llama) || !s.Decode.ContainsKey(device))
                    {
                        continue;
                    }
                    sb.Append(c, $"| {llama} ÷ {device} |");
                    foreach (int l in s.Lengths)
                    {
                        var (m, lo, hi) = PrefillRatio(s, llama, device, l);
                        sb.Append(c, $" {m:F2}× ({lo:F2}–{hi:F2}){(cc == "on" ? " " + Mark(m, DeviceTarget) : "")} |");
                    }
                    foreach (int l in s.Lengths)
                    {
                        var (m, lo, hi) = DecodeRatio(s, llama, device, l);
                        sb.Append(c, $" {m:F2}× ({lo:F2}–{hi:F2}){(cc == "on" ? " " + Mark(m, DeviceTarget) : "")} |");
                    }
                    sb.AppendLine();
                }
            }
            // The best of each side (by median decode at each length): the target is the device's best ≥ 1.3× llama.cpp's best at 1.1B.
            foreach (string which in new[] { "any", "on" })
            {
                var best = s.Lengths.Select(l => (l, Best: Best(s, l, which == "on"))).Where(x => x.Best is not null).ToList();
                if (best.Count == 0)
                {
                    continue;
                }
                sb.Append(c, $"| llama.cpp's best ÷ the device's best{(which == "on" ? " with CC on" : "")}: {string.Join("; ", best.Select(x => $"@{x.l} {x.Best!.Value.Llama} ÷ {x.Best.Value.Device}"))} |");
                sb.Append(string.Concat(s.Lengths.Select(_ => " |")));
                foreach (int l in s.Lengths)
                {
                    if (Best(s, l, which == "on") is { } b)
                    {
                        var (m, lo, hi) = DecodeRatio(s, b.Llama, b.Device, l);
                        sb.Append(c, $" {m:F2}× ({lo:F2}–{hi:F2}) {Mark(m, BestTarget)} |");
                    }
                    else
                    {
                        sb.Append(" |");
                    }
                }
                sb.AppendLine();
            }
            sb.AppendLine();
            int first = s.Lengths[0];
            sb.AppendLine(c, $"Per round: read bandwidth GB/s, then each runner's decode @{first} ms/token (the round's median step):");
            sb.AppendLine();
            sb.AppendLine("| round | GB/s | " + string.Join(" | ", s.Runners.Select(r => r.Name)) + " |");
            sb.AppendLine("|---:|---:|" + string.Concat(s.Runners.Select(_ => "---:|")));
            for (int round = 0; round < s.Rounds; round++)
            {
                sb.Append(c, $"| {round + 1} | {s.Bandwidth[round]:F1} | ");
                sb.AppendJoin(" | ", s.Runners.Select(r => Median(s.Decode[r.Name][first][round]).ToString("F2", c)));
                sb.AppendLine(" |");
            }
            sb.AppendLine();
        }
        return sb.ToString();
    }

    /// <summary>llama.cpp's and the device's fastest runners in decode at <paramref name="length"/> (the device's with CC on only, if asked).</summary>
    private static (string Llama, string Device)? Best(ShapeResult s, int length, bool ccOnOnly = false)
    {
        RunnerInfo? llama = s.Runners.Where(r => r.Engine == "llama.cpp").MinBy(r => DecodeMs(s, r.Name, length));
        RunnerInfo? device = s.Runners.Where(r => r.Engine == "device" && (!ccOnOnly || r.Cc == "on")).MinBy(r => DecodeMs(s, r.Name, length));
        return llama is null || device is null ? null : (llama.Name, device.Name);
    }
}
