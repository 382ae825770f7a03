using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AscendCC.Runtime.Models;
using TorchSharp;
using static TorchSharp.torch;
using AscendCC.Runtime.Tokenizers;

namespace LlamaChat.Demo;

/// <summary>Everything that decides the demo model's weights; its hash names the cache folder.</summary>
/// <param name="Seed">Seeds the corpus, the initialisation and the batch order.</param>
/// <param name="Documents">Corpus size in documents.</param>
/// <param name="Steps">Optimizer steps.</param>
/// <param name="BatchSize">Sequences per step.</param>
/// <param name="SequenceLength">Tokens per sequence.</param>
/// <param name="Hidden">Model width.</param>
/// <param name="Intermediate">MLP width.</param>
/// <param name="Layers">Decoder blocks.</param>
/// <param name="Heads">Query heads.</param>
/// <param name="KvHeads">Key/value heads.</param>
/// <param name="MaxPositions">Context the model is exported with.</param>
/// <param name="LearningRate">Peak AdamW learning rate.</param>
/// <param name="Threads">
/// libtorch intra-op threads while training. Fixed rather than left to the machine because it changes
/// the result: libtorch splits reductions (matmul gradients, the loss, the gradient norm) across its
/// threads, and float sums taken in a different grouping differ in the last bits, which 1500 steps of
/// training carry into different weights. 2 is the documented machine's core count, so the default
/// trains at full speed there and to the same bytes on any larger machine.
/// </param>
public sealed record DemoTrainingSettings(
    int Seed = 20240611,
    int Documents = 6000,
    int Steps = 1500,
    int BatchSize = 4,
    int SequenceLength = 256,
    int Hidden = 64,
    int Intermediate = 172,
    int Layers = 4,
    int Heads = 4,
    int KvHeads = 2,
    int MaxPositions = 256,
    double LearningRate = 3e-3,
    int Threads = 2)
{
    /// <summary>Bumped whenever the trainer's code changes what it produces, so old caches are not reused.</summary>
    /// <remarks>5: the chat format is a Hugging Face chat template in tokenizer_config.json (was llamachat.json).</remarks>
    public const int TrainerVersion = 5;

    /// <summary>The default demo.</summary>
    public static DemoTrainingSettings Default { get; } = new();

    /// <summary>
    /// Everything the trained bytes depend on besides the code: the trainer version, these settings
    /// (the thread count among them), the TorchSharp build (its libtorch kernels) and the processor's
    /// architecture and vector extensions (libtorch picks its kernels, and so its rounding, by them).
    /// </summary>
    public string CacheKey() =>
        $"v{TrainerVersion}:{JsonSerializer.Serialize(this)}:torchsharp {TorchSharpVersion}:{RuntimeInformation.ProcessArchitecture} {VectorExtensions()}";

    /// <summary>A short hash of <see cref="CacheKey"/> (the cache folder's name).</summary>
    public string Hash()
    {
        byte[] digest = SHA256.HashData(Encoding.UTF8.GetBytes(CacheKey()));
        return Convert.ToHexStringLower(digest)[..16];
    }

    /// <summary>The TorchSharp package version that trains (its informational version, without build metadata).</summary>
    public static string TorchSharpVersion { get; } =
        (typeof(torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown")
        .Split('+')[0];

    private static string VectorExtensions() =>
        RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86
            ? $"avx2={System.Runtime.Intrinsics.X86.Avx2.IsSupported} fma={System.Runtime.Intrinsics.X86.Fma.IsSupported} avx512={System.Runtime.Intrinsics.X86.Avx512F.IsSupported}"
            : $"advsimd={System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported}";
}

/// <summary>One point of training progress.</summary>
/// <param name="Step">Steps done.</param>
/// <param name="Steps">Total steps.</param>
/// <param name="Loss">Loss of the last step.</param>
public readonly record struct TrainingProgress(int Step, int Steps, double Loss);

/// <summary>What training produced.</summary>
/// <param name="Folder">The Hugging Face folder (config.json, model.safetensors, tokenizer.json).</param>
/// <param name="FromCache">True when an earlier run's model was reused.</param>
/// <param name="Elapsed">Training time (zero from cache).</param>
/// <param name="FinalLoss">Mean loss over the last steps (NaN from cache).</param>
public sealed record DemoModelResult(string Folder, bool FromCache, TimeSpan Elapsed, double FinalLoss)
{
    /// <summary>Why an existing cache was not used (it failed its check, or a rebuild was asked for); null otherwise.</summary>
    public string? RebuiltBecause { get; init; }
}

/// <summary>
/// The model provider's training job for the demo: generates the corpus, builds the tokenizer,
/// trains the TorchSharp Llama deterministically on the CPU and saves a Hugging Face folder.
/// </summary>
public static class DemoTrainer
{
    /// <summary>The file holding the demo's chat template and special tokens, as a Hugging Face model folder has it.</summary>
    public const string TokenizerConfigFile = "tokenizer_config.json";

    private static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    /// <summary>The default cache root: $XDG_CACHE_HOME or ~/.cache, then ascendcc/llamachat-demo.</summary>
    public static string DefaultCacheRoot =>
        Path.Combine(
            Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
            "ascendcc", "llamachat-demo");

    /// <summary>
    /// Returns the cached model for <paramref name="settings"/>, or trains and caches it: when there is
    /// none, when the cache fails its SHA-256 check (<see cref="DemoCache"/>), or when
    /// <paramref name="rebuild"/> is set.
    /// </summary>
    public static DemoModelResult GetOrTrain(DemoTrainingSettings settings, string cacheRoot, IProgress<TrainingProgress>? progress = null, bool rebuild = false)
    {
        ArgumentNullException.ThrowIfNull(settings);
        TimeSpan elapsed = TimeSpan.Zero;
        double loss = double.NaN;
        (string folder, bool fromCache, string? reason) = DemoCache.GetOrBuild(cacheRoot, settings.Hash(), rebuild, staging => (elapsed, loss) = Train(settings, staging, progress));
        return new DemoModelResult(folder, fromCache, elapsed, loss) { RebuiltBecause = reason };
    }

    /// <summary>Trains into <paramref name="folder"/>; returns the training time and the mean loss of the last tenth of the steps.</summary>
    public static (TimeSpan Elapsed, double FinalLoss) Train(DemoTrainingSettings settings, string folder, IProgress<TrainingProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.Threads, 1);
        var clock = Stopwatch.StartNew();
        IReadOnlyList<string> corpus = DemoCorpus.Generate(settings.Seed, settings.Documents);
        (string tokenizerJson, int vocabSize) = DemoTokenizer.Build(corpus);
        string tokenizerPath = Path.Combine(folder, "tokenizer.json");
        File.WriteAllText(tokenizerPath, tokenizerJson);
        // Encode with the runtime's own tokenizer: the ids the model learns are exactly the ids the chat will feed it.
        TextTokenizer tokenizer = TextTokenizer.Load(tokenizerPath);
        var stream = new List<int>();
        foreach (string doc in corpus)
        {
            stream.AddRange(tokenizer.Encode(doc, addBos: true));
            stream.Add(DemoTokenizer.Eos);
        }

        var shape = new DemoShape(vocabSize, settings.Hidden, settings.Intermediate, settings.Layers, settings.Heads, settings.KvHeads, settings.MaxPositions);
        // The thread count is process-wide: set it for the training only, and give back the caller's.
        int callerThreads = torch.get_num_threads();
        torch.set_num_threads(settings.Threads);
        try
        {
            return TrainModel(settings, folder, progress, clock, stream, shape, vocabSize);
        }
        finally
        {
            torch.set_num_threads(callerThreads);
        }
    }

    private static (TimeSpan Elapsed, double FinalLoss) TrainModel(DemoTrainingSettings settings, string folder, IProgress<TrainingProgress>? progress, Stopwatch clock, List<int> stream, DemoShape shape, int vocabSize)
    {
        torch.manual_seed(settings.Seed);
        using var model = new DemoLlama(shape);
        using var optimizer = optim.AdamW(model.parameters(), lr: settings.LearningRate, weight_decay: 0.01);
        var order = new Random(settings.Seed);
        int t = settings.SequenceLength, batch = settings.BatchSize;
        var inputs = new long[batch * t];
        var targets = new long[batch * t];
        double tail = 0;
        int tailCount = 0, tailFrom = settings.Steps - Math.Max(1, settings.Steps / 10);
        int warmup = Math.Max(1, settings.Steps / 20);
        for (int step = 0; step < settings.Steps; step++)
        {
            for (int b = 0; b < batch; b++)
            {
                int start = order.Next(stream.Count - t - 1);
                for (int i = 0; i < t; i++)
                {
                    inputs[b * t + i] = stream[start + i];
                    targets[b * t + i] = stream[start + i + 1];
                }
            }
            // Linear warm-up, then cosine decay to a tenth of the peak.
            double lr = step < warmup
                ? settings.LearningRate * (step + 1) / warmup
                : settings.LearningRate * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / Math.Max(1, settings.Steps - warmup))));
            foreach (var group in optimizer.ParamGroups)
            {
                group.LearningRate = lr;
            }
            double loss;
            using (var scope = NewDisposeScope())
            {
                var x = tensor(inputs, [batch, t]);
                var y = tensor(targets, [batch * t]);
                var logits = model.call(x).view(batch * t, vocabSize);
                var l = nn.functional.cross_entropy(logits, y);
                optimizer.zero_grad();
                l.backward();
                nn.utils.clip_grad_norm_(model.parameters(), 1.0);
                optimizer.step();
                loss = l.item<float>();
            }
            if (step >= tailFrom)
            {
                tail += loss;
                tailCount++;
            }
            progress?.Report(new TrainingProgress(step + 1, settings.Steps, loss));
        }

        var tensors = new List<(string, TensorDType, long[], byte[])>();
        foreach (var (name, p) in model.named_parameters())
        {
            // The DemoLlama wrapper adds no prefix of its own: its "model" field is Hugging Face's "model".
            using var cpu = p.detach().cpu().contiguous();
            tensors.Add((name, TensorDType.F32, cpu.shape, TensorData.FromFloat32(name, cpu.shape, cpu.data<float>().ToArray()).Bytes.ToArray()));
        }
        // Sorted names: the file is byte-identical however TorchSharp orders the parameters.
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), tensors.OrderBy(t => t.Item1, StringComparer.Ordinal));
        var config = new LlamaConfig
        {
            Architecture = "LlamaForCausalLM",
            ModelType = "llama",
            HiddenSize = shape.Hidden,
            IntermediateSize = shape.Intermediate,
            NumHiddenLayers = shape.Layers,
            NumAttentionHeads = shape.Heads,
            NumKeyValueHeads = shape.KvHeads,
            VocabSize = vocabSize,
            MaxPositionEmbeddings = shape.MaxPositions,
            RmsNormEps = shape.RmsEps,
            RopeTheta = shape.RopeTheta,
            TieWordEmbeddings = true,
            BosTokenId = DemoTokenizer.Bos,
            EosTokenIds = [DemoTokenizer.Eos],
            TorchDtype = "float32",
        };
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJson());
        File.WriteAllText(Path.Combine(folder, TokenizerConfigFile), JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["bos_token"] = "<s>",
            ["eos_token"] = "</s>",
            ["chat_template"] = DemoCorpus.ChatTemplate,
        }, IndentedJson));
        File.WriteAllText(Path.Combine(folder, "training.json"), JsonSerializer.Serialize(new { settings, trainerVersion = DemoTrainingSettings.TrainerVersion, cacheKey = settings.CacheKey(), seconds = clock.Elapsed.TotalSeconds, finalLoss = tail / Math.Max(1, tailCount) }));
        return (clock.Elapsed, tail / Math.Max(1, tailCount));
    }
}
