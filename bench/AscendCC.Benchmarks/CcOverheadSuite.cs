using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using AscendCC.Device.AiCore;
using AscendCC.Runtime.Llama;
using TorchSharp;

namespace AscendCC.Benchmarks;

/// <summary>
/// The cost of confidential computing, measured so that a percent or less can be told apart from
/// drift: the CC-off and CC-on devices (and the TorchSharp baseline) are loaded side by side and run
/// in rounds, in a new random order every round and after a pause, so slow and fast periods of a
/// shared 2-core machine fall on every runner alike. Each round gives one paired overhead per mode; the report gives the
/// median and the spread of those pairs rather than one difference of two separate runs.
/// </summary>
internal sealed class CcOverheadSuite : IBenchmarkSuite, IReportingSuite
{
    private const int WarmSteps = 2;
    private readonly StringBuilder _report = new();

    public string Name => "ccoverhead";

    public string Description => "CC on vs off, 110M bf16, runners interleaved round by round (paired overhead)";

    public string ReportFileName => "ccoverhead.md";

    public string Report => _report.ToString();

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        torch.set_num_threads(AiCoreGrid.Shared.CoreCount);
        int[] lengths = [512, 2048];
        int rounds = options.Quick ? 2 : 9, decodeSteps = options.Quick ? 6 : 16;
        int context = lengths[^1] + WarmSteps + decodeSteps + 8;
        string loadAtStart = LlamaSuite.LoadAverage();
        using LlamaShape shape = LlamaShape.Llama110M(context);
        var runners = new List<ILlamaRunner>();
        // Runs that are compared with each other sit side by side in one block (CC off, CC on and, for
        // graph, the control twin): this VM's speed drifts by tens of percent over minutes, so a pair
        // split by a 7-second TorchSharp prefill measures the drift as much as the difference.
        var blocks = new List<ILlamaRunner[]>();
        try
        {
            var torchRunner = new TorchRunner(shape);
            runners.Add(torchRunner);
            blocks.Add([torchRunner]);
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
            Write(runners, lengths, rounds, decodeSteps, prefill, decode, loadAtStart);
            WriteCryptoAccounting(runners, lengths, prefill, decode, promptCrypto, tokenCrypto);
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
        string torchName = runners.First(r => r.IsBaseline).Name;
        foreach (int length in lengths)
        {
            double tp = Median(prefill[torchName][length]), td = Median(decode[torchName][length]);
            foreach (ILlamaRunner r in runners)
            {
                double p = Median(prefill[r.Name][length]), d = Median(decode[r.Name][length]);
                sb.AppendLine(inv, $"| {r.Name} | {length} | {p:F1} | {tp / p:F2}× | {d:F2} | {td / d:F2}× |");
            }
        }
        sb.AppendLine();
        sb.AppendLine("| mode | L | prefill overhead (median) | middle half | decode overhead (median) | middle half |");
        sb.AppendLine("|---|---:|---:|---|---:|---|");
        foreach (ILlamaRunner on in runners.Where(r => r.Name.StartsWith("CC on", StringComparison.Ordinal) || r is ControlRunner))
        {
            string offName = on is ControlRunner control ? control.Inner.Name : on.Name.Replace("CC on", "CC off", StringComparison.Ordinal);
            foreach (int length in lengths)
            {
                List<double> p = Paired(prefill[on.Name][length], prefill[offName][length]);
                List<double> d = Paired(decode[on.Name][length], decode[offName][length]);
                sb.AppendLine(inv, $"| {(on is ControlRunner ? on.Name : on.Name["CC on ".Length..])} | {length} | {Median(p):+0.00;-0.00}% | {Quantile(p, 0.25):+0.00;-0.00}% … {Quantile(p, 0.75):+0.00;-0.00}% | {Median(d):+0.00;-0.00}% | {Quantile(d, 0.25):+0.00;-0.00}% … {Quantile(d, 0.75):+0.00;-0.00}% |");
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
        Dictionary<string, Dictionary<int, List<double>>> decode, Dictionary<int, List<double>> promptCrypto, List<double> tokenCrypto)
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
        _report.AppendLine("| L | prompt record open, ms | share of CC-off prefill | token record seal, ms | share of CC-off decode step |");
        _report.AppendLine("|---:|---:|---:|---:|---:|");
        foreach (int length in lengths)
        {
            double prompt = Median(promptCrypto[length]);
            double p = Median(prefill[off.Name][length]), d = Median(decode[off.Name][length]);
            _report.AppendLine(inv, $"| {length} | {prompt:F3} | {prompt / p * 100:F3}% | {token:F4} | {token / d * 100:F3}% |");
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
        _report.AppendLine("Inside the timed graph runs, from each device's own operator clock (medians over rounds; " +
            $"CC operators = {string.Join(", ", CcOperators)}; outside kernels = wall − all kernels: host submission, DMA, scheduler and, with CC on, the firmware's checks):");
        _report.AppendLine();
        _report.AppendLine("| L | step | runner | wall ms | all kernels ms | CC operators ms | CC operators' share of wall | outside kernels ms |");
        _report.AppendLine("|---:|---|---|---:|---:|---:|---:|---:|");
        foreach (int length in lengths)
        {
            foreach (bool prefillStep in new[] { true, false })
            {
                foreach (IGrouping<string, ClockedRun> runs in clocked[length].GroupBy(r => r.Runner).OrderBy(g => g.Key, StringComparer.Ordinal))
                {
                    double wall = Median([.. runs.Select(r => prefillStep ? r.PrefillWall : r.DecodeWall / r.DecodeSteps)]);
                    double all = Median([.. runs.Select(r => prefillStep ? Total(r.Prefill) : Total(r.Decode) / r.DecodeSteps)]);
                    double cc = Median([.. runs.Select(r => prefillStep ? Cc(r.Prefill) : Cc(r.Decode) / r.DecodeSteps)]);
                    double outside = Median([.. runs.Select(r => prefillStep ? r.PrefillWall - Total(r.Prefill) : (r.DecodeWall - Total(r.Decode)) / r.DecodeSteps)]);
                    _report.AppendLine(inv, $"| {length} | {(prefillStep ? "prefill" : "decode step")} | {runs.Key} | {wall:F2} | {all:F2} | {cc:F4} | {cc / wall * 100:F4}% | {outside:F3} |");
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
internal sealed class ControlRunner(ILlamaRunner inner) : ILlamaRunner
{
    public ILlamaRunner Inner { get; } = inner;

    public string Name => $"control: {Inner.Name} vs a twin";

    public bool IsBaseline => false;

    public int WeightBytes => Inner.WeightBytes;

    public AscendCC.Device.DeviceMemoryInfo? Hbm => Inner.Hbm;

    public double[] Run(int[] prompt, int decodeSteps) => Inner.Run(prompt, decodeSteps);

    public void Dispose() => Inner.Dispose();
}
