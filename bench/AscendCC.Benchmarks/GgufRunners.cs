using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using LLama;
using LLama.Common;
using LLama.Native;

namespace AscendCC.Benchmarks;

/// <summary>
/// The GGUF files the llama.cpp comparisons (the quantized and llamacpp suites) run on: a Llama shape
/// of seeded random weights or stories260K written as an F32 GGUF, and llama.cpp's own quantizer
/// writing the other precisions from it; and what a decode step streams from each.
/// </summary>
internal static class GgufModels
{
    /// <summary>
    /// Writes <paramref name="config"/>'s shape with uniform ±1/√in weights (seeded by tensor name),
    /// all in F32, and a SentencePiece-style vocabulary llama.cpp accepts; context_length is the
    /// config's <see cref="ModelConfig.MaxPositionEmbeddings"/>. A tied config has no output.weight
    /// (llama.cpp then uses token_embd as the classifier). The architecture is the config's (llama, or
    /// qwen3 with its per-head q/k norms, weights 1, and its head_dim as key_length). With
    /// <paramref name="layerType"/> Q4_0 the layers' matrices are written in it and the embedding and
    /// classifier in Q8_0 (the types a Q4_0 device keeps them in), quantized here from the same values:
    /// for shapes whose F32 file would not fit the disk (an 8B's is 32 GB).
    /// </summary>
    public static LlamaConfig WriteRandomLlama(string path, LlamaConfig config, GgufTensorType layerType = GgufTensorType.F32)
    {
        int hidden = config.HiddenSize, layers = config.NumHiddenLayers, heads = config.NumAttentionHeads, ffn = config.IntermediateSize, vocab = config.VocabSize;
        int headDim = config.HeadDim, qDim = heads * headDim, kvDim = config.NumKeyValueHeads * headDim;
        string a = GgufLlamaLayout.ArchitectureOf(config);
        if (config.QkvBias)
        {
            throw new ArgumentException("random GGUFs are written without q/k/v biases; a qwen2 shape is not written here", nameof(config));
        }
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        tokens.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        tokens.AddRange(Enumerable.Range(0, vocab - tokens.Count).Select(i => "\u2581w" + i.ToString(CultureInfo.InvariantCulture)));
        int[] types = [.. tokens.Select((_, i) => i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1)];
        var writer = new GgufWriter()
            .Add("general.architecture", a)
            .Add($"{a}.context_length", (uint)config.MaxPositionEmbeddings).Add($"{a}.embedding_length", (uint)hidden).Add($"{a}.block_count", (uint)layers)
            .Add($"{a}.feed_forward_length", (uint)ffn).Add($"{a}.rope.dimension_count", (uint)headDim)
            .Add($"{a}.attention.head_count", (uint)heads).Add($"{a}.attention.head_count_kv", (uint)config.NumKeyValueHeads)
            .Add($"{a}.attention.key_length", (uint)headDim).Add($"{a}.attention.value_length", (uint)headDim)
            .Add($"{a}.attention.layer_norm_rms_epsilon", (float)config.RmsNormEps).Add($"{a}.rope.freq_base", (float)config.RopeTheta)
            .Add("tokenizer.ggml.model", "llama")
            .Add("tokenizer.ggml.tokens", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.String, tokens.ToArray())))
            .Add("tokenizer.ggml.scores", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.Float32, tokens.Select((_, i) => -(float)i).ToArray())))
            .Add("tokenizer.ggml.token_type", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.Int32, types)))
            .Add("tokenizer.ggml.bos_token_id", 1u).Add("tokenizer.ggml.eos_token_id", 2u).Add("tokenizer.ggml.unknown_token_id", 0u);
        GgufTensorType tableType = layerType == GgufTensorType.F32 ? GgufTensorType.F32 : GgufTensorType.Q8_0;
        void Matrix(string name, int rows, int cols) => writer.AddTensor(name, [rows, cols], name.StartsWith("blk.", StringComparison.Ordinal) ? layerType : tableType,
            () => Uniform(name, (long)rows * cols, 1f / MathF.Sqrt(cols)));
        void Norm(string name, int width) => writer.AddTensor(name, [width], GgufTensorType.F32, () => Enumerable.Repeat(1f, width).ToArray());
        Matrix("token_embd.weight", vocab, hidden);
        for (int l = 0; l < layers; l++)
        {
            Norm($"blk.{l}.attn_norm.weight", hidden);
            Matrix($"blk.{l}.attn_q.weight", qDim, hidden);
            Matrix($"blk.{l}.attn_k.weight", kvDim, hidden);
            Matrix($"blk.{l}.attn_v.weight", kvDim, hidden);
            if (config.QkNorm)
            {
                Norm($"blk.{l}.attn_q_norm.weight", headDim);
                Norm($"blk.{l}.attn_k_norm.weight", headDim);
            }
            Matrix($"blk.{l}.attn_output.weight", hidden, qDim);
            Norm($"blk.{l}.ffn_norm.weight", hidden);
            Matrix($"blk.{l}.ffn_gate.weight", ffn, hidden);
            Matrix($"blk.{l}.ffn_up.weight", ffn, hidden);
            Matrix($"blk.{l}.ffn_down.weight", hidden, ffn);
        }
        Norm("output_norm.weight", hidden);
        if (!config.TieWordEmbeddings)
        {
            Matrix("output.weight", vocab, hidden);
        }
        writer.Write(path);
        using var checkpoint = ModelCheckpoint.Open(path);
        return (LlamaConfig)checkpoint.Config;
    }

    /// <summary>
    /// Writes the Llama checkpoint in <paramref name="folder"/> (stories260K) as an F32 GGUF the way
    /// llama.cpp's converter does (<see cref="GgufWriter.WriteLlama"/>: its tokenizer, q/k rows
    /// permuted to the interleaved order), then, if <paramref name="contextLength"/> is larger than
    /// the model's trained context, raises llama.context_length in place so that both engines accept
    /// longer contexts (RoPE extrapolates; the values stop meaning anything, the work per token does not
    /// change). Returns the file's config.
    /// </summary>
    public static LlamaConfig WriteCheckpoint(string path, string folder, int contextLength)
    {
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            GgufWriter.WriteLlama(path, checkpoint, TextTokenizer.Load(folder), GgufTensorType.F32);
        }
        using (var file = GgufFile.Open(path))
        {
            if (file.Metadata.GetInt32("llama.context_length") >= contextLength)
            {
                using var trained = ModelCheckpoint.Open(path);
                return (LlamaConfig)trained.Config;
            }
        }
        // The key as GGUF stores it (u64 length, UTF-8 name), then the value type (4 = uint32) and the value.
        byte[] key = Encoding.UTF8.GetBytes("llama.context_length");
        byte[] pattern = new byte[8 + key.Length + 4];
        BinaryPrimitives.WriteUInt64LittleEndian(pattern, (ulong)key.Length);
        key.CopyTo(pattern, 8);
        BinaryPrimitives.WriteUInt32LittleEndian(pattern.AsSpan(8 + key.Length), 4);
        byte[] head = new byte[Math.Min(new FileInfo(path).Length, 1 << 20)];
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.ReadExactly(head);
            int at = head.AsSpan().IndexOf(pattern);
            if (at < 0)
            {
                throw new InvalidOperationException($"{path}: no uint32 llama.context_length in the header");
            }
            Span<byte> value = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(value, (uint)contextLength);
            stream.Position = at + pattern.Length;
            stream.Write(value);
        }
        using var reopened = ModelCheckpoint.Open(path);
        return (LlamaConfig)reopened.Config;
    }

    /// <summary>llama.cpp's quantizer (llama_model_quantize, 2 threads) writes <paramref name="output"/> from <paramref name="f32"/>; false when it refuses.</summary>
    public static bool Quantize(string f32, string output, LLamaFtype ftype)
    {
        // LLamaQuantizer calls llama.cpp without running LLamaSharp's library selection; this does.
        NativeApi.llama_empty_call();
        if (ftype == LLamaFtype.MOSTLY_BF16)
        {
            // LLamaQuantizer's own list of types leaves BF16 out ("not a valid type to perform
            // quantization"); llama.cpp's llama_model_quantize writes it. The same parameters as below.
            LLamaModelQuantizeParams parameters = LLamaModelQuantizeParams.Default();
            parameters.ftype = ftype;
            parameters.nthread = 2;
            parameters.allow_requantize = false;
            parameters.quantize_output_tensor = true;
            return NativeApi.llama_model_quantize(f32, output, ref parameters) == 0;
        }
        // quantizeOutputTensor: llama.cpp's own recipe for output.weight (Q8_0 in a Q8_0 file, Q6_K in a Q4_0 one) rather than leaving it F32.
        return LLamaQuantizer.Quantize(f32, output, ftype, nthread: 2, allowRequantize: false, quantizeOutputTensor: true);
    }

    /// <summary>
    /// Matrix bytes a device decode step streams: the layers' matrices and the classifier (an untied
    /// embedding is only gathered; a tied one is the classifier). Q4_0 and Q4_K keep the classifier in Q8_0;
    /// <paramref name="matrices"/> are a mixed deployment's other types (a Q4_K_M file's Q6_K matrices in Q8_0).
    /// </summary>
    public static double StreamedBytes(LlamaConfig config, WeightPrecision precision, IReadOnlyDictionary<string, WeightPrecision>? matrices = null)
    {
        static double Bits(WeightPrecision p) => p switch
        {
            WeightPrecision.BF16 or WeightPrecision.F16 => 16,
            WeightPrecision.Q8_0 => 8.5,
            WeightPrecision.Q4_0 => 4.5,
            // The device keeps Q4_K's scales and mins unpacked per strip: 4.75 bits where GGUF has 4.5.
            WeightPrecision.Q4_K => 4.75,
            _ => 32,
        };
        WeightPrecision table = precision is WeightPrecision.Q4_0 or WeightPrecision.Q4_K ? WeightPrecision.Q8_0 : precision;
        bool IsClassifier(string name) => name == config.LmHeadTensorName || (config.TieWordEmbeddings && name == config.EmbeddingTensorName);
        return config.ExpectedTensors().Where(t => t.Shape.Length == 2 && (config.TieWordEmbeddings || t.Name != config.EmbeddingTensorName))
            .Sum(t => t.Shape[0] * t.Shape[1] * Bits(matrices is not null && matrices.TryGetValue(t.Name, out WeightPrecision kept) ? kept : IsClassifier(t.Name) ? table : precision) / 8);
    }

    /// <summary>The same for llama.cpp: the stored bytes of every matrix but an untied token embedding.</summary>
    public static double StreamedBytes(string gguf)
    {
        using var file = GgufFile.Open(gguf);
        bool tied = !file.Tensors.Any(t => t.Name == "output.weight");
        return file.Tensors.Where(t => t.Shape.Length == 2 && (tied || t.Name != "token_embd.weight")).Sum(t => (double)t.ByteLength);
    }

    /// <summary>The matrices a device of <paramref name="precision"/> keeps wider than it, as <see cref="CausalLM.Load(NpuRuntime, ModelCheckpoint, CausalLMOptions)"/> does.</summary>
    public static IReadOnlyDictionary<string, WeightPrecision> KeptWider(string gguf, WeightPrecision precision)
    {
        using var checkpoint = ModelCheckpoint.Open(gguf);
        return CheckpointPrecisions.For(checkpoint, precision);
    }

    /// <summary>The stored types of a file's matrices: the layers' and each other matrix's.</summary>
    public static string DescribeTypes(string gguf)
    {
        using var file = GgufFile.Open(gguf);
        return string.Join(", ", file.Tensors.Where(t => t.Shape.Length == 2).GroupBy(t => t.Name.StartsWith("blk.", StringComparison.Ordinal) ? "layers" : t.Name)
            .Select(g => $"{g.Key} {string.Join("/", g.Select(t => GgufTensorTypes.Name(t.Type)).Distinct())}"));
    }

    /// <summary>xorshift64* from an FNV hash of <paramref name="name"/>: <paramref name="count"/> values in ±<paramref name="scale"/>.</summary>
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
}

/// <summary>
/// The device with CC off, loading a GGUF directly (<see cref="CausalLM.Load(NpuRuntime, ModelCheckpoint, CausalLMOptions)"/>)
/// in <c>precision</c>, graph mode.
/// </summary>
internal sealed class DeviceGgufRunner : ISteppedRunner
{
    private readonly NpuDevice _device;
    private readonly NpuRuntime _runtime;
    private readonly CausalLM _model;
    private readonly int[] _one = new int[1];
    private int _next, _position;

    public DeviceGgufRunner(string gguf, WeightPrecision precision, int maxContext, int maxBatchTokens, string? name = null,
        KvCachePrecision kvPrecision = CausalLMOptions.DefaultKvCachePrecision)
    {
        _device = new NpuDevice(new NpuDeviceOptions { HbmCapacity = 8L << 30 });
        _runtime = new NpuRuntime(_device, ownsDevice: true);
        try
        {
            using var checkpoint = ModelCheckpoint.Open(gguf);
            _model = CausalLM.Load(_runtime, checkpoint, new CausalLMOptions { MaxContext = maxContext, MaxBatchTokens = maxBatchTokens, WeightPrecision = precision, KvCachePrecision = kvPrecision });
        }
        catch
        {
            _runtime.Dispose();
            throw;
        }
        Name = name ?? $"device {precision}";
        WeightBytes = precision switch { WeightPrecision.F32 => 4, WeightPrecision.BF16 or WeightPrecision.F16 => 2, _ => 1 };
    }

    public string Name { get; }

    public bool IsBaseline => false;

    /// <summary>Bytes per weight, rounded (Q8_0 and Q4_0: 1).</summary>
    public int WeightBytes { get; }

    public DeviceMemoryInfo? Hbm => _runtime.MemoryInfo;

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

    public double[] Run(int[] prompt, int decodeSteps) => SteppedRuns.Run(this, prompt, decodeSteps);

    public double Begin(int[] prompt, int maxSteps)
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

    public void End()
    {
    }

    public void Dispose()
    {
        _model.Dispose();
        _runtime.Dispose();
    }
}

/// <summary>
/// llama.cpp (LLamaSharp 0.30.0) on a GGUF, CPU only, the file memory-mapped, 2 threads for decode
/// and prefill, one batch of up to <c>maxBatchTokens</c> (llama.cpp splits it into its default
/// 512-token micro-batches); greedy pick in C# (as the device's sampler picks on the device).
/// </summary>
internal sealed class LlamaCppRunner : ISteppedRunner
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();
    private int _next, _position;

    public LlamaCppRunner(string gguf, string name, int contextSize, int maxBatchTokens, GGMLType? cacheType = null)
    {
        Name = name;
        // LLamaSharp picks its native library (the CPU backend package) on first use.
        NativeApi.llama_empty_call();
        Parameters = new ModelParams(gguf)
        {
            ContextSize = (uint)contextSize, BatchSize = (uint)maxBatchTokens, GpuLayerCount = 0, Threads = 2, BatchThreads = 2,
            LoadMode = LLamaLoadMode.MemoryMap,
        };
        if (cacheType is { } type)
        {
            // A quantized V cache needs flash attention, which llama.cpp turns on by itself on the CPU (auto).
            Parameters.TypeK = type;
            Parameters.TypeV = type;
        }
        _weights = LLamaWeights.LoadFromFile(Parameters);
        _context = _weights.CreateContext(Parameters);
    }

    public string Name { get; }

    /// <summary>The parameters it was loaded with (for the report).</summary>
    public ModelParams Parameters { get; }

    public bool IsBaseline => false;

    public int WeightBytes => 1;

    public DeviceMemoryInfo? Hbm => null;

    public double[] Run(int[] prompt, int decodeSteps) => SteppedRuns.Run(this, prompt, decodeSteps);

    public double Begin(int[] prompt, int maxSteps)
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

    public void End()
    {
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

/// <summary><see cref="ILlamaRunner.Run"/> from a stepped runner's Begin, Step and End.</summary>
internal static class SteppedRuns
{
    public static double[] Run(ISteppedRunner runner, int[] prompt, int decodeSteps)
    {
        var times = new double[1 + decodeSteps];
        times[0] = runner.Begin(prompt, decodeSteps);
        for (int i = 1; i <= decodeSteps; i++)
        {
            times[i] = runner.Step();
        }
        runner.End();
        return times;
    }
}
