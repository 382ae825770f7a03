using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Models;


/// <summary>
/// A checkpoint of any supported family opened from a Hugging Face folder (config.json, whose
/// architecture picks the family, + safetensors) or a Llama from a llama2.c <c>.bin</c> file,
/// exposing its tensors under Hugging Face names, file-backed.
/// </summary>
/// <remarks>
/// Weights are exposed exactly as stored. In particular the q_proj/k_proj rows of a llama2.c file
/// are in Meta's interleaved-pair RoPE order while Hugging Face files use the rotate_half order;
/// <see cref="RopeConvention"/> says which (families without RoPE report Half, which nothing reads), and the consumer applies the matching rotation (or
/// permutes rows itself). Permuting silently here would make the bytes differ from the file the
/// model provider signed.
/// </remarks>
public sealed class ModelCheckpoint : IDisposable
{
    private readonly Dictionary<string, CheckpointTensor> _tensors;
    private readonly IDisposable _owner;

    private ModelCheckpoint(string sourcePath, CheckpointLayout layout, ModelConfig config, Dictionary<string, CheckpointTensor> tensors, IDisposable owner)
    {
        SourcePath = sourcePath;
        Layout = layout;
        Config = config;
        _tensors = tensors;
        _owner = owner;
        TensorNames = tensors.Keys.ToArray();
    }

    /// <summary>The folder or file the checkpoint was opened from.</summary>
    public string SourcePath { get; }

    /// <summary>Which file layout the weights came from.</summary>
    public CheckpointLayout Layout { get; }

    /// <summary>Hyperparameters (from config.json, or from the llama2.c header).</summary>
    public ModelConfig Config { get; }

    /// <summary>The RoPE pairing of q_proj/k_proj rows: <see cref="RopeConvention.Half"/> for Hugging Face,
    /// <see cref="RopeConvention.Interleaved"/> for llama2.c and a Llama GGUF (llama.cpp's converter permutes q/k into Meta's order; a Qwen2 GGUF's stay Half).</summary>
    public RopeConvention RopeConvention => Layout switch
    {
        CheckpointLayout.Llama2c => RopeConvention.Interleaved,
        CheckpointLayout.Gguf => Gguf.GgufLlamaLayout.RopeConventionOf(Config.Architecture),
        _ => RopeConvention.Half,
    };

    /// <summary>Names of all tensors (Hugging Face names).</summary>
    public IReadOnlyList<string> TensorNames { get; }

    /// <summary>All tensors by Hugging Face name.</summary>
    public IReadOnlyDictionary<string, CheckpointTensor> Tensors => _tensors;

    /// <summary>The named tensor; throws <see cref="CheckpointFormatException"/> naming it when absent.</summary>
    public CheckpointTensor GetTensor(string name) =>
        _tensors.TryGetValue(name, out var t)
            ? t
            : throw new CheckpointFormatException(SourcePath, name, "is not in the checkpoint.", "Check the name against the family's tensor names (ModelConfig.ExpectedTensors) and TensorNames.");

    /// <summary>The classifier: lm_head.weight, or the token embedding when the embeddings are tied.</summary>
    public CheckpointTensor OutputWeight =>
        GetTensor(Config.TieWordEmbeddings && !_tensors.ContainsKey(Config.LmHeadTensorName) ? Config.EmbeddingTensorName : Config.LmHeadTensorName);

    /// <summary>
    /// Opens a checkpoint: a Hugging Face folder (config.json with model.safetensors or
    /// model.safetensors.index.json), a .safetensors file or index beside its config.json, a llama2.c .bin file,
    /// or a GGUF file (<c>.gguf</c>: a llama.cpp Llama; block-quantized tensors are read as float32).
    /// Checks that every tensor the config needs is present with the right shape.
    /// </summary>
    public static ModelCheckpoint Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = Path.GetFullPath(path);
        if (Directory.Exists(path))
        {
            return OpenHuggingFace(path, null);
        }
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Checkpoint not found: {path}. Pass a Hugging Face model folder or a llama2.c .bin file.", path);
        }
        string fileName = Path.GetFileName(path);
        if (fileName.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            return OpenLlama2c(path);
        }
        if (fileName.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            return OpenGguf(path);
        }
        if (fileName.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || fileName.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase))
        {
            return OpenHuggingFace(Path.GetDirectoryName(path)!, path);
        }
        if (fileName.Equals("config.json", StringComparison.OrdinalIgnoreCase))
        {
            return OpenHuggingFace(Path.GetDirectoryName(path)!, null);
        }
        throw new CheckpointFormatException(path, null, "is neither a folder, a .safetensors file, a safetensors index, a llama2.c .bin file nor a .gguf file.", "Pass a Hugging Face model folder, a llama2.c .bin file or a .gguf file.");
    }

    private static ModelCheckpoint OpenHuggingFace(string folder, string? weightsPath)
    {
        var config = ModelConfig.Load(Path.Combine(folder, "config.json"));
        if (weightsPath is null)
        {
            string single = Path.Combine(folder, "model.safetensors");
            string index = Path.Combine(folder, "model.safetensors.index.json");
            weightsPath = File.Exists(single) ? single
                : File.Exists(index) ? index
                : throw new CheckpointFormatException(folder, null, "has config.json but neither model.safetensors nor model.safetensors.index.json.", "Download the safetensors weights (PyTorch .bin/.pt weights are not read).");
        }
        IDisposable owner;
        IReadOnlyDictionary<string, CheckpointTensor> source;
        if (weightsPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            var sharded = ShardedSafetensors.Open(weightsPath);
            owner = sharded;
            source = sharded.Tensors;
        }
        else
        {
            var file = SafetensorsFile.Open(weightsPath);
            owner = file;
            source = file.Tensors;
        }
        try
        {
            var tensors = new Dictionary<string, CheckpointTensor>(source, StringComparer.Ordinal);
            CheckAgainstConfig(weightsPath, config, tensors);
            return new ModelCheckpoint(folder, CheckpointLayout.HuggingFace, config, tensors, owner);
        }
        catch
        {
            owner.Dispose();
            throw;
        }
    }

    private static void CheckAgainstConfig(string path, ModelConfig config, Dictionary<string, CheckpointTensor> tensors)
    {
        foreach (var (name, shape) in config.ExpectedTensors())
        {
            if (!tensors.TryGetValue(name, out var tensor))
            {
                string hint = name == config.LmHeadTensorName
                    ? "config.json says tie_word_embeddings is false, so lm_head.weight must be stored; set tie_word_embeddings to true if the classifier is the embedding."
                    : "The checkpoint is incomplete or does not match config.json; re-download it.";
                throw new CheckpointFormatException(path, name, "is missing.", hint);
            }
            if (!tensor.Shape.SequenceEqual(shape))
            {
                throw new CheckpointFormatException(path, name, $"has shape [{string.Join(", ", tensor.Shape)}] but config.json implies [{string.Join(", ", shape)}].", "The weights and config.json disagree; use the config.json that came with these weights.");
            }
        }
    }

    /// <summary>Magic of llama2.c's versioned export ("ak42" little-endian), which this reader does not take.</summary>
    private const int Llama2cVersionedMagic = 0x616b3432;

    private static ModelCheckpoint OpenLlama2c(string path)
    {
        var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            long fileLength = RandomAccess.GetLength(file);
            const int headerBytes = 7 * sizeof(int);
            if (fileLength < headerBytes)
            {
                throw new CheckpointFormatException(path, null, $"is {fileLength} bytes, shorter than the 28-byte llama2.c header (truncated).", "Re-export the checkpoint with llama2.c export.py --version 0.");
            }
            Span<byte> header = stackalloc byte[headerBytes];
            if (RandomAccess.Read(file, header, 0) != headerBytes)
            {
                throw new CheckpointFormatException(path, null, "could not read the 28-byte header.", "Re-copy the file.");
            }
            Span<int> h = stackalloc int[7];
            for (int i = 0; i < 7; i++)
            {
                h[i] = BinaryPrimitives.ReadInt32LittleEndian(header.Slice(i * 4, 4));
            }
            if (h[0] == Llama2cVersionedMagic)
            {
                throw new CheckpointFormatException(path, null, "is a versioned llama2.c export (magic 'ak42'); only the legacy version 0 layout is read.", "Re-export with llama2.c export.py --version 0, or convert to Hugging Face safetensors.");
            }
            int dim = h[0], hiddenDim = h[1], nLayers = h[2], nHeads = h[3], nKvHeads = h[4], vocabSigned = h[5], seqLen = h[6];
            bool shared = vocabSigned > 0;
            int vocab = Math.Abs(vocabSigned);
            if (dim <= 0 || hiddenDim <= 0 || nLayers <= 0 || nHeads <= 0 || nKvHeads <= 0 || vocab <= 0 || seqLen <= 0 || dim % nHeads != 0)
            {
                throw new CheckpointFormatException(path, null, $"header (dim {dim}, hidden_dim {hiddenDim}, n_layers {nLayers}, n_heads {nHeads}, n_kv_heads {nKvHeads}, vocab_size {vocabSigned}, seq_len {seqLen}) is not a valid llama2.c config.", "This is not a llama2.c legacy checkpoint or it is corrupt; re-export it.");
            }
            var config = new LlamaConfig
            {
                Architecture = "LlamaForCausalLM",
                ModelType = "llama",
                HiddenSize = dim,
                IntermediateSize = hiddenDim,
                NumHiddenLayers = nLayers,
                NumAttentionHeads = nHeads,
                NumKeyValueHeads = nKvHeads,
                VocabSize = vocab,
                MaxPositionEmbeddings = seqLen,
                // llama2.c's run.c hard-codes these; the .bin header does not carry them.
                RmsNormEps = 1e-5,
                RopeTheta = 10000.0,
                TieWordEmbeddings = shared,
                BosTokenId = 1,
                EosTokenIds = [2],
                TorchDtype = "float32",
            };
            try
            {
                config.Validate();
            }
            catch (CheckpointFormatException e)
            {
                throw new CheckpointFormatException(path, null, $"header is inconsistent: {e.Message}", "Re-export the checkpoint.", e);
            }
            int headSize = dim / nHeads;
            long kvDim = (long)nKvHeads * headSize;
            var tensors = new Dictionary<string, CheckpointTensor>(StringComparer.Ordinal);
            long offset = headerBytes;
            void Add(string name, long[] shape)
            {
                var t = new CheckpointTensor(name, TensorDType.F32, shape, path, file, offset);
                if (offset + t.ByteLength > fileLength)
                {
                    throw new CheckpointFormatException(path, name, $"needs bytes [{offset}, {offset + t.ByteLength}) but the file is {fileLength} bytes (truncated).", "Re-copy or re-export the checkpoint.");
                }
                tensors.Add(name, t);
                offset += t.ByteLength;
            }
            void AddPerLayer(Func<int, string> name, long[] shape)
            {
                for (int l = 0; l < nLayers; l++)
                {
                    Add(name(l), shape);
                }
            }
            // File order of run.c's memory_map_weights; each [n_layers, ...] array is split into per-layer tensors.
            Add(LlamaTensorNames.Embedding, [vocab, dim]);
            AddPerLayer(LlamaTensorNames.InputLayerNorm, [dim]);
            AddPerLayer(LlamaTensorNames.QProj, [dim, dim]);
            AddPerLayer(LlamaTensorNames.KProj, [kvDim, dim]);
            AddPerLayer(LlamaTensorNames.VProj, [kvDim, dim]);
            AddPerLayer(LlamaTensorNames.OProj, [dim, dim]);
            AddPerLayer(LlamaTensorNames.PostAttentionLayerNorm, [dim]);
            AddPerLayer(LlamaTensorNames.GateProj, [hiddenDim, dim]);
            AddPerLayer(LlamaTensorNames.DownProj, [dim, hiddenDim]);
            AddPerLayer(LlamaTensorNames.UpProj, [hiddenDim, dim]);
            Add(LlamaTensorNames.FinalNorm, [dim]);
            // Two legacy RoPE tables (freq_cis_real, freq_cis_imag): run.c skips them and so do we.
            long ropeTables = 2L * seqLen * (headSize / 2) * sizeof(float);
            if (offset + ropeTables > fileLength)
            {
                throw new CheckpointFormatException(path, null, $"ends inside the legacy RoPE tables at byte {fileLength}, expected at least {offset + ropeTables} (truncated).", "Re-copy or re-export the checkpoint.");
            }
            offset += ropeTables;
            if (!shared)
            {
                Add(LlamaTensorNames.LmHead, [vocab, dim]);
            }
            if (offset != fileLength)
            {
                throw new CheckpointFormatException(path, null, $"is {fileLength} bytes but its header describes {offset}.", "The header does not match the weights (wrong file or a newer export format); re-export with llama2.c export.py --version 0.");
            }
            return new ModelCheckpoint(path, CheckpointLayout.Llama2c, config, tensors, file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static ModelCheckpoint OpenGguf(string path)
    {
        var gguf = GgufFile.Open(path);
        try
        {
            LlamaConfig config = GgufLlamaLayout.ReadConfig(gguf);
            var tensors = new Dictionary<string, CheckpointTensor>(StringComparer.Ordinal);
            foreach (GgufTensorInfo info in gguf.Tensors)
            {
                // Tensors the runtime has no name for stay under their GGUF names, as extra safetensors entries do.
                string name = GgufLlamaLayout.ToRuntimeName(info.Name) ?? info.Name;
                tensors.Add(name, new CheckpointTensor(name, info, gguf.Handle, path));
            }
            CheckAgainstConfig(path, config, tensors);
            return new ModelCheckpoint(path, CheckpointLayout.Gguf, config, tensors, gguf);
        }
        catch
        {
            gguf.Dispose();
            throw;
        }
    }

    /// <summary>Closes the underlying files; tensors can no longer be read.</summary>
    public void Dispose() => _owner.Dispose();
}
