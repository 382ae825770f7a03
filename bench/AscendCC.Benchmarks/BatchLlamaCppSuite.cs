using System.Diagnostics;
using System.Globalization;
using System.Text;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using LLama;
using LLama.Common;
using LLama.Native;

namespace AscendCC.Benchmarks;

/// <summary>
/// Batched decode against llama.cpp on the same GGUF files: tokens per second of one and of eight
/// sequences decoding together, the device (CC off, graph mode, a program of eight slots) and
/// llama.cpp (LLamaSharp 0.30.0, one context of eight sequences, each with its own KV cells, one
/// llama_decode per step carrying every sequence's token). Each sequence has its own 128-token
/// prompt, read untimed; then decode steps are timed. Runs interleave, round by round in a rotating
/// order, and ratios are taken within a round.
/// </summary>
internal sealed class BatchLlamaCppSuite : IBenchmarkSuite, IReportingSuite
{
    private const int Sequences = 8;
    private readonly StringBuilder _report = new();

    public string Name => "batchcpp";

    public string Description => "batched decode, the device against llama.cpp on the same GGUF: tokens/s of 1 and 8 sequences (110M and 1.1B; BF16, Q8_0, Q4_0), interleaved";

    public string ReportFileName => "batchcpp.md";

    public string Report => _report.ToString();

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        int steps = options.Quick ? 8 : 24;
        int context = BatchSuite.Context(steps);
        _report.AppendLine(CultureInfo.InvariantCulture, $"# batchcpp: {Description}");
        _report.AppendLine();
        _report.AppendLine(FormattableString.Invariant($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}. Load average at start: {LlamaSuite.LoadAverage()}."));
        _report.AppendLine();
        _report.AppendLine(FormattableString.Invariant($"The weights: seeded uniform ±1/√in in an F32 GGUF (bench/AscendCC.Benchmarks/GgufRunners.cs), converted by llama.cpp's own quantizer to each precision; both engines load that file. The device: CC off, graph mode, KV cache f16, {Sequences} slots (\"1\" is one sequence in that program). llama.cpp: 2 threads, the file memory-mapped, {Sequences} sequences in one context with per-sequence KV cells (kv_unified off), KV cache f16, greedy pick in C# from each sequence's logits. Each sequence reads its own {BatchSuite.PromptTokens}-token prompt untimed, then {steps} decode steps are timed (median step); a step of n sequences yields n tokens. Per round every runner and width runs once, in a rotating order; ratios are medians over rounds of ratios within a round, with their range."));
        _report.AppendLine();
        _report.AppendLine("| model | weights | device 1: tokens/s | device 8: tokens/s | llama.cpp 1: tokens/s | llama.cpp 8: tokens/s | device 8 ÷ 1 | llama.cpp 8 ÷ 1 | device ÷ llama.cpp at 1 | device ÷ llama.cpp at 8 |");
        _report.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        var shapes = new List<(string Name, Func<LlamaConfig> Config, int Rounds)>
        {
            ("110M", () => (LlamaConfig)ModelShape.Llama110M(context).Config, options.Quick ? 2 : 6),
        };
        if (!options.Quick || options.Filter?.Contains("1.1B", StringComparison.Ordinal) == true)
        {
            shapes.Add(("1.1B", () => (LlamaConfig)ModelShape.Llama1B(context).Config, options.Quick ? 2 : 4));
        }
        string folder = Directory.CreateTempSubdirectory("ascendcc-batchcpp-").FullName;
        try
        {
            foreach ((string shapeName, Func<LlamaConfig> config, int rounds) in shapes)
            {
                WeightPrecision[] precisions = [.. new[] { WeightPrecision.BF16, WeightPrecision.Q8_0, WeightPrecision.Q4_0 }.Where(p => options.Includes($"{shapeName} {p}"))];
                if (precisions.Length == 0)
                {
                    continue;
                }
                string f32 = Path.Combine(folder, $"{shapeName}-f32.gguf");
                Console.WriteLine($"{shapeName}: writing {f32}…");
                GgufModels.WriteRandomLlama(f32, config());
                foreach (WeightPrecision precision in precisions)
                {
                    string path = Path.Combine(folder, $"{shapeName}-{precision}.gguf");
                    if (!GgufModels.Quantize(f32, path, precision switch
                    {
                        WeightPrecision.BF16 => LLamaFtype.MOSTLY_BF16,
                        WeightPrecision.Q8_0 => LLamaFtype.MOSTLY_Q8_0,
                        _ => LLamaFtype.MOSTLY_Q4_0,
                    }))
                    {
                        throw new InvalidOperationException($"llama.cpp's quantizer refused {precision} for {f32}");
                    }
                    Measure(shapeName, precision, path, context, rounds, steps);
                    File.Delete(path);
                }
                File.Delete(f32);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
        _report.AppendLine();
        _report.AppendLine(CultureInfo.InvariantCulture, $"Load average at end: {LlamaSuite.LoadAverage()}.");
    }

    private void Measure(string shapeName, WeightPrecision precision, string gguf, int context, int rounds, int steps)
    {
        Console.WriteLine($"{shapeName} {precision}: loading the device's {Sequences}-slot program and llama.cpp's {Sequences}-sequence context…");
        var device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 16L << 30 });
        using var runtime = new NpuRuntime(device, ownsDevice: true);
        CausalLM model;
        using (var checkpoint = ModelCheckpoint.Open(gguf))
        {
            model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions
            {
                MaxContext = context, MaxBatchTokens = BatchSuite.PromptTokens, WeightPrecision = precision, MaxSequences = Sequences,
            });
        }
        using (model)
        using (var llama = new LlamaCppBatchRunner(gguf, context, Sequences))
        {
            CausalLMBatch batch = model.CreateBatch();
            int[][] prompts = BatchSuite.Prompts(Sequences, model.Config.VocabSize);
            string[] names = ["device 1", "device 8", "llama.cpp 1", "llama.cpp 8"];
            // Warm-up: every path once.
            BatchSuite.RunBatch(batch, prompts, Sequences, 2);
            llama.Run(prompts, Sequences, 2);
            static int Width(string name) => name.EndsWith(" 8", StringComparison.Ordinal) ? Sequences : 1;
            (Dictionary<string, List<double>> stepMs, List<Dictionary<string, double>> perRound) = RotatingRounds.Run(names, rounds, Width, name =>
                name.StartsWith("device", StringComparison.Ordinal) ? BatchSuite.RunBatch(batch, prompts, Width(name), steps) : llama.Run(prompts, Width(name), steps));
            string Ratio(string a, string b)
            {
                double[] r = [.. perRound.Select(t => t[a] / t[b])];
                return FormattableString.Invariant($"{BatchSuite.Median(r):F2}× ({r.Min():F2}–{r.Max():F2})");
            }
            string Rate(string name) => FormattableString.Invariant($"{1000 * Width(name) / BatchSuite.Median(stepMs[name]):F1}");
            _report.AppendLine(FormattableString.Invariant(
                $"| {shapeName} | {precision} | {Rate("device 1")} | {Rate("device 8")} | {Rate("llama.cpp 1")} | {Rate("llama.cpp 8")} | {Ratio("device 8", "device 1")} | {Ratio("llama.cpp 8", "llama.cpp 1")} | {Ratio("device 1", "llama.cpp 1")} | {Ratio("device 8", "llama.cpp 8")} |"));
        }
    }
}

/// <summary>
/// llama.cpp (LLamaSharp 0.30.0) decoding several sequences together: one context of
/// <c>sequences</c> sequences, each with its own KV cells (kv_unified off, so each has
/// <c>contextPerSequence</c> positions), 2 threads, the file memory-mapped. A step is one
/// llama_decode of one token per sequence; the next token is each sequence's greedy pick, in C#.
/// </summary>
internal sealed class LlamaCppBatchRunner : IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();

    public LlamaCppBatchRunner(string gguf, int contextPerSequence, int sequences)
    {
        NativeApi.llama_empty_call();
        var parameters = new ModelParams(gguf)
        {
            ContextSize = (uint)(contextPerSequence * sequences), BatchSize = (uint)(BatchSuite.PromptTokens * sequences), SeqMax = (uint)sequences,
            KVUnified = false, GpuLayerCount = 0, Threads = 2, BatchThreads = 2, LoadMode = LLamaLoadMode.MemoryMap,
        };
        _weights = LLamaWeights.LoadFromFile(parameters);
        _context = _weights.CreateContext(parameters);
    }

    /// <summary>The first <paramref name="n"/> prompts read in one batch (untimed), then the median ms of <paramref name="steps"/> decode steps of all <paramref name="n"/>.</summary>
    public double Run(int[][] prompts, int n, int steps)
    {
        _context.NativeHandle.MemoryClear();
        _batch.Clear();
        int[] next = new int[n], position = new int[n], logitIndex = new int[n];
        for (int s = 0; s < n; s++)
        {
            for (int i = 0; i < prompts[s].Length; i++)
            {
                int at = _batch.Add(prompts[s][i], i, (LLamaSeqId)s, i == prompts[s].Length - 1);
                if (i == prompts[s].Length - 1)
                {
                    logitIndex[s] = at;
                }
            }
            position[s] = prompts[s].Length;
        }
        Decode(next, logitIndex);
        var times = new double[steps];
        for (int step = 0; step < steps; step++)
        {
            long start = Stopwatch.GetTimestamp();
            _batch.Clear();
            for (int s = 0; s < n; s++)
            {
                logitIndex[s] = _batch.Add(next[s], position[s]++, (LLamaSeqId)s, true);
            }
            Decode(next, logitIndex);
            times[step] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        return BatchSuite.Median(times);
    }

    private void Decode(int[] next, int[] logitIndex)
    {
        if (_context.Decode(_batch) != DecodeResult.Ok)
        {
            throw new InvalidOperationException("llama_decode failed");
        }
        for (int s = 0; s < next.Length; s++)
        {
            Span<float> logits = _context.NativeHandle.GetLogitsIth(logitIndex[s]);
            int best = 0;
            for (int v = 1; v < logits.Length; v++)
            {
                if (logits[v] > logits[best])
                {
                    best = v;
                }
            }
            next[s] = best;
        }
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}
