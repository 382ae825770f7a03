using System.Diagnostics;
using System.Globalization;
using System.Text;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using LLama.Native;

namespace AscendCC.Benchmarks;

/// <summary>
/// Decode at 2048 positions with the KV cache in llama.cpp's q8_0 and q4_0 on both engines (llama.cpp's
/// <c>-ctk/-ctv q8_0</c> and <c>q4_0</c>, the device's <see cref="KvCachePrecision.Q8_0"/> and
/// <see cref="KvCachePrecision.Q4_0"/>, CC off and on) beside both in f16, on one Q4_0 GGUF of the 110M and 1.1B shapes (written and quantized as in the llamacpp
/// suite). Runners are loaded side by side and step in turn, the order rotating, 20 ms apart as in the
/// llamacpp suite; ratios are taken within a round.
/// </summary>
internal sealed class KvCacheLlamaCppSuite : IBenchmarkSuite, IReportingSuite
{
    private const int Position = 2048, WarmSteps = 2;
    private static readonly TimeSpan StepPause = TimeSpan.FromMilliseconds(20);
    private readonly StringBuilder _report = new();

    public string Name => "kvcpp";

    public string Description => "decode @2048 with q8_0 and q4_0 KV caches on both engines (and both f16), 110M and 1.1B Q4_0, CC off and on, interleaved";

    public string ReportFileName => "kvcache-llamacpp.md";

    public string Report => _report.ToString();

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        _report.AppendLine(CultureInfo.InvariantCulture, $"# kvcpp: {Description}");
        _report.AppendLine();
        _report.AppendLine(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}. Load average at start: {LlamaSuite.LoadAverage()}.");
        _report.AppendLine();
        foreach ((string shape, Func<LlamaConfig> config, int rounds) in new (string, Func<LlamaConfig>, int)[]
        {
            ("110M", () => (LlamaConfig)ModelShape.Llama110M(4096).Config, options.Quick ? 2 : 6),
            ("1.1B", () => (LlamaConfig)ModelShape.Llama1B(4096).Config, options.Quick ? 1 : 3),
        })
        {
            if (options.Includes(shape))
            {
                RunShape(shape, config(), rounds, options.Quick ? 4 : 12);
            }
        }
        _report.AppendLine(CultureInfo.InvariantCulture, $"Load average at end: {LlamaSuite.LoadAverage()}.");
    }

    private void RunShape(string shape, LlamaConfig config, int rounds, int steps)
    {
        string folder = Directory.CreateTempSubdirectory("ascendcc-kvcpp-").FullName;
        var runners = new List<ISteppedRunner>();
        try
        {
            string f32 = Path.Combine(folder, $"{shape}-f32.gguf"), q4 = Path.Combine(folder, $"{shape}-q4_0.gguf");
            Console.WriteLine($"{shape}: writing the F32 GGUF and llama.cpp's Q4_0 of it in {folder}…");
            GgufModels.WriteRandomLlama(f32, config);
            if (!GgufModels.Quantize(f32, q4, LLamaFtype.MOSTLY_Q4_0))
            {
                throw new InvalidOperationException($"{shape}: llama.cpp's quantizer refused Q4_0");
            }
            File.Delete(f32);
            int context = Position + WarmSteps + steps + 8;
            using (ModelShape opened = ModelShape.Open($"{shape} Q4_0", q4))
            {
                runners.Add(new ConfidentialRunner(opened, WeightPrecision.Q4_0, ExecutionMode.Graph, context, Position, "device CC on, KV q8_0", kvPrecision: KvCachePrecision.Q8_0));
                runners.Add(new ConfidentialRunner(opened, WeightPrecision.Q4_0, ExecutionMode.Graph, context, Position, "device CC on, KV q4_0", kvPrecision: KvCachePrecision.Q4_0));
            }
            runners.Add(new DeviceGgufRunner(q4, WeightPrecision.Q4_0, context, Position, "device CC off, KV q8_0", KvCachePrecision.Q8_0));
            runners.Add(new DeviceGgufRunner(q4, WeightPrecision.Q4_0, context, Position, "device CC off, KV q4_0", KvCachePrecision.Q4_0));
            runners.Add(new DeviceGgufRunner(q4, WeightPrecision.Q4_0, context, Position, "device CC off, KV f16", KvCachePrecision.F16));
            runners.Add(new LlamaCppRunner(q4, "llama.cpp, KV q8_0", context, Position, GGMLType.GGML_TYPE_Q8_0));
            runners.Add(new LlamaCppRunner(q4, "llama.cpp, KV q4_0", context, Position, GGMLType.GGML_TYPE_Q4_0));
            runners.Add(new LlamaCppRunner(q4, "llama.cpp, KV f16", context, Position));
            var rng = new Random(11);
            int[] prompt = [1, .. Enumerable.Range(0, Position - 1).Select(_ => rng.Next(3, config.VocabSize))];
            foreach (ISteppedRunner runner in runners)
            {
                runner.Run(prompt[..16], 2);
            }
            var times = runners.ToDictionary(r => r.Name, _ => new List<double>());
            var ratios = new Dictionary<string, List<double>>
            {
                ["q8_0: llama.cpp ÷ device CC on"] = [],
                ["q8_0: llama.cpp ÷ device CC off"] = [],
                ["q4_0: llama.cpp ÷ device CC on"] = [],
                ["q4_0: llama.cpp ÷ device CC off"] = [],
                ["f16: llama.cpp ÷ device CC off"] = [],
                ["device CC off: f16 ÷ q8_0"] = [],
                ["device CC off: f16 ÷ q4_0"] = [],
                ["llama.cpp: f16 ÷ q8_0"] = [],
                ["llama.cpp: f16 ÷ q4_0"] = [],
            };
            var wall = Stopwatch.StartNew();
            for (int round = 0; round < rounds; round++)
            {
                foreach (ISteppedRunner runner in runners)
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    runner.Begin(prompt, WarmSteps + steps);
                }
                var thisRound = runners.ToDictionary(r => r.Name, _ => new List<double>());
                for (int step = 0; step < WarmSteps + steps; step++)
                {
                    for (int i = 0; i < runners.Count; i++)
                    {
                        ISteppedRunner runner = runners[(i + step + round) % runners.Count];
                        Thread.Sleep(StepPause);
                        double ms = runner.Step();
                        if (step >= WarmSteps)
                        {
                            thisRound[runner.Name].Add(ms);
                        }
                    }
                }
                foreach (ISteppedRunner runner in runners)
                {
                    runner.End();
                    times[runner.Name].AddRange(thisRound[runner.Name]);
                }
                double M(string name) => Median(thisRound[name]);
                ratios["q8_0: llama.cpp ÷ device CC on"].Add(M("llama.cpp, KV q8_0") / M("device CC on, KV q8_0"));
                ratios["q8_0: llama.cpp ÷ device CC off"].Add(M("llama.cpp, KV q8_0") / M("device CC off, KV q8_0"));
                ratios["q4_0: llama.cpp ÷ device CC on"].Add(M("llama.cpp, KV q4_0") / M("device CC on, KV q4_0"));
                ratios["q4_0: llama.cpp ÷ device CC off"].Add(M("llama.cpp, KV q4_0") / M("device CC off, KV q4_0"));
                ratios["f16: llama.cpp ÷ device CC off"].Add(M("llama.cpp, KV f16") / M("device CC off, KV f16"));
                ratios["device CC off: f16 ÷ q8_0"].Add(M("device CC off, KV f16") / M("device CC off, KV q8_0"));
                ratios["device CC off: f16 ÷ q4_0"].Add(M("device CC off, KV f16") / M("device CC off, KV q4_0"));
                ratios["llama.cpp: f16 ÷ q8_0"].Add(M("llama.cpp, KV f16") / M("llama.cpp, KV q8_0"));
                ratios["llama.cpp: f16 ÷ q4_0"].Add(M("llama.cpp, KV f16") / M("llama.cpp, KV q4_0"));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{shape} round {round + 1}/{rounds} ({wall.Elapsed.TotalMinutes:F1} min): ")
                    + string.Join(", ", runners.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Name} {M(r.Name):F2}"))));
            }

            double kvF16 = 2.0 * config.NumHiddenLayers * config.NumKeyValueHeads * config.HeadDim * Position * 2;
            _report.AppendLine(CultureInfo.InvariantCulture, $"## {shape} Q4_0, decode @{Position}");
            _report.AppendLine();
            _report.AppendLine(CultureInfo.InvariantCulture, $"{rounds} rounds of {steps} timed steps (after {WarmSteps}) per runner. KV cache a step reads at @{Position}: {kvF16 / 1e6:F0} MB in f16, {kvF16 * 36 / 64 / 1e6:F0} MB in q8_0, {kvF16 * 20 / 64 / 1e6:F0} MB in q4_0 (the device's scales are f32); Q4_0 weights {GgufModels.StreamedBytes(config, WeightPrecision.Q4_0) / 1e6:F0} MB.");
            _report.AppendLine();
            _report.AppendLine("| runner | median ms/token | p10 | p90 |");
            _report.AppendLine("|---|---:|---:|---:|");
            foreach (ISteppedRunner runner in runners)
            {
                double[] sorted = [.. times[runner.Name].Order()];
                _report.AppendLine(CultureInfo.InvariantCulture, $"| {runner.Name} | {Median(sorted):F2} | {sorted[(int)(0.1 * sorted.Length)]:F2} | {sorted[Math.Min(sorted.Length - 1, (int)(0.9 * sorted.Length))]:F2} |");
            }
            _report.AppendLine();
            _report.AppendLine("| ratio of per-round medians | median | range |");
            _report.AppendLine("|---|---:|---|");
            foreach ((string name, List<double> values) in ratios)
            {
                _report.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {Median(values):F2}× | {values.Min():F2}× … {values.Max():F2}× |");
            }
            _report.AppendLine();
        }
        finally
        {
            foreach (ISteppedRunner runner in runners)
            {
                runner.Dispose();
            }
            Directory.Delete(folder, recursive: true);
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }
}
