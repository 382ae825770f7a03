using System.Globalization;
using System.Text;
using AscendCC.Device.AiCore;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using LLama.Native;

namespace AscendCC.Benchmarks;

/// <summary>
/// Decode (and prefill) of the 110M Llama shape from one set of weights, five ways: llama.cpp's own
/// quantizer writes them (from an F32 GGUF) as a Q8_0 and a Q4_0 file; the device runs the Q8_0 file
/// in bf16 (dequantized) and as stored, and the Q4_0 file as stored; llama.cpp (LLamaSharp 0.30.0,
/// 2 threads) runs both files. The machine's speed drifts by tens of percent over minutes and is
/// shared, so all five run interleaved, round by round in a rotating order, and only ratios within
/// a round are compared.
/// </summary>
internal sealed class QuantizedSuite : IBenchmarkSuite, IReportingSuite
{
    private const int PromptTokens = 128;
    private const int MaxContext = 512;
    private static readonly TimeSpan CoolDown = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan StepPause = TimeSpan.FromMilliseconds(20);

    private string _report = "";

    public string Name => "quantized";

    public string Description => "110M decode: device BF16/Q8_0/Q4_0 vs llama.cpp Q8_0/Q4_0 on the same weights, interleaved";

    public string ReportFileName => "quantized.md";

    public string Report => _report;

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        int rounds = options.Quick ? 3 : 20, steps = options.Quick ? 8 : 32, warmSteps = 2;
        string loadAtStart = LlamaSuite.LoadAverage();
        string folder = Directory.CreateTempSubdirectory("ascendcc-quantized-").FullName;
        try
        {
            string f32 = Path.Combine(folder, "110m-f32.gguf"), q8File = Path.Combine(folder, "110m-q8_0.gguf"), q4File = Path.Combine(folder, "110m-q4_0.gguf");
            Console.WriteLine("writing the 110M shape as an F32 GGUF (seeded random weights), quantized to Q8_0 and Q4_0 by llama.cpp…");
            LlamaConfig config = GgufModels.WriteRandomLlama(f32, (LlamaConfig)ModelShape.Llama110M(MaxContext).Config);
            foreach ((string path, LLamaFtype ftype) in new[] { (q8File, LLamaFtype.MOSTLY_Q8_0), (q4File, LLamaFtype.MOSTLY_Q4_0) })
            {
                if (!GgufModels.Quantize(f32, path, ftype))
                {
                    throw new InvalidOperationException($"llama_model_quantize to {ftype} failed");
                }
            }
            File.Delete(f32);
            var rng = new Random(11);
            int[] prompt = [1, .. Enumerable.Range(0, PromptTokens - 1).Select(_ => rng.Next(3, config.VocabSize))];

            using var bf16 = new DeviceGgufRunner(q8File, WeightPrecision.BF16, MaxContext, PromptTokens);
            using var q8 = new DeviceGgufRunner(q8File, WeightPrecision.Q8_0, MaxContext, PromptTokens);
            using var q4 = new DeviceGgufRunner(q4File, WeightPrecision.Q4_0, MaxContext, PromptTokens);
            using var llamaQ8 = new LlamaCppRunner(q8File, "llama.cpp Q8_0", MaxContext, PromptTokens);
            using var llamaQ4 = new LlamaCppRunner(q4File, "llama.cpp Q4_0", MaxContext, PromptTokens);
            ISteppedRunner[] runners = [bf16, q8, llamaQ8, q4, llamaQ4];
            foreach (ISteppedRunner runner in runners)
            {
                runner.Run(prompt[..16], 4);
            }

            // Per round: each runner's prefill in turn, then the decode steps interleaved step by step
            // (one step of each runner, in a rotating order, with a pause between steps so that
            // llama.cpp's spinning workers and our resting AI Cores hand the CPUs back), so that the
            // steps compared sit within a few tens of milliseconds of each other.
            var results = runners.ToDictionary(r => r.Name, _ => new List<(double Prefill, double Decode)>());
            var stepTimes = runners.ToDictionary(r => r.Name, _ => new List<double>());
            for (int round = 0; round < rounds; round++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                var prefill = new Dictionary<string, double>();
                for (int i = 0; i < runners.Length; i++)
                {
                    ISteppedRunner runner = runners[(i + round) % runners.Length];
                    Thread.Sleep(CoolDown);
                    prefill[runner.Name] = runner.Begin(prompt, warmSteps + steps);
                }
                var decode = runners.ToDictionary(r => r.Name, _ => new List<double>());
                for (int step = 0; step < warmSteps + steps; step++)
                {
                    for (int i = 0; i < runners.Length; i++)
                    {
                        ISteppedRunner runner = runners[(i + step + round) % runners.Length];
                        Thread.Sleep(StepPause);
                        double ms = runner.Step();
                        if (step >= warmSteps)
                        {
                            decode[runner.Name].Add(ms);
                        }
                    }
                }
                foreach (ISteppedRunner runner in runners)
                {
                    runner.End();
                    results[runner.Name].Add((prefill[runner.Name], Median(decode[runner.Name])));
                    stepTimes[runner.Name].AddRange(decode[runner.Name]);
                }
                Console.WriteLine($"round {round + 1}/{rounds}: " + string.Join(", ", runners.Select(r => $"{r.Name} {results[r.Name][^1].Decode:F2} ms/token")) + $" (load {LlamaSuite.LoadAverage()})");
            }
            // Where a decode step's device time goes, per operator: one more run of each device with its operator clock on.
            var operators = new Dictionary<string, IReadOnlyDictionary<string, (double Milliseconds, long Launches)>>();
            foreach (DeviceGgufRunner runner in new[] { bf16, q8, q4 })
            {
                Thread.Sleep(CoolDown);
                operators[runner.Name] = runner.ClockedDecode(prompt, warmSteps, steps);
            }
            var bytes = new Dictionary<string, double>
            {
                [bf16.Name] = GgufModels.StreamedBytes(config, WeightPrecision.BF16),
                [q8.Name] = GgufModels.StreamedBytes(config, WeightPrecision.Q8_0),
                [q4.Name] = GgufModels.StreamedBytes(config, WeightPrecision.Q4_0),
                [llamaQ8.Name] = GgufModels.StreamedBytes(q8File),
                [llamaQ4.Name] = GgufModels.StreamedBytes(q4File),
            };
            _report = BuildReport(runners.Select(r => r.Name).ToArray(), results, stepTimes, bytes, rounds, steps, warmSteps, loadAtStart, LlamaSuite.LoadAverage(), operators, GgufModels.DescribeTypes(q4File));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string BuildReport(string[] names, Dictionary<string, List<(double Prefill, double Decode)>> results, Dictionary<string, List<double>> stepTimes, Dictionary<string, double> bytes,
        int rounds, int steps, int warmSteps, string loadAtStart, string loadAtEnd, Dictionary<string, IReadOnlyDictionary<string, (double Milliseconds, long Launches)>> operators,
        string q4Types)
    {
        var culture = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# quantized: 110M decode, the device in BF16, Q8_0 and Q4_0 vs llama.cpp in Q8_0 and Q4_0 (same weights, interleaved)");
        sb.AppendLine();
        sb.Append(culture, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}, AI Cores {AiCoreGrid.Shared.CoreCount}, llama.cpp threads 2; ")
            .Append(culture, $"{rounds} rounds; in each, every runner prefills the same {PromptTokens}-token prompt in turn (300 ms apart), then decodes {warmSteps} warm-up and {steps} timed steps ")
            .Append(culture, $"interleaved step by step (one step of each runner in a rotating order, {StepPause.TotalMilliseconds:F0} ms apart; context {PromptTokens}–{PromptTokens + warmSteps + steps}); a round's decode is its median step. ")
            .Append(culture, $"Load average (1/5/15 min) at start {loadAtStart}, at end {loadAtEnd} (above 2 on these 2 cores, other work shared the machine: absolute times are then noisy); ")
            .AppendLine("compare the ratios, which are taken within a round.");
        sb.AppendLine();
        sb.AppendLine("Weights: llama2.c's 110M shape (768 wide, 12 layers, MLP 2048, untied 32000-row classifier), seeded uniform ±1/√in, written as an F32 GGUF and quantized by ")
            .AppendLine("llama.cpp's own quantizer to a Q8_0 file (every matrix Q8_0) and a Q4_0 file (" + q4Types + "). The device's BF16 and Q8_0 run the Q8_0 file (BF16: its values ")
            .AppendLine("rounded to bf16), its Q4_0 the Q4_0 file (the classifier's Q6_K dequantized and kept in Q8_0, the device's Q4_0 classifier format); llama.cpp mmaps each file. ")
            .AppendLine("The GB/s column counts the matrix bytes each runner streams per token (all but the gathered embedding).");
        sb.AppendLine();
        sb.AppendLine("Over rounds: the median, and the fastest round (the least disturbed by other work).");
        sb.AppendLine();
        sb.AppendLine("| runner | MB streamed per token | prefill ms: median (fastest) | decode ms/token: median (fastest) | decode GB/s: median (fastest) |");
        sb.AppendLine("|---|---:|---:|---:|---:|");
        foreach (string name in names)
        {
            double prefill = Median(results[name].Select(r => r.Prefill)), decode = Median(results[name].Select(r => r.Decode));
            double fastPrefill = results[name].Min(r => r.Prefill), fastDecode = results[name].Min(r => r.Decode);
            sb.AppendLine(culture, $"| {name} | {bytes[name] / 1e6:F0} | {prefill:F1} ({fastPrefill:F1}) | {decode:F2} ({fastDecode:F2}) | {bytes[name] / (decode * 1e-3) / 1e9:F1} ({bytes[name] / (fastDecode * 1e-3) / 1e9:F1}) |");
        }
        sb.AppendLine();
        sb.AppendLine("Ratios (> 1: the second runner is faster). Decode: per pair of interleaved steps (the two runners' i-th steps of a round, taken within one rotation), ")
            .AppendLine("the median over all pairs and the middle half of them (25th–75th percentile); prefill: per round, the median and the range over rounds.");
        sb.AppendLine();
        sb.AppendLine("| ratio | decode: median of step pairs | middle half | prefill: median of rounds | range |");
        sb.AppendLine("|---|---:|---|---:|---|");
        foreach ((string other, string ours) in new[] { (names[0], names[1]), (names[2], names[1]), (names[0], names[3]), (names[4], names[3]), (names[1], names[3]) })
        {
            double[] decode = [.. stepTimes[other].Zip(stepTimes[ours], (o, q) => o / q).Order()];
            double[] prefill = [.. results[other].Zip(results[ours], (o, q) => o.Prefill / q.Prefill)];
            sb.AppendLine(culture, $"| {other} ÷ {ours} | {Median(decode):F2}× | {decode[decode.Length / 4]:F2}× … {decode[decode.Length * 3 / 4]:F2}× | {Median(prefill):F2}× | {prefill.Min():F2}× … {prefill.Max():F2}× |");
        }
        sb.AppendLine();
        sb.AppendLine(culture, $"Device time per decode step by operator (one more clocked run of each device after the rounds; ms per token, {steps} steps):");
        sb.AppendLine();
        string[] devices = [.. operators.Keys];
        sb.AppendLine("| operator | " + string.Join(" | ", devices) + " |");
        sb.AppendLine("|---|" + string.Concat(devices.Select(_ => "---:|")));
        foreach (string op in operators.Values.SelectMany(o => o.Keys).Distinct().OrderByDescending(o => operators[devices[0]].GetValueOrDefault(o).Milliseconds))
        {
            sb.AppendLine("| " + op + " | " + string.Join(" | ", devices.Select(d => (operators[d].GetValueOrDefault(op).Milliseconds / steps).ToString("F3", culture))) + " |");
        }
        sb.AppendLine();
        sb.AppendLine("Per round (decode ms/token; prefill ms):");
        sb.AppendLine();
        sb.AppendLine("| round | " + string.Join(" | ", names) + " |");
        sb.AppendLine("|---:|" + string.Concat(names.Select(_ => "---:|")));
        for (int r = 0; r < rounds; r++)
        {
            int round = r;
            sb.Append(culture, $"| {r + 1} | ").AppendJoin(" | ", names.Select(n => string.Create(culture, $"{results[n][round].Decode:F2}; {results[n][round].Prefill:F0}"))).AppendLine(" |");
        }
        return sb.ToString();
    }
}
