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
            LlamaConfig config = Write110M(f32);
            NativeApi.llama_empty_call();
            foreach ((string path, LLamaFtype ftype) in new[] { (q8File, LLamaFtype.MOSTLY_Q8_0), (q4File, LLamaFtype.MOSTLY_Q4_0) })
            {
                // quantizeOutputTensor: llama.cpp's own recipe for output.weight (Q8_0 in a Q8_0 file, Q6_K in a Q4_0 one) rather than leaving it F32.
                if (!LLamaQuantizer.Quantize(f32, path, ftype, nthread: 2, allowRequantize: false, quantizeOutputTensor: true))
                {
                    throw new InvalidOperationException($"llama_model_quantize to {ftype} failed");
                }
            }
            File.Delete(f32);
            var rng = new Random(11);
            int[] prompt = [1, .. Enumerable.Range(0, PromptTokens - 1).Select(_ => rng.Next(3, config.VocabSize))];

            using var bf16 = new DeviceGgufRunner(q8File, WeightPrecision.BF16);
            using var q8 = new DeviceGgufRunner(q8File, WeightPrecision.Q8_0);
            using var q4 = new DeviceGgufRunner(q4File, WeightPrecision.Q4_0);
            using var llamaQ8 = new LlamaCppRunner(q8File, "llama.cpp Q8_0");
            using var llamaQ4 = new LlamaCppRunner(q4File, "llama.cpp Q4_0");
            IQuantizedRunner[] runners = [bf16, q8, llamaQ8, q4, llamaQ4];
            foreach (IQuantizedRunner runner in runners)
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
                    IQuantizedRunner runner = runners[(i + round) % runners.Length];
                    Thread.Sleep(CoolDown);
                    prefill[runner.Name] = runner.Begin(prompt);
                }
                var decode = runners.ToDictionary(r => r.Name, _ => new List<double>());
                for (int step = 0; step < warmSteps + steps; step++)
                {
                    for (int i = 0; i < runners.Length; i++)
                    {
                        IQuantizedRunner runner = runners[(i + step + round) % runners.Length];
                        Thread.Sleep(StepPause);
                        double ms = runner.Step();
                        if (step >= warmSteps)
                        {
                            decode[runner.Name].Add(ms);
                        }
                    }
                }
                foreach (IQuantizedRunner runner in runners)
                {
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
                [bf16.Name] = StreamedBytes(config, WeightPrecision.BF16),
                [q8.Name] = StreamedBytes(config, WeightPrecision.Q8_0),
                [q4.Name] = StreamedBytes(config, WeightPrecision.Q4_0),
                [llamaQ8.Name] = StreamedBytes(q8File, config),
                [llamaQ4.Name] = StreamedBytes(q4File, config),
            };
            _report = BuildReport(runners.Select(r => r.Name).ToArray(), results, stepTimes, bytes, rounds, steps, warmSteps, loadAtStart, LlamaSuite.LoadAverage(), operators, DescribeTypes(q4File));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Matrix bytes a device decode step streams: the layers' matrices and the classifier (the untied embedding is only gathered).</summary>
    private static double StreamedBytes(LlamaConfig config, WeightPrecision precision)
    {
        double Bits(WeightPrecision p) => p switch
        {
            WeightPrecision.BF16 => 16,
            WeightPrecision.Q8_0 => 8.5,
            WeightPrecision.Q4_0 => 4.5,
            _ => 32,
        };
        WeightPrecision table = precision == WeightPrecision.Q4_0 ? WeightPrecision.Q8_0 : precision;
        return config.ExpectedTensors().Where(t => t.Shape.Length == 2 && t.Name != config.EmbeddingTensorName)
            .Sum(t => t.Shape[0] * t.Shape[1] * Bits(t.Name == config.LmHeadTensorName ? table : precision) / 8);
    }

    /// <summary>The same for llama.cpp: the stored bytes of every matrix but the token embedding.</summary>
    private static double StreamedBytes(string gguf, LlamaConfig config)
    {
        using var file = GgufFile.Open(gguf);
        return file.Tensors.Where(t => t.Shape.Length == 2 && t.Name != "token_embd.weight").Sum(t => (double)t.ByteLength);
    }

    private static string DescribeTypes(string gguf)
    {
        using var file = GgufFile.Open(gguf);
        return string.Join(", ", file.Tensors.Where(t => t.Shape.Length == 2).GroupBy(t => t.Name.StartsWith("blk.", StringComparison.Ordinal) ? "layers" : t.Name)
            .Select(g => $"{g.Key} {string.Join("/", g.Select(t => GgufTensorTypes.Name(t.Type)).Distinct())}"));
    }

    /// <summary>
    /// llama2.c's 110M shape (as <see cref="ModelShape.Llama110M(int)"/>: 768 wide, 12 layers, MLP
    /// 2048, an untied 32000 × 768 classifier) with uniform ±1/√in weights, all in F32, and a
    /// SentencePiece-style vocabulary llama.cpp accepts.
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
        void Matrix(string name, int rows, int cols) => writer.AddTensor(name, [rows, cols], GgufTensorType.F32, () => Uniform(name, (long)rows * cols, 1f / MathF.Sqrt(cols)));
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

    private interface IQuantizedRunner : IDisposable
    {
        string Name { get; }

        /// <summary>Prefills <paramref name="prompt"/> from position 0, then decodes greedily; returns the prefill's ms, then each step's.</summary>
        double[] Run(int[] prompt, int decodeSteps)
        {
            var times = new double[1 + decodeSteps];
            times[0] = Begin(prompt);
            for (int i = 1; i <= decodeSteps; i++)
            {
                times[i] = Step();
            }
            return times;
        }

        /// <summary>Starts a generation: prefills <paramref name="prompt"/> from position 0; returns its ms.</summary>
        double Begin(int[] prompt);

        /// <summary>Decodes the next token greedily; returns its ms.</summary>
        double Step();
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

        private int _next, _position;

        public double Begin(int[] prompt)
        {
            long start = Stopwatch.GetTimestamp();
            _next = _model.Forward(prompt, 0);
            _position = prompt.Length;
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        public double Step()
        {
            long start = Stopwatch.GetTimestamp();
            _one[0] = _next;
            _next = _model.Forward(_one, _position++);
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
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

        public LlamaCppRunner(string gguf, string name)
        {
            Name = name;
            // LLamaSharp picks its native library (the CPU backend package) on first use.
            NativeApi.llama_empty_call();
            var parameters = new ModelParams(gguf) { ContextSize = MaxContext, BatchSize = PromptTokens, GpuLayerCount = 0, Threads = 2, BatchThreads = 2 };
            _weights = LLamaWeights.LoadFromFile(parameters);
            _context = _weights.CreateContext(parameters);
        }

        public string Name { get; }

        private int _next, _position;

        public double Begin(int[] prompt)
        {
            _context.NativeHandle.MemoryClear();
            _batch.Clear();
            for (int i = 0; i < prompt.Length; i++)
            {
                _batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
            }
            long start = Stopwatch.GetTimestamp();
            _next = Decode();
            _position = prompt.Length;
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        public double Step()
        {
            long start = Stopwatch.GetTimestamp();
            _batch.Clear();
            _batch.Add(_next, _position++, LLamaSeqId.Zero, true);
            _next = Decode();
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
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
