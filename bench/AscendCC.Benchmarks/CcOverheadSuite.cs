using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using AscendCC.Device.AiCore;
using AscendCC.Device.Scheduler;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using TorchSharp;

namespace AscendCC.Benchmarks;

/// <summary>
/// The cost of confidential computing, measured so that a percent or less can be told apart from
/// drift: the CC-off and CC-on devices (and the TorchSharp baseline) are loaded side by side and run
/// in rounds, in a new random order every round and after a pause, so slow and fast periods of a
/// shared 2-core machine fall on every runner alike. Each round gives one paired overhead per mode; the report gives the
/// median and the spread of those pairs rather than one difference of two separate runs.
/// </summary>
/// <param name="name">Suite name (and report file name).</param>
/// <param name="model">What is measured, for the description.</param>
/// <param name="shapeFor">The model shape for a context of the given length.</param>
/// <param name="torchBaseline">
/// Also run TorchSharp's CPU model as the × torch baseline. Only the Llama family has a TorchSharp
/// model with a KV cache here; without one a decode step would recompute the whole sequence, which is
/// no baseline at all, so the GPT-Neo variant leaves the column out.
/// </param>
internal sealed class CcOverheadSuite(string name, string model, Func<int, ModelShape> shapeFor, bool torchBaseline) : IBenchmarkSuite, IReportingSuite
{
    private const int WarmSteps = 2;
    private readonly StringBuilder _report = new();

    /// <summary>The Llama 110M suite.</summary>
    public CcOverheadSuite() : this("ccoverhead", "110M bf16", ModelShape.Llama110M, torchBaseline: true)
    {
    }

    public string Name => name;

    public string Description => $"CC on vs off, {model}, KV cache {AscendCC.Runtime.Inference.CausalLMOptions.DefaultKvCachePrecision}, runners interleaved round by round (paired overhead)";

    public string ReportFileName => $"{name}.md";

    public string Report => _report.ToString();

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        torch.set_num_threads(AiCoreGrid.Shared.CoreCount);
        int[] lengths = [512, 2048];
        int rounds = options.Quick ? 2 : 13, decodeSteps = options.Quick ? 6 : 16;
        int interleavedSteps = options.Quick ? 20 : 300;
        int context = lengths[^1] + Math.Max(WarmSteps + decodeSteps, WarmSteps + interleavedSteps) + 8;
        string loadAtStart = LlamaSuite.LoadAverage();
        using ModelShape shape = shapeFor(context);
        var runners = new List<ILlamaRunner>();
        // Runs that are compared with each other sit side by side in one block (CC off, CC on and, for
        // graph, the control twin): this VM's speed drifts by tens of percent over minutes, so a pair
        // split by a 7-second TorchSharp prefill measures the drift as much as the difference.
        var blocks = new List<ILlamaRunner[]>();
        try
        {
            if (torchBaseline)
            {
                var torchRunner = new TorchRunner(shape);
                runners.Add(torchRunner);
                blocks.Add([torchRunner]);
            }
            foreach (ExecutionMode mode in new[] { ExecutionMode.Graph, ExecutionMode.Eager })
            {
                if (options.Includes(mode.ToString()))
                {
                    var block = new List<ILlamaRunner>
                    {
                        new DeviceRunner(shape, WeightPrecision.BF16, mode, context, lengths[^1]) { ClockOperators = true },
                        new ConfidentialRunner(shape, WeightPrecision.BF16, mode, context, lengths[^1]) { ClockOperators = true },
                    };
                    if (mode == ExecutionMode.Graph)
                    {
                        // The control: a second, identical CC-off device. Its "overhead" against the
                        // first is what this method measures when nothing differs — the floor below
                        // which a CC overhead cannot be told from noise and memory layout.
                        block.Add(new ControlRunner(new DeviceRunner(shape, WeightPrecision.BF16, mode, context, lengths[^1]) { ClockOperators = true }));
                        // And a twin of the CC-on device: identical devices differ by several percent
                        // in decode, stably, by where their memory landed (see the step-against-step
                        // table), so each side is measured on two instances.
                        block.Add(new ControlRunner(new ConfidentialRunner(shape, WeightPrecision.BF16, mode, context, lengths[^1]) { ClockOperators = true }));
                    }
                    runners.AddRange(block);
                    blocks.Add([.. block]);
                }
            }
            var rng = new Random(11);
            var shuffle = new Random(12);
            int[] pool = [.. Enumerable.Range(0, context).Select(_ => rng.Next(3, shape.Config.VocabSize))];
            foreach (ILlamaRunner r in runners)
            {
                r.Run(pool[..64], 2);
            }
            // samples[runner][length] = (prefill ms per round, decode ms per token per round)
            var prefill = runners.ToDictionary(r => r.Name, _ => lengths.ToDictionary(l => l, _ => new List<double>()));
            var decode = runners.ToDictionary(r => r.Name, _ => lengths.ToDictionary(l => l, _ => new List<double>()));
            var promptCrypto = lengths.ToDictionary(l => l, _ => new List<double>());
            var tokenCrypto = new List<double>();
            var sessionClose = lengths.ToDictionary(l => l, _ => new List<double>());
            var clocked = lengths.ToDictionary(l => l, _ => new List<ClockedRun>());
            for (int round = 0; round < rounds; round++)
            {
                foreach (int length in lengths)
                {
                    // A fresh random order each round, of the blocks and inside each block: with a fixed
                    // order the same runner would keep following TorchSharp, whose OpenMP threads spin
                    // on after their work, or keep running second in its block.
                    ILlamaRunner[][] blockOrder = [.. blocks];
                    shuffle.Shuffle(blockOrder);
                    foreach (ILlamaRunner[] block in blockOrder)
                    {
                        ILlamaRunner[] order = [.. block];
                        shuffle.Shuffle(order);
                        foreach (ILlamaRunner runner in order)
                        {
                            // Finalizers too: a CC run leaves the data owner's crypto objects (OpenSSL handles)
                            // behind, and their finalizers must not run during the next timed run.
                            GC.Collect();
                            GC.WaitForPendingFinalizers();
                            GC.Collect();
                            Thread.Sleep(300);
                            double[] t = runner.Run(pool[..length], WarmSteps + decodeSteps);
                            prefill[runner.Name][length].Add(t[0]);
                            decode[runner.Name][length].Add(Median([.. t[(1 + WarmSteps)..]]));
                            if (runner is ConfidentialRunner cc)
                            {
                                promptCrypto[length].Add(cc.PromptCryptoMs);
                                tokenCrypto.Add(cc.TokenCryptoMs);
                                sessionClose[length].Add(cc.SessionCloseMs);
                            }
                            if (runner is IClockedRunner { ClockOperators: true } c && runner.Name.EndsWith("Graph", StringComparison.Ordinal))
                            {
                                clocked[length].Add(new ClockedRun(runner.Name, t[0], t[1..].Sum(), WarmSteps + decodeSteps, c.PrefillOperators, c.DecodeOperators));
                            }
                        }
                    }
                }
                Console.WriteLine($"round {round + 1}/{rounds} done (load {LlamaSuite.LoadAverage()})");
            }
            Dictionary<int, Dictionary<string, double[]>> stepped = Interleave(blocks, lengths, pool, interleavedSteps, shuffle);
            Write(runners, lengths, rounds, decodeSteps, prefill, decode, loadAtStart);
            WriteInterleaved(lengths, stepped, interleavedSteps);
            WriteCryptoAccounting(runners, lengths, prefill, decode, promptCrypto, tokenCrypto, sessionClose);
            WriteDeviceAccounting(lengths, clocked);
        }
        finally
        {
            foreach (ILlamaRunner r in runners)
            {
                r.Dispose();
            }
        }
    }

    /// <summary>
    /// Decode, step against step: the graph block's runners (CC off, CC on, the control twin) each
    /// start a generation after the same prompt, then take their decode steps in turns — one step
    /// each, in a new random order every turn — so the i-th steps of all runners sit at the same
    /// position, milliseconds apart, and share whatever the machine was doing then. Each turn gives
    /// one paired ratio; hundreds of them bound the median overhead far more tightly than a handful
    /// of separate runs can.
    /// </summary>
    private static Dictionary<int, Dictionary<string, double[]>> Interleave(List<ILlamaRunner[]> blocks, int[] lengths, int[] pool, int steps, Random shuffle)
    {
        var result = new Dictionary<int, Dictionary<string, double[]>>();
        ILlamaRunner[]? graph = blocks.FirstOrDefault(b => b.Length > 1 && b.All(r => r is ISteppedRunner) && b[0].Name.EndsWith("Graph", StringComparison.Ordinal));
        if (graph is null)
        {
            return result;
        }
        ISteppedRunner[] runners = [.. graph.Cast<ISteppedRunner>()];
        foreach (int length in lengths)
        {
            var times = runners.ToDictionary(r => r.Name, _ => new double[steps]);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            foreach (ISteppedRunner r in runners)
            {
                r.Begin(pool[..length], WarmSteps + steps);
                for (int w = 0; w < WarmSteps; w++)
                {
                    r.Step();
                }
            }
            ISteppedRunner[] order = [.. runners];
            for (int i = 0; i < steps; i++)
            {
                shuffle.Shuffle(order);
                foreach (ISteppedRunner r in order)
                {
                    times[r.Name][i] = r.Step();
                }
            }
            foreach (ISteppedRunner r in runners)
            {
                r.End();
            }
            result[length] = times;
            Console.WriteLine($"interleaved decode at {length}: {steps} turns done (load {LlamaSuite.LoadAverage()})");
        }
        return result;
    }

    private void WriteInterleaved(int[] lengths, Dictionary<int, Dictionary<string, double[]>> stepped, int steps)
    {
        if (stepped.Count == 0)
        {
            return;
        }
        var inv = CultureInfo.InvariantCulture;
        _report.AppendLine();
        _report.Append(inv, $"Decode, step against step ({steps} turns per context; in each turn every graph device decodes one token at the same position, in a random order). ");
        _report.AppendLine("Each device's median step, and its paired overhead against the first CC-off device: per turn its step ÷ that device's step − 1, median over the turns with a 95% bootstrap interval (2000 resamples of the turns). " +
            "Identical devices (the twins) show how much two instances differ by where their memory landed; the last row per context compares the two CC-on devices together with the two CC-off devices together, turn by turn.");
        _report.AppendLine();
        _report.AppendLine("| L (context at start) | device | median step ms | paired vs first CC off, median | 95% interval |");
        _report.AppendLine("|---:|---|---:|---:|---|");
        foreach (int length in lengths.Where(stepped.ContainsKey))
        {
            Dictionary<string, double[]> t = stepped[length];
            string off = t.Keys.First(k => k.StartsWith("CC off", StringComparison.Ordinal));
            foreach ((string name, double[] times) in t)
            {
                if (name == off)
                {
                    _report.AppendLine(inv, $"| {length} | {name} | {Median([.. times]):F3} | (reference) | |");
                    continue;
                }
                double[] ratios = [.. times.Zip(t[off], (a, b) => ((a / b) - 1) * 100)];
                (double lo, double hi) = BootstrapMedian(ratios, 2000, new Random(length));
                _report.AppendLine(inv, $"| {length} | {name} | {Median([.. times]):F3} | {Median([.. ratios]):+0.00;-0.00}% | {lo:+0.00;-0.00}% … {hi:+0.00;-0.00}% |");
            }
            string[] onNames = [.. t.Keys.Where(k => k.Contains("CC on", StringComparison.Ordinal))];
            string[] offNames = [.. t.Keys.Where(k => k.Contains("CC off", StringComparison.Ordinal))];
            if (onNames.Length > 0 && offNames.Length > 0)
            {
                double[] arms = [.. Enumerable.Range(0, steps).Select(i => ((onNames.Average(n => t[n][i]) / offNames.Average(n => t[n][i])) - 1) * 100)];
                (double lo, double hi) = BootstrapMedian(arms, 2000, new Random(length + 1));
                _report.AppendLine(inv, $"| {length} | **{onNames.Length} CC-on devices vs {offNames.Length} CC-off devices** | | {Median([.. arms]):+0.00;-0.00}% | {lo:+0.00;-0.00}% … {hi:+0.00;-0.00}% |");
            }
        }
        Console.WriteLine(_report.ToString());
    }

    private static (double Low, double High) BootstrapMedian(double[] values, int resamples, Random random)
    {
        var medians = new double[resamples];
        var sample = new List<double>(values.Length);
        for (int r = 0; r < resamples; r++)
        {
            sample.Clear();
            for (int i = 0; i < values.Length; i++)
            {
                sample.Add(values[random.Next(values.Length)]);
            }
            medians[r] = Median(sample);
        }
        Array.Sort(medians);
        return (medians[(int)(0.025 * resamples)], medians[(int)(0.975 * resamples) - 1]);
    }

    private void Write(List<ILlamaRunner> runners, int[] lengths, int rounds, int decodeSteps,
        Dictionary<string, Dictionary<int, List<double>>> prefill, Dictionary<string, Dictionary<int, List<double>>> decode, string loadAtStart)
    {
        var sb = _report.Clear();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(inv, $"# ccoverhead: {Description}");
        sb.AppendLine();
        sb.AppendLine(inv, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {RuntimeInformation.FrameworkDescription}, torch threads {torch.get_num_threads()}; " +
            $"{rounds} rounds; the runners compared with each other run side by side in one block, blocks and runners in a block shuffled each round; 300 ms pause and a full GC with finalizers before each run; decode = median of {decodeSteps} tokens after {WarmSteps} warm-up tokens at context L; load average at start {loadAtStart}, at end {LlamaSuite.LoadAverage()}.");
        sb.AppendLine();
        sb.AppendLine("Medians over rounds. Paired overhead: for each round, CC on ÷ CC off − 1 of the same mode; the median of those, and the middle half (25th–75th percentile) of them. " +
            "The control row pairs two identical CC-off graph devices the same way: its spread is the floor of this measurement.");
        sb.AppendLine();
        sb.AppendLine("| runner | L | prefill ms | × torch | decode ms/tok | × torch |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|");
        string? torchName = runners.FirstOrDefault(r => r.IsBaseline)?.Name;
        foreach (int length in lengths)
        {
            double tp = torchName is null ? double.NaN : Median(prefill[torchName][length]), td = torchName is null ? double.NaN : Median(decode[torchName][length]);
            foreach (ILlamaRunner r in runners)
            {
                double p = Median(prefill[r.Name][length]), d = Median(decode[r.Name][length]);
                string pt = torchName is null ? "—" : $"{(tp / p).ToString("F2", inv)}×", dt = torchName is null ? "—" : $"{(td / d).ToString("F2", inv)}×";
                sb.AppendLine(inv, $"| {r.Name} | {length} | {p:F1} | {pt} | {d:F2} | {dt} |");
            }
        }
        sb.AppendLine();
        sb.AppendLine("| mode | L | prefill overhead (median) | middle half | 95% interval of the median | decode overhead (median) | middle half |");
        sb.AppendLine("|---|---:|---:|---|---|---:|---|");
        foreach (ILlamaRunner on in runners.Where(r => r.Name.StartsWith("CC on", StringComparison.Ordinal) || r is ControlRunner))
        {
            // A twin is compared with the first instance of its own kind (A/A); a CC-on device with the CC-off one.
            string offName = on is ControlRunner control ? control.Inner.Name : on.Name.Replace("CC on", "CC off", StringComparison.Ordinal);
            foreach (int length in lengths)
            {
                List<double> p = Paired(prefill[on.Name][length], prefill[offName][length]);
                List<double> d = Paired(decode[on.Name][length], decode[offName][length]);
                (double lo, double hi) = BootstrapMedian([.. p], 2000, new Random(length));
                sb.AppendLine(inv, $"| {(on is ControlRunner ? on.Name : on.Name["CC on ".Length..])} | {length} | {Median(p):+0.00;-0.00}% | {Quantile(p, 0.25):+0.00;-0.00}% … {Quantile(p, 0.75):+0.00;-0.00}% | {lo:+0.00;-0.00}% … {hi:+0.00;-0.00}% | {Median(d):+0.00;-0.00}% | {Quantile(d, 0.25):+0.00;-0.00}% … {Quantile(d, 0.75):+0.00;-0.00}% |");
            }
        }
        Console.WriteLine(sb.ToString());
    }

    /// <summary>
    /// The work CC adds to a step, accounted directly instead of as a difference of two noisy times:
    /// the AES-GCM open of the prompt record (once per prompt) and the seal of one token record (once
    /// per step), timed at the data owner on records of exactly the sizes the device handles.
    /// </summary>
    private void WriteCryptoAccounting(List<ILlamaRunner> runners, int[] lengths, Dictionary<string, Dictionary<int, List<double>>> prefill,
        Dictionary<string, Dictionary<int, List<double>>> decode, Dictionary<int, List<double>> promptCrypto, List<double> tokenCrypto,
        Dictionary<int, List<double>> sessionClose)
    {
        ILlamaRunner? off = runners.FirstOrDefault(r => r.Name == "CC off BF16 Graph");
        if (off is null || tokenCrypto.Count == 0)
        {
            return;
        }
        var inv = CultureInfo.InvariantCulture;
        double token = Median(tokenCrypto);
        _report.AppendLine();
        _report.AppendLine("CC work per step, accounted directly (the same AES-GCM records, timed at the data owner; the device's prompt_open and token_seal do the same work per step, and the host only relays the fixed-size record):");
        _report.AppendLine();
        _report.AppendLine("| L | prompt record open, ms | share of CC-off prefill | token record seal, ms | share of CC-off decode step | session close (scrubs the context), ms, once per conversation | share of CC-off prefill |");
        _report.AppendLine("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int length in lengths)
        {
            double prompt = Median(promptCrypto[length]);
            double p = Median(prefill[off.Name][length]), d = Median(decode[off.Name][length]);
            double close = Median(sessionClose[length]);
            _report.AppendLine(inv, $"| {length} | {prompt:F3} | {prompt / p * 100:F3}% | {token:F4} | {token / d * 100:F3}% | {close:F2} | {close / p * 100:F2}% |");
        }
        Console.WriteLine(_report.ToString());
    }

    /// <summary>
    /// The CC work inside the timed runs themselves, from each graph device's own operator clock: the
    /// confidential operators (the prompt record's open, the token record's seal) against the step's
    /// wall time, and everything that is not a kernel (the host's submission, DMA and the scheduler,
    /// where CC adds its firmware checks) as wall time minus all kernels — for CC off and CC on alike,
    /// so the CC-on device's extra work outside its kernels can be read as a difference of that column.
    /// </summary>
    private void WriteDeviceAccounting(int[] lengths, Dictionary<int, List<ClockedRun>> clocked)
    {
        if (clocked.Values.All(c => c.Count == 0))
        {
            return;
        }
        var inv = CultureInfo.InvariantCulture;
        _report.AppendLine();
        _report.AppendLine("Inside the timed graph runs, from each device's own clock (medians over rounds). CC work = the CC operators " +
            $"({string.Join(", ", CcOperators)}) and the firmware's checks of every task and model execution, which only a CC-on device runs; " +
            "host DMA = copies between HBM and the host's staging buffer; the rest = wall − everything clocked: the host's submission and wake-ups, the scheduler between tasks.");
        _report.AppendLine();
        _report.AppendLine("| L | step | runner | wall ms | kernels ms | CC operators ms | firmware checks ms | **CC work, share of wall** | host DMA ms | rest ms |");
        _report.AppendLine("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int length in lengths)
        {
            foreach (bool prefillStep in new[] { true, false })
            {
                foreach (IGrouping<string, ClockedRun> runs in clocked[length].GroupBy(r => r.Runner).OrderBy(g => g.Key, StringComparer.Ordinal))
                {
                    double PerStep(ClockedRun r, Func<IReadOnlyDictionary<string, (double Milliseconds, long Launches)>, double> part) =>
                        prefillStep ? part(r.Prefill) : part(r.Decode) / r.DecodeSteps;
                    double wall = Median([.. runs.Select(r => prefillStep ? r.PrefillWall : r.DecodeWall / r.DecodeSteps)]);
                    double kernels = Median([.. runs.Select(r => PerStep(r, ops => Total(ops) - Of(ops, OperatorClock.FirmwareChecks) - Of(ops, OperatorClock.HostDma)))]);
                    double cc = Median([.. runs.Select(r => PerStep(r, Cc))]);
                    double checks = Median([.. runs.Select(r => PerStep(r, ops => Of(ops, OperatorClock.FirmwareChecks)))]);
                    double work = Median([.. runs.Select(r => PerStep(r, ops => Cc(ops) + Of(ops, OperatorClock.FirmwareChecks)) / (prefillStep ? r.PrefillWall : r.DecodeWall / r.DecodeSteps))]) * 100;
                    double dma = Median([.. runs.Select(r => PerStep(r, ops => Of(ops, OperatorClock.HostDma)))]);
                    double rest = Median([.. runs.Select(r => (prefillStep ? r.PrefillWall : r.DecodeWall / r.DecodeSteps) - PerStep(r, Total))]);
                    _report.AppendLine(inv, $"| {length} | {(prefillStep ? "prefill" : "decode step")} | {runs.Key} | {wall:F2} | {kernels:F2} | {cc:F4} | {checks:F4} | **{work:F3}%** | {dma:F4} | {rest:F3} |");
                }
            }
        }
        // Where a difference between the devices sits: each operator's prefill time, CC off vs CC on.
        _report.AppendLine();
        _report.AppendLine("Prefill per operator, device ms (medians over rounds):");
        _report.AppendLine();
        _report.AppendLine("| L | operator | " + string.Join(" | ", clocked[lengths[0]].Select(r => r.Runner).Distinct().Order(StringComparer.Ordinal)) + " |");
        _report.AppendLine("|---:|---|" + string.Concat(Enumerable.Repeat("---:|", clocked[lengths[0]].Select(r => r.Runner).Distinct().Count())));
        foreach (int length in lengths)
        {
            var byRunner = clocked[length].GroupBy(r => r.Runner).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
            foreach (string op in clocked[length].SelectMany(r => r.Prefill.Keys).Distinct().Order(StringComparer.Ordinal))
            {
                IEnumerable<string> cells = byRunner.Select(g => Median([.. g.Select(r => r.Prefill.TryGetValue(op, out var v) ? v.Milliseconds : 0)]).ToString("F2", inv));
                _report.AppendLine(inv, $"| {length} | {op} | {string.Join(" | ", cells)} |");
            }
        }
        Console.WriteLine(_report.ToString());

        static double Total(IReadOnlyDictionary<string, (double Milliseconds, long Launches)> ops) => ops.Values.Sum(v => v.Milliseconds);
        static double Of(IReadOnlyDictionary<string, (double Milliseconds, long Launches)> ops, string name) => ops.TryGetValue(name, out var v) ? v.Milliseconds : 0;
        static double Cc(IReadOnlyDictionary<string, (double Milliseconds, long Launches)> ops) =>
            CcOperators.Sum(name => ops.TryGetValue(name, out var v) ? v.Milliseconds : 0);
    }

    /// <summary>The operators that exist only because CC is on (the weights' unlock runs at load, not per step).</summary>
    private static readonly string[] CcOperators = ["prompt_open", "token_seal"];

    /// <summary>One CC-on run: its wall times and the device's operator clock for its prefill and its decode steps.</summary>
    private sealed record ClockedRun(string Runner, double PrefillWall, double DecodeWall, int DecodeSteps,
        IReadOnlyDictionary<string, (double Milliseconds, long Launches)> Prefill, IReadOnlyDictionary<string, (double Milliseconds, long Launches)> Decode);

    private static List<double> Paired(List<double> on, List<double> off) => [.. on.Zip(off, (a, b) => ((a / b) - 1) * 100)];

    private static double Median(List<double> values) => Quantile(values, 0.5);

    private static double Quantile(List<double> values, double q)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }
        var sorted = values.Order().ToArray();
        double at = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(at), hi = (int)Math.Ceiling(at);
        return sorted[lo] + ((sorted[hi] - sorted[lo]) * (at - lo));
    }
}

/// <summary>A second instance of a runner under another name, as an A/A control.</summary>
internal sealed class ControlRunner(ILlamaRunner inner) : ISteppedRunner
{
    public ILlamaRunner Inner { get; } = inner;

    public string Name => $"control: {Inner.Name} vs a twin";

    public bool IsBaseline => false;

    public int WeightBytes => Inner.WeightBytes;

    public AscendCC.Device.DeviceMemoryInfo? Hbm => Inner.Hbm;

    public double[] Run(int[] prompt, int decodeSteps) => Inner.Run(prompt, decodeSteps);

    public double Begin(int[] prompt, int maxSteps) => ((ISteppedRunner)Inner).Begin(prompt, maxSteps);

    public double Step() => ((ISteppedRunner)Inner).Step();

    public void End() => ((ISteppedRunner)Inner).End();

    public void Dispose() => Inner.Dispose();
}
