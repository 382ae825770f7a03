using System.Diagnostics;
using System.Globalization;
using System.Text;
using AscendCC.Device;
using AscendCC.Device.AiCore;
using AscendCC.Device.Scheduler;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using LLama;
using LLama.Common;
using LLama.Native;

namespace AscendCC.Benchmarks;

/// <summary>
/// Decode (and prefill) of the 110M Llama shape from one Q8_0 GGUF file, three ways: the device
/// with the weights in bf16 (dequantized from the file), the device keeping the file's Q8_0 blocks,
/// and llama.cpp (LLamaSharp 0.30.0, 2 threads) on the file itself. The machine's speed drifts by
/// tens of percent over minutes and is shared, so the three run interleaved, round by round in a
/// rotating order, and only ratios within a round are compared.
/// </summary>
internal sealed class QuantizedSuite : IBenchmarkSuite, IReportingSuite
{
    private const int PromptTokens = 128;
    private const int MaxContext = 512;
    private static readonly TimeSpan CoolDown = TimeSpan.FromMilliseconds(300);

    private string _report = "";

    public string Name => "quantized";

    public string Description => "110M decode: device BF16 vs device Q8_0 vs llama.cpp Q8_0 on one GGUF, interleaved";

    public string ReportFileName => "quantized.md";

    public string Report => _report;

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        int rounds = options.Quick ? 3 : 20, steps = options.Quick ? 8 : 32, warmSteps = 2;
        string loadAtStart = LlamaSuite.LoadAverage();
        string folder = Directory.CreateTempSubdirectory("ascendcc-quantized-").FullName;
        try
        {
            string gguf = Path.Combine(folder, "110m-q8_0.gguf");
            Console.WriteLine("writing the 110M shape as a Q8_0 GGUF (seeded random weights)…");
            LlamaConfig config = Write110M(gguf);
            var rng = new Random(11);
            int[] prompt = [1, .. Enumerable.Range(0, PromptTokens - 1).Select(_ => rng.Next(3, config.VocabSize))];

            using var bf16 = new DeviceGgufRunner(gguf, WeightPrecision.BF16);
            using var q8 = new DeviceGgufRunner(gguf, WeightPrecision.Q8_0);
            using var llamaCpp = new LlamaCppRunner(gguf);
            IQuantizedRunner[] runners = [bf16, q8, llamaCpp];
            foreach (IQuantizedRunner runner in runners)
            {
                runner.Run(prompt[..16], 4);
            }

            var results = runners.ToDictionary(r => r.Name, _ => new List<(double Prefill, double Decode)>());
            for (int round = 0; round < rounds; round++)
            {
                for (int i = 0; i < runners.Length; i++)
                {
                    IQuantizedRunner runner = runners[(i + round) % runners.Length];
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    Thread.Sleep(CoolDown);
                    double[] times = runner.Run(prompt, warmSteps + steps);
                    double decode = Median(times.Skip(1 + warmSteps));
                    results[runner.Name].Add((times[0], decode));
                    Console.WriteLine($"round {round + 1}/{rounds} {runner.Name}: prefill {times[0]:F1} ms, decode {decode:F2} ms/token (load {LlamaSuite.LoadAverage()})");
                }
            }
            // Where a decode step's device time goes, per operator: one more run of each device with its operator clock on.
            var operators = new Dictionary<string, IReadOnlyDictionary<string, (double Milliseconds, long Launches)>>();
            foreach (DeviceGgufRunner runner in new[] { bf16, q8 })
            {
                Thread.Sleep(CoolDown);
                operators[runner.Name] = runner.ClockedDecode(prompt, warmSteps, steps);
            }
            _report = BuildReport(config, results, bf16.Name, q8.Name, llamaCpp.Name, rounds, steps, warmSteps, loadAtStart, LlamaSuite.LoadAverage(), operators);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// llama2.c's 110M shape (as <see cref="ModelShape.Llama110M(int)"/>: 768 wide, 12 layers, MLP
    /// 2048, an untied 32000 × 768 classifier) with uniform ±1/√in weights, matrices in Q8_0, norms
    /// in F32, and a SentencePiece-style vocabulary llama.cpp accepts.
    /// </summary>
    private static LlamaConfig Write110M(string path)
    {
        const int hidden = 768, layers = 12, heads = 12, ffn = 2048, vocab = 32000;
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        tokens.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        tokens.AddRange(Enumerable.Range(0, vocab - tokens.Count).Select(i => "\u2581w" + i.ToString(CultureInfo.InvariantCulture)));
        int[] types = [.. tokens.Select((_, i) => i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1)];
        var writer = new GgufWriter()
            .Add("general.architecture", "llama")
            .Add("llama.context_length", (uint)MaxContext).Add("llama.embedding_length", (uint)hidden).Add("llama.block_count", (uint)layers)
            .Add("llama.feed_forward_length", (uint)ffn).Add("llama.rope.dimension_count", (uint)(hidden / heads))
            .Add("llama.attention.head_count", (uint)heads).Add("llama.attention.head_count_kv", (uint)heads)
            .Add("llama.attention.layer_norm_rms_epsilon", 1e-5f).Add("llama.rope.freq_base", 10000f)
            .Add("tokenizer.ggml.model", "llama")
            .Add("tokenizer.ggml.tokens", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.String, tokens.ToArray())))
            .Add("tokenizer.ggml.scores", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.Float32, tokens.Select((_, i) => -(float)i).ToArray())))
            .Add("tokenizer.ggml.token_type", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.Int32, types)))
            .Add("tokenizer.ggml.bos_token_id", 1u).Add("tokenizer.ggml.eos_token_id", 2u).Add("tokenizer.ggml.unknown_token_id", 0u);
        void Matrix(string name, int rows, int cols) => writer.AddTensor(name, [rows, cols], GgufTensorType.Q8_0, () => Uniform(name, (long)rows * cols, 1f / MathF.Sqrt(cols)));
        void Norm(string name) => writer.AddTensor(name, [hidden], GgufTensorType.F32, () => Enumerable.Repeat(1f, hidden).ToArray());
        Matrix("token_embd.weight", vocab, hidden);
        for (int l = 0; l < layers; l++)
        {
            Norm($"blk.{l}.attn_norm.weight");
            Matrix($"blk.{l}.attn_q.weight", hidden, hidden);
            Matrix($"blk.{l}.attn_k.weight", hidden, hidden);
            Matrix($"blk.{l}.attn_v.weight", hidden, hidden);
            Matrix($"blk.{l}.attn_output.weight", hidden, hidden);
            Norm($"blk.{l}.ffn_norm.weight");
            Matrix($"blk.{l}.ffn_gate.weight", ffn, hidden);
            Matrix($"blk.{l}.ffn_up.weight", ffn, hidden);
            Matrix($"blk.{l}.ffn_down.weight", hidden, ffn);
        }
        Norm("output_norm.weight");
        Matrix("output.weight", vocab, hidden);
        writer.Write(path);
        using var checkpoint = ModelCheckpoint.Open(path);
        return (LlamaConfig)checkpoint.Config;
    }

    private static float[] Uniform(string name, long count, float scale)
    {
        var values = new float[count];
        ulong s = 14695981039346656037UL;
        foreach (char ch in name)
        {
            s = (s ^ ch) * 1099511628211UL;
        }
        s |= 1;
        for (long i = 0; i < count; i++)
        {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            values[i] = ((((s * 0x2545F4914F6CDD1DUL) >> 40) * (1f / (1 << 23))) - 1f) * scale;
        }
        return values;
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string BuildReport(LlamaConfig config, Dictionary<string, List<(double Prefill, double Decode)>> results, string bf16, string q8, string llamaCpp,
        int rounds, int steps, int warmSteps, string loadAtStart, string loadAtEnd, Dictionary<string, IReadOnlyDictionary<string, (double Milliseconds, long Launches)>> operators)
    {
        long streamed = config.ExpectedTensors().Where(t => t.Shape.Length == 2 && t.Name != config.EmbeddingTensorName).Sum(t => t.Shape[0] * t.Shape[1]);
        double bf16Bytes = streamed * 2.0, q8Bytes = streamed * 34.0 / 32;
        var culture = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(culture, $"# quantized: 110M decode, device BF16 vs device Q8_0 vs llama.cpp Q8_0 (one GGUF, interleaved)");
        sb.AppendLine();
        sb.Append(culture, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}, AI Cores {AiCoreGrid.Shared.CoreCount}, llama.cpp threads 2; ")
            .Append(culture, $"{rounds} rounds, the three runners in a rotating order each round, 300 ms pause and a full GC before each run; a run is a {PromptTokens}-token prefill then ")
            .Append(culture, $"{warmSteps} warm-up and {steps} timed decode steps (context {PromptTokens}–{PromptTokens + warmSteps + steps}); decode = the median step. ")
            .Append(culture, $"Load average (1/5/15 min) at start {loadAtStart}, at end {loadAtEnd}: **the machine was shared with another engineer's long mutation-testing run**, so absolute ")
            .AppendLine("times are noisy and slow; compare the ratios, which are taken within a round.");
        sb.AppendLine();
        sb.Append("Weights: llama2.c's 110M shape (768 wide, 12 layers, MLP 2048, untied 32000-row classifier), seeded uniform ±1/√in, written once as a Q8_0 GGUF; ")
            .Append(culture, $"the Q8_0 device keeps the file's blocks, the BF16 device their values rounded to bf16, llama.cpp mmaps the file. Streamed per token: {streamed / 1e6:F1} M matrix weights, ")
            .AppendLine(culture, $"{bf16Bytes / 1e6:F0} MB in bf16, {q8Bytes / 1e6:F0} MB in Q8_0.");
        sb.AppendLine();
        sb.AppendLine("Over rounds: the median, and the fastest round (the least disturbed by the other run's load).");
        sb.AppendLine();
        sb.AppendLine("| runner | prefill ms: median (fastest) | decode ms/token: median (fastest) | decode GB/s of weights: median (fastest) |");
        sb.AppendLine("|---|---:|---:|---:|");
        foreach ((string name, double bytes) in new[] { (bf16, bf16Bytes), (q8, q8Bytes), (llamaCpp, q8Bytes) })
        {
            double prefill = Median(results[name].Select(r => r.Prefill)), decode = Median(results[name].Select(r => r.Decode));
            double fastPrefill = results[name].Min(r => r.Prefill), fastDecode = results[name].Min(r => r.Decode);
            sb.AppendLine(culture, $"| {name} | {prefill:F1} ({fastPrefill:F1}) | {decode:F2} ({fastDecode:F2}) | {bytes / (decode * 1e-3) / 1e9:F1} ({bytes / (fastDecode * 1e-3) / 1e9:F1}) |");
        }
        sb.AppendLine();
        sb.AppendLine("Ratios within each round (> 1: the device Q8_0 is faster); median over rounds, and the smallest and largest round:");
        sb.AppendLine();
        sb.AppendLine("| ratio | decode median | decode range | prefill median | prefill range |");
        sb.AppendLine("|---|---:|---|---:|---|");
        foreach ((string label, string other) in new[] { ("device BF16 ÷ device Q8_0", bf16), ("llama.cpp Q8_0 ÷ device Q8_0", llamaCpp) })
        {
            double[] decode = [.. results[other].Zip(results[q8], (o, q) => o.Decode / q.Decode)];
            double[] prefill = [.. results[other].Zip(results[q8], (o, q) => o.Prefill / q.Prefill)];
            sb.AppendLine(culture, $"| {label} | {Median(decode):F2}× | {decode.Min():F2}× … {decode.Max():F2}× | {Median(prefill):F2}× | {prefill.Min():F2}× … {prefill.Max():F2}× |");
        }
        sb.AppendLine();
        sb.AppendLine(culture, $"Device time per decode step by operator (one more clocked run of each device after the rounds; ms per token, {steps} steps):");
        sb.AppendLine();
        sb.AppendLine(culture, $"| operator | {bf16} | {q8} |");
        sb.AppendLine("|---|---:|---:|");
        foreach (string op in operators.Values.SelectMany(o => o.Keys).Distinct().OrderByDescending(o => operators[bf16].GetValueOrDefault(o).Milliseconds))
        {
            sb.AppendLine(culture, $"| {op} | {operators[bf16].GetValueOrDefault(op).Milliseconds / steps:F3} | {operators[q8].GetValueOrDefault(op).Milliseconds / steps:F3} |");
        }
        sb.AppendLine();
        sb.AppendLine("Per round (decode ms/token; prefill ms):");
        sb.AppendLine();
        sb.AppendLine(culture, $"| round | {bf16} | {q8} | {llamaCpp} |");
        sb.AppendLine("|---:|---:|---:|---:|");
        for (int r = 0; r < rounds; r++)
        {
            sb.AppendLine(culture, $"| {r + 1} | {results[bf16][r].Decode:F2}; {results[bf16][r].Prefill:F0} | {results[q8][r].Decode:F2}; {results[q8][r].Prefill:F0} | {results[llamaCpp][r].Decode:F2}; {results[llamaCpp][r].Prefill:F0} |");
        }
        return sb.ToString();
    }

    private interface IQuantizedRunner : IDisposable
    {
        string Name { get; }

        /// <summary>Prefills <paramref name="prompt"/> from position 0, then decodes greedily; returns the prefill's ms, then each step's.</summary>
        double[] Run(int[] prompt, int decodeSteps);
    }

    /// <summary>The device with CC off, loading the GGUF in <paramref name="precision"/>.</summary>
    private sealed class DeviceGgufRunner : IQuantizedRunner
    {
        private readonly NpuDevice _device;
        private readonly NpuRuntime _runtime;
        private readonly CausalLM _model;
        private readonly int[] _one = new int[1];

        public DeviceGgufRunner(string gguf, WeightPrecision precision)
        {
            _device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 4L << 30 });
            _runtime = new NpuRuntime(_device, ownsDevice: true);
            try
            {
                using var checkpoint = ModelCheckpoint.Open(gguf);
                _model = CausalLM.Load(_runtime, checkpoint, new CausalLMOptions { MaxContext = MaxContext, MaxBatchTokens = PromptTokens, WeightPrecision = precision });
            }
            catch
            {
                _runtime.Dispose();
                throw;
            }
            Name = $"device {precision}";
        }

        public string Name { get; }

        /// <summary>A run whose timed decode steps are clocked per operator on the device.</summary>
        public IReadOnlyDictionary<string, (double Milliseconds, long Launches)> ClockedDecode(int[] prompt, int warmSteps, int steps)
        {
            int next = _model.Forward(prompt, 0);
            for (int i = 0; i < warmSteps; i++)
            {
                _one[0] = next;
                next = _model.Forward(_one, prompt.Length + i);
            }
            _device.OperatorClock.Reset();
            _device.OperatorClock.Enabled = true;
            for (int i = 0; i < steps; i++)
            {
                _one[0] = next;
                next = _model.Forward(_one, prompt.Length + warmSteps + i);
            }
            _device.OperatorClock.Enabled = false;
            return _device.OperatorClock.Read();
        }

        public double[] Run(int[] prompt, int decodeSteps)
        {
            var times = new double[1 + decodeSteps];
            long start = Stopwatch.GetTimestamp();
            int next = _model.Forward(prompt, 0);
            times[0] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            for (int i = 1; i <= decodeSteps; i++)
            {
                start = Stopwatch.GetTimestamp();
                _one[0] = next;
                next = _model.Forward(_one, prompt.Length + i - 1);
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
            return times;
        }

        public void Dispose()
        {
            _model.Dispose();
            _runtime.Dispose();
        }
    }

    /// <summary>llama.cpp on the GGUF, CPU only, 2 threads for decode and prefill; greedy pick in C# (as the device's sampler picks on the device).</summary>
    private sealed class LlamaCppRunner : IQuantizedRunner
    {
        private readonly LLamaWeights _weights;
        private readonly LLamaContext _context;
        private readonly LLamaBatch _batch = new();

        public LlamaCppRunner(string gguf)
        {
            // LLamaSharp picks its native library (the CPU backend package) on first use.
            NativeApi.llama_empty_call();
            var parameters = new ModelParams(gguf) { ContextSize = MaxContext, BatchSize = PromptTokens, GpuLayerCount = 0, Threads = 2, BatchThreads = 2 };
            _weights = LLamaWeights.LoadFromFile(parameters);
            _context = _weights.CreateContext(parameters);
        }

        public string Name => "llama.cpp Q8_0";

        public double[] Run(int[] prompt, int decodeSteps)
        {
            var times = new double[1 + decodeSteps];
            _context.NativeHandle.MemoryClear();
            _batch.Clear();
            for (int i = 0; i < prompt.Length; i++)
            {
                _batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
            }
            long start = Stopwatch.GetTimestamp();
            int next = Decode();
            times[0] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            for (int i = 1; i <= decodeSteps; i++)
            {
                start = Stopwatch.GetTimestamp();
                _batch.Clear();
                _batch.Add(next, prompt.Length + i - 1, LLamaSeqId.Zero, true);
                next = Decode();
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
            return times;
        }

        private int Decode()
        {
            if (_context.Decode(_batch) != DecodeResult.Ok)
            {
                throw new InvalidOperationException("llama_decode failed");
            }
            Span<float> logits = _context.NativeHandle.GetLogitsIth(_batch.TokenCount - 1);
            int best = 0;
            for (int v = 1; v < logits.Length; v++)
            {
                if (logits[v] > logits[best])
                {
                    best = v;
                }
            }
            return best;
        }

        public void Dispose()
        {
            _context.Dispose();
            _weights.Dispose();
        }
    }
}
