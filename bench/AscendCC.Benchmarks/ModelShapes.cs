using System.Runtime.InteropServices;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;

namespace AscendCC.Benchmarks;

/// <summary>
/// A model shape the suites run, of any family: its configuration, where its weights come from (a
/// real checkpoint, its family read from config.json, or seeded random values generated straight into
/// the device precision) and the work per token, for the GFLOPS and GB/s columns.
/// </summary>
internal sealed class ModelShape : IDisposable
{
    private readonly ModelCheckpoint? _checkpoint;

    private ModelShape(string name, ModelConfig config, RopeConvention rope, ModelCheckpoint? checkpoint)
    {
        Name = name;
        Config = config;
        Rope = rope;
        _checkpoint = checkpoint;
    }

    public string Name { get; }

    public ModelConfig Config { get; }

    public RopeConvention Rope { get; }

    /// <summary>The real checkpoint (stories260K), or null for random weights.</summary>
    public ModelCheckpoint? Checkpoint => _checkpoint;

    /// <summary>stories260K from the shared models folder, or null when it is not there.</summary>
    public static ModelShape? Stories260K()
    {
        string? folder = FindSharedModel("stories260K");
        if (folder is null)
        {
            return null;
        }
        ModelCheckpoint checkpoint = ModelCheckpoint.Open(folder);
        return new ModelShape("stories260K", checkpoint.Config, checkpoint.RopeConvention, checkpoint);
    }

    /// <summary>
    /// A checkpoint (a folder, a llama2.c .bin or a GGUF file) as a shape whose weights are read from
    /// it as stored (<see cref="TensorData.FromCheckpoint"/>: GGUF Q8_0 and Q4_0 blocks kept as they are).
    /// </summary>
    public static ModelShape Open(string name, string path)
    {
        ModelCheckpoint checkpoint = ModelCheckpoint.Open(path);
        return new ModelShape(name, checkpoint.Config, checkpoint.RopeConvention, checkpoint);
    }

    /// <summary>
    /// A Llama-2 style 110M (llama2.c's stories110M shape); a smaller <paramref name="vocabSize"/> lets
    /// a smaller tokenizer's ids fit (the serve suite uses stories260K's 512).
    /// </summary>
    public static ModelShape Llama110M(int maxPositions, int vocabSize) => Random("110M", 768, 12, 12, 12, 2048, tied: false, maxPositions, vocabSize);

    /// <summary>A Llama-2 style 110M with Llama 2's 32000-token vocabulary (a method group for the suites' shape factories).</summary>
    public static ModelShape Llama110M(int maxPositions) => Llama110M(maxPositions, 32000);

    /// <summary>
    /// TinyLlama 1.1B's shape. Tied embeddings (TinyLlama has a separate lm_head): a confidential
    /// package used to be one managed byte array, at most 2 GiB, and 1.1B bf16 weights with a separate
    /// classifier are 2.2 GB; packages are staged from files now, and the shape stays tied so results
    /// compare across runs. The classifier is still streamed once per token, so the work per token
    /// is the same; only 131 MB of storage is saved. Every runner uses the same tied shape.
    /// </summary>
    public static ModelShape Llama1B(int maxPositions) => Random("1.1B", 2048, 22, 32, 4, 5632, tied: true, maxPositions);

    /// <summary>
    /// Qwen3-0.6B's shape (Qwen/Qwen3-0.6B: hidden 1024, 28 layers, 16 heads / 8 KV heads of head_dim 128 —
    /// q is 2048 wide, twice the hidden size — MLP 3072, 151936-token vocabulary, tied classifier, per-head
    /// q/k norms, RoPE theta 10⁶): the architecture's most downloaded size. Its classifier is a third of
    /// the weights a decode step streams.
    /// </summary>
    public static ModelShape Qwen3_0_6B(int maxPositions) => Shape("Qwen3 0.6B", LlamaShape(1024, 28, 16, 8, 3072, tied: true, maxPositions, 151936) with
    {
        Architecture = LlamaConfig.Qwen3Architecture,
        ModelType = "qwen3",
        QkNorm = true,
        ExplicitHeadDim = 128,
        RmsNormEps = 1e-6,
        RopeTheta = 1000000,
    });

    /// <summary>
    /// Llama 3 8B's shape (meta-llama/Meta-Llama-3-8B: hidden 4096, 32 layers, 32 heads / 8 KV heads, MLP
    /// 14336, untied 128256-token vocabulary, RoPE theta 500000): the size most people download as a GGUF.
    /// </summary>
    public static ModelShape Llama3_8B(int maxPositions) =>
        Shape("8B", LlamaShape(4096, 32, 32, 8, 14336, tied: false, maxPositions, 128256) with { RopeTheta = 500000 });

    /// <summary>
    /// GPT-Neo 125M's shape (EleutherAI/gpt-neo-125M: hidden 768, 12 layers alternating global and
    /// local attention with a window of 256, 12 heads, MLP 3072, vocabulary 50257, tied classifier),
    /// the smallest model of the paper's evaluation.
    /// </summary>
    public static ModelShape GptNeo125M(int maxPositions)
    {
        var config = new GptNeoConfig
        {
            Architecture = "GPTNeoForCausalLM",
            ModelType = "gpt_neo",
            HiddenSize = 768,
            IntermediateSize = 3072,
            NumHiddenLayers = 12,
            NumAttentionHeads = 12,
            VocabSize = 50257,
            MaxPositionEmbeddings = Math.Max(maxPositions, 2048),
            AttentionLayers = [.. Enumerable.Range(0, 12).Select(l => l % 2 == 0 ? GptNeoConfig.GlobalAttention : GptNeoConfig.LocalAttention)],
            WindowSize = 256,
            TieWordEmbeddings = true,
            BosTokenId = 50256,
            EosTokenIds = [50256],
        };
        config.Validate();
        return new ModelShape("GPT-Neo 125M", config, RopeConvention.Half, null);
    }

    private static ModelShape Random(string name, int hidden, int layers, int heads, int kvHeads, int intermediate, bool tied, int maxPositions, int vocabSize = 32000) =>
        Shape(name, LlamaShape(hidden, layers, heads, kvHeads, intermediate, tied, maxPositions, vocabSize));

    /// <summary>A Llama-2 style configuration of these sizes (RMSNorm eps 1e-5, RoPE theta 10⁴, BOS 1, EOS 2), for a shape to adjust.</summary>
    private static LlamaConfig LlamaShape(int hidden, int layers, int heads, int kvHeads, int intermediate, bool tied, int maxPositions, int vocabSize) => new()
    {
        Architecture = "LlamaForCausalLM",
        ModelType = "llama",
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        NumKeyValueHeads = kvHeads,
        VocabSize = vocabSize,
        MaxPositionEmbeddings = maxPositions,
        RmsNormEps = 1e-5,
        TieWordEmbeddings = tied,
        BosTokenId = 1,
        EosTokenIds = [2],
    };

    /// <summary>A random-weight shape of <paramref name="config"/> (validated).</summary>
    private static ModelShape Shape(string name, LlamaConfig config)
    {
        config.Validate();
        return new ModelShape(name, config, RopeConvention.Half, null);
    }

    /// <summary>Longest context the shape supports.</summary>
    public int MaxPositions => Config.MaxPositionEmbeddings;

    /// <summary>
    /// Parameters of every matrix a decode step streams: each layer's projections and the classifier
    /// (the embedding when tied). Tables read a row at a time — an untied token embedding, GPT-Neo's
    /// learned positions — are not streamed.
    /// </summary>
    public long StreamedMatrixParameters
    {
        get
        {
            ModelConfig c = Config;
            var rowTables = new HashSet<string>(StringComparer.Ordinal) { AscendCC.Runtime.GptNeo.GptNeoTensorNames.PositionEmbedding };
            if (!c.TieWordEmbeddings)
            {
                rowTables.Add(c.EmbeddingTensorName);
            }
            return c.ExpectedTensors().Where(t => t.Shape.Length == 2 && !rowTables.Contains(t.Name)).Sum(t => t.Shape[0] * t.Shape[1]);
        }
    }

    /// <summary>FLOPs of a prefill of <paramref name="tokens"/> from position 0 (classifier on the last position only).</summary>
    public double PrefillFlops(int tokens)
    {
        ModelConfig c = Config;
        double classifier = 2.0 * c.VocabSize * c.HiddenSize;
        double matrices = 2.0 * (StreamedMatrixParameters - ((long)c.VocabSize * c.HiddenSize)) * tokens;
        // Causal attention: each query i sees i + 1 keys; QKᵀ and PV are 2 FLOPs per multiply-add each.
        double attention = 4.0 * c.NumHiddenLayers * c.NumAttentionHeads * c.HeadDim * (tokens * (tokens + 1.0) / 2);
        return matrices + attention + classifier;
    }

    /// <summary>Weights by Hugging Face name, in <paramref name="precision"/> (vectors stay f32).</summary>
    /// <summary>
    /// A checkpoint's matrices a device of <paramref name="precision"/> keeps wider, as
    /// <see cref="CausalLM.Load(AscendCC.Runtime.Acl.NpuRuntime, ModelCheckpoint, CausalLMOptions)"/> keeps them
    /// (<see cref="CheckpointPrecisions.For"/>); null for random weights.
    /// </summary>
    public IReadOnlyDictionary<string, WeightPrecision>? MatrixPrecisions(WeightPrecision precision) =>
        _checkpoint is null ? null : CheckpointPrecisions.For(_checkpoint, precision);

    public TensorData Weight(string name, WeightPrecision precision)
    {
        if (_checkpoint is not null)
        {
            return TensorData.FromCheckpoint(_checkpoint.GetTensor(name));
        }
        long[] shape = Config.ExpectedTensors().First(e => e.Name == name).Shape;
        return shape.Length == 1 ? Ones(name, shape) : RandomMatrix(name, shape, precision);
    }

    private static TensorData Ones(string name, long[] shape)
    {
        float[] values = new float[shape[0]];
        Array.Fill(values, 1f);
        return TensorData.FromFloat32(name, shape, values);
    }

    /// <summary>
    /// Uniform values in ±1/√in, generated in parallel chunks from a per-tensor, per-chunk seed (so
    /// the result does not depend on the thread count) and written directly as bf16 or f32 bytes.
    /// </summary>
    private static TensorData RandomMatrix(string name, long[] shape, WeightPrecision precision)
    {
        long count = shape[0] * shape[1];
        float scale = 1f / MathF.Sqrt(shape[1]);
        int width = precision == WeightPrecision.F32 ? 4 : 2;
        byte[] bytes = GC.AllocateUninitializedArray<byte>(checked((int)(count * width)));
        const int Chunk = 1 << 20;
        ulong nameSeed = Fnv(name);
        int chunks = (int)((count + Chunk - 1) / Chunk);
        Parallel.For(0, chunks, c =>
        {
            ulong s = (nameSeed ^ ((ulong)c * 0x9E3779B97F4A7C15UL)) | 1;
            long start = (long)c * Chunk, end = Math.Min(count, start + Chunk);
            if (width == 4)
            {
                Span<float> f = MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
                for (long i = start; i < end; i++)
                {
                    f[(int)i] = Next(ref s) * scale;
                }
            }
            else
            {
                Span<ushort> h = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                for (long i = start; i < end; i++)
                {
                    h[(int)i] = (ushort)(BitConverter.SingleToUInt32Bits(Next(ref s) * scale) >> 16);
                }
            }
        });
        TensorDType dtype = precision switch
        {
            WeightPrecision.F32 => TensorDType.F32,
            WeightPrecision.BF16 => TensorDType.BF16,
            _ => TensorDType.F16,
        };
        if (precision == WeightPrecision.F16)
        {
            throw new NotSupportedException("the llama suite generates f32 or bf16 weights");
        }
        return new TensorData(name, dtype, shape, bytes);
    }

    /// <summary>xorshift64* to a float in [-1, 1).</summary>
    private static float Next(ref ulong s)
    {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        ulong r = s * 0x2545F4914F6CDD1DUL;
        return ((r >> 40) * (1f / (1 << 23))) - 1f;
    }

    private static ulong Fnv(string text)
    {
        ulong h = 14695981039346656037UL;
        foreach (char ch in text)
        {
            h = (h ^ ch) * 1099511628211UL;
        }
        return h;
    }

    /// <summary>The folder of a shared model (../shared/models beside the repository, or $ASCENDCC_MODELS), or null when it is not there.</summary>
    public static string? FindSharedModel(string name)
    {
        string? env = Environment.GetEnvironmentVariable("ASCENDCC_MODELS");
        if (env is not null && Directory.Exists(Path.Combine(env, name)))
        {
            return Path.Combine(env, name);
        }
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "AscendCC.Runtime.sln")))
            {
                string path = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "models", name));
                return Directory.Exists(path) ? path : null;
            }
        }
        return null;
    }

    public void Dispose() => _checkpoint?.Dispose();
}
