using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// Writes GGUF v3 files: metadata of any GGUF type and tensors in F32, F16, BF16 or Q8_0 (quantized
/// as ggml does), aligned as llama.cpp expects. <see cref="WriteLlama"/> exports a Llama checkpoint
/// with its llama metadata and SentencePiece-style tokenizer, so llama.cpp (and LLamaSharp) can load
/// the same weights the runtime runs.
/// </summary>
/// <remarks>
/// Tensor values are produced one tensor at a time while writing, so a model is never held in memory
/// as a whole. Shapes are given outermost first (PyTorch order) and stored as ggml's ne (reversed).
/// </remarks>
public sealed class GgufWriter
{
    private readonly List<(string Key, GgufValue Value)> _metadata = [];
    private readonly List<PendingTensor> _tensors = [];

    private sealed record PendingTensor(string Name, long[] Dimensions, GgufTensorType Type, long ByteLength, Func<ReadOnlyMemory<byte>> Bytes);

    /// <summary>Creates a writer whose data section and tensors are aligned to <paramref name="alignment"/> bytes (a power of two).</summary>
    public GgufWriter(int alignment = GgufFile.DefaultAlignment)
    {
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "The GGUF alignment must be a positive power of two.");
        }
        Alignment = alignment;
        if (alignment != GgufFile.DefaultAlignment)
        {
            Add("general.alignment", new GgufValue(GgufValueType.UInt32, (uint)alignment));
        }
    }

    /// <summary>The alignment of the data section and of every tensor.</summary>
    public int Alignment { get; }

    /// <summary>Adds a metadata key/value (in file order); a key may appear once.</summary>
    public GgufWriter Add(string key, GgufValue value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(value);
        if (_metadata.Any(m => m.Key == key))
        {
            throw new ArgumentException($"Metadata key '{key}' was already added.", nameof(key));
        }
        _metadata.Add((key, value));
        return this;
    }

    /// <summary>Adds a string value.</summary>
    public GgufWriter Add(string key, string value) => Add(key, new GgufValue(GgufValueType.String, value));

    /// <summary>Adds a u32 value.</summary>
    public GgufWriter Add(string key, uint value) => Add(key, new GgufValue(GgufValueType.UInt32, value));

    /// <summary>Adds a f32 value.</summary>
    public GgufWriter Add(string key, float value) => Add(key, new GgufValue(GgufValueType.Float32, value));

    /// <summary>Adds a bool value.</summary>
    public GgufWriter Add(string key, bool value) => Add(key, new GgufValue(GgufValueType.Bool, value));

    /// <summary>
    /// Adds a tensor of <paramref name="shape"/> (outermost first) stored as <paramref name="type"/>
    /// (F32, F16, BF16, Q8_0, Q4_0 or Q4_K); <paramref name="values"/> is called once, while writing.
    /// </summary>
    public GgufWriter AddTensor(string name, IReadOnlyList<long> shape, GgufTensorType type, Func<float[]> values)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(values);
        if (type is not (GgufTensorType.F32 or GgufTensorType.F16 or GgufTensorType.BF16 or GgufTensorType.Q8_0 or GgufTensorType.Q4_0 or GgufTensorType.Q4_K))
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, $"Tensor '{name}': GgufWriter writes F32, F16, BF16, Q8_0, Q4_0 and Q4_K, not {GgufTensorTypes.Name(type)}.");
        }
        long[] ne = shape.Reverse().ToArray();
        return AddRaw(name, ne, type, () => Encode(name, type, values()));
    }

    /// <summary>Adds a tensor as raw stored bytes with ggml dimensions <paramref name="dimensions"/> (innermost first), for any type.</summary>
    public GgufWriter AddRawTensor(string name, IReadOnlyList<long> dimensions, GgufTensorType type, ReadOnlyMemory<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(dimensions);
        _tensors.Add(new PendingTensor(name, dimensions.ToArray(), type, bytes.Length, () => bytes));
        return this;
    }

    private GgufWriter AddRaw(string name, long[] ne, GgufTensorType type, Func<ReadOnlyMemory<byte>> bytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (_tensors.Any(t => t.Name == name))
        {
            throw new ArgumentException($"Tensor '{name}' was already added.", nameof(name));
        }
        if (ne.Length is 0 or > 4 || ne.Any(d => d < 0))
        {
            throw new ArgumentException($"Tensor '{name}': GGUF tensors have 1 to 4 non-negative dimensions, got [{string.Join(", ", ne)}].", nameof(ne));
        }
        int blockSize = GgufTensorTypes.BlockSize(type);
        if (ne[0] % blockSize != 0)
        {
            throw new ArgumentException($"Tensor '{name}': rows of {ne[0]} values are not whole {type} blocks of {blockSize}; store it as F32 or F16.", nameof(ne));
        }
        long elements = ne.Aggregate(1L, (p, d) => checked(p * d));
        _tensors.Add(new PendingTensor(name, ne, type, elements / blockSize * GgufTensorTypes.BlockBytes(type), bytes));
        return this;
    }

    /// <summary>Writes the file to <paramref name="path"/>, replacing it only once the whole file is written.</summary>
    public void Write(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // Written beside the target and moved over it once whole: a failure half way (a tensor that does not
        // read, a full disk) leaves neither a truncated GGUF nor a damaged earlier file of that name.
        string partial = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.partial");
        try
        {
            using (var stream = new FileStream(partial, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                Write(stream);
            }
            File.Move(partial, path, overwrite: true);
        }
        finally
        {
            File.Delete(partial);
        }
    }

    /// <summary>Writes the file to <paramref name="stream"/> from its current position.</summary>
    public void Write(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)value.Type);
            WriteValue(w, value.Type, value.Value);
        }
        long offset = 0;
        foreach (var t in _tensors)
        {
            WriteString(w, t.Name);
            w.Write((uint)t.Dimensions.Length);
            foreach (long d in t.Dimensions)
            {
                w.Write((ulong)d);
            }
            w.Write((uint)t.Type);
            w.Write((ulong)offset);
            offset = GgufFile.AlignUp(offset + t.ByteLength, Alignment);
        }
        long written = 0;
        Pad(w, ref written, GgufFile.AlignUp(stream.Position, Alignment) - stream.Position);
        written = 0;
        foreach (var t in _tensors)
        {
            ReadOnlyMemory<byte> bytes = t.Bytes();
            if (bytes.Length != t.ByteLength)
            {
                throw new InvalidOperationException($"Tensor '{t.Name}' produced {bytes.Length} bytes, its {t.Type} dimensions [{string.Join(", ", t.Dimensions)}] need {t.ByteLength}.");
            }
            w.Write(bytes.Span);
            written += bytes.Length;
            Pad(w, ref written, GgufFile.AlignUp(written, Alignment) - written);
        }
        w.Flush();
    }

    /// <summary>
    /// Writes a Llama <paramref name="checkpoint"/> as GGUF v3 the way llama.cpp's converter does:
    /// llama metadata, the tokenizer's pieces/scores/types, GGUF tensor names, q/k rows in Meta's
    /// interleaved order (permuted from a Hugging Face checkpoint's rotate_half order), 1-D tensors in
    /// F32 and matrices in <paramref name="matrixType"/> (F32, F16, BF16, Q8_0, Q4_0 or Q4_K; a matrix whose
    /// rows are not whole blocks of 32 stays F32). Q4_0 and Q4_K are for the layers' matrices, as llama.cpp's
    /// "mostly Q4_0/Q4_K" files (with its reference quantizer, no importance matrix): the token embedding
    /// and the output matrix, and under Q4_K any matrix whose rows are not whole super-blocks of 256, go in
    /// Q8_0 — the widths a device of <c>WeightPrecision.Q4_0</c> or <c>Q4_K</c> keeps them in. RoPE
    /// scaling goes as the converter writes it: linear as metadata, llama3 as <c>rope_freqs.weight</c>.
    /// </summary>
    /// <param name="path">The .gguf file to write.</param>
    /// <param name="checkpoint">A Llama checkpoint of any layout.</param>
    /// <param name="tokenizer">Its tokenizer: SentencePiece (tokenizer.model, tok*.bin, a GGUF's "llama") or byte-level BPE
    /// (a GPT-2, Llama 3 or Qwen2 style tokenizer.json, a GGUF's "gpt2"; written with its merges and the llama.cpp name
    /// of its split). A tokenizer shorter than the model's vocabulary is padded with unused "[PADn]" tokens.</param>
    /// <param name="matrixType">The stored type of the weight matrices.</param>
    /// <param name="name">general.name; the file name when null.</param>
    /// <param name="chatTemplate">The model's chat template, written as <c>tokenizer.chat_template</c> (as llama.cpp's converter copies tokenizer_config.json's); none when null.</param>
    public static void WriteLlama(string path, ModelCheckpoint checkpoint, TextTokenizer tokenizer, GgufTensorType matrixType = GgufTensorType.F32, string? name = null,
        Chat.ChatTemplate? chatTemplate = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (checkpoint.Config is not LlamaConfig config)
        {
            throw new ArgumentException($"{checkpoint.SourcePath} is a {checkpoint.Config.Family} model; GgufWriter.WriteLlama exports Llama models only.", nameof(checkpoint));
        }
        GgufVocabulary vocabulary = tokenizer.ToGgufVocabulary()
            ?? throw new ArgumentException("GgufWriter.WriteLlama writes SentencePiece tokenizers (tokenizer.model, tok*.bin, GGUF 'llama') and byte-level BPE ones (a GPT-2, Llama 3 or Qwen2 style tokenizer.json, GGUF 'gpt2'); this is a SentencePiece-style tokenizer.json: pass the model's tokenizer.model instead.", nameof(tokenizer));
        if (vocabulary.Tokens.Count > config.VocabSize)
        {
            throw new ArgumentException($"The tokenizer has {vocabulary.Tokens.Count} tokens, more than the model's vocabulary of {config.VocabSize}; pass the tokenizer that came with the checkpoint.", nameof(tokenizer));
        }
        if (vocabulary.Tokens.Count < config.VocabSize)
        {
            // Embedding rows past the tokenizer (Qwen2.5 pads 151665 tokens to 151936 rows): named and marked unused, as llama.cpp's converter does.
            int n = vocabulary.Tokens.Count;
            vocabulary = vocabulary with
            {
                Tokens = [.. vocabulary.Tokens, .. Enumerable.Range(n, config.VocabSize - n).Select(id => $"[PAD{id}]")],
                Scores = vocabulary.Scores is { } scores ? [.. scores, .. new float[config.VocabSize - n]] : null,
                TokenTypes = [.. Enumerable.Range(0, n).Select(vocabulary.TypeOf), .. Enumerable.Repeat(GgufTokenType.Unused, config.VocabSize - n)],
            };
        }
        var writer = new GgufWriter();
        // Keys are under the architecture's own prefix (llama.*, qwen2.*), as llama.cpp reads them.
        string arch = GgufLlamaLayout.ArchitectureOf(config);
        writer.Add("general.architecture", arch);
        writer.Add("general.name", name ?? Path.GetFileNameWithoutExtension(path));
        writer.Add("general.file_type", matrixType switch
        {
            GgufTensorType.F16 => 1u,
            GgufTensorType.Q8_0 => 7u,
            GgufTensorType.Q4_0 => 2u,
            GgufTensorType.Q4_K => 14u,
            GgufTensorType.BF16 => 32u,
            _ => 0u,
        });
        writer.Add($"{arch}.context_length", (uint)config.MaxPositionEmbeddings);
        writer.Add($"{arch}.embedding_length", (uint)config.HiddenSize);
        writer.Add($"{arch}.block_count", (uint)config.NumHiddenLayers);
        writer.Add($"{arch}.feed_forward_length", (uint)config.IntermediateSize);
        writer.Add($"{arch}.rope.dimension_count", (uint)config.HeadDim);
        writer.Add($"{arch}.attention.head_count", (uint)config.NumAttentionHeads);
        writer.Add($"{arch}.attention.head_count_kv", (uint)config.NumKeyValueHeads);
        if (config.ExplicitHeadDim is { } headDim)
        {
            writer.Add($"{arch}.attention.key_length", (uint)headDim);
            writer.Add($"{arch}.attention.value_length", (uint)headDim);
        }
        writer.Add($"{arch}.attention.layer_norm_rms_epsilon", (float)config.RmsNormEps);
        writer.Add($"{arch}.rope.freq_base", (float)config.RopeTheta);
        if (config.RopeScaling is { } scaling)
        {
            // As llama.cpp's converter: linear as metadata, llama3 as rope_freqs.weight.
            GgufRopeScaling.Write(writer, arch, scaling, config.HeadDim, config.RopeTheta);
        }
        writer.Add($"{arch}.vocab_size", (uint)config.VocabSize);
        writer.Add("tokenizer.ggml.model", vocabulary.Model);
        if (vocabulary.PreTokenizer is { } pre)
        {
            writer.Add("tokenizer.ggml.pre", pre);
        }
        writer.Add("tokenizer.ggml.tokens", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.String, vocabulary.Tokens.ToArray())));
        // A byte-level vocabulary has no scores (its merges rank the pairs); a SentencePiece one always has them.
        if ((vocabulary.Scores ?? (vocabulary.Model == "llama" ? new float[vocabulary.Tokens.Count] : null)) is { } tokenScores)
        {
            writer.Add("tokenizer.ggml.scores", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.Float32, tokenScores.ToArray())));
        }
        writer.Add("tokenizer.ggml.token_type", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.Int32,
            Enumerable.Range(0, vocabulary.Tokens.Count).Select(i => (int)vocabulary.TypeOf(i)).ToArray())));
        if (vocabulary.Merges is { } merges)
        {
            writer.Add("tokenizer.ggml.merges", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.String, merges.ToArray())));
        }
        writer.Add("tokenizer.ggml.bos_token_id", (uint)vocabulary.BosId);
        writer.Add("tokenizer.ggml.eos_token_id", (uint)vocabulary.EosId);
        if (vocabulary.UnknownId is { } unk)
        {
            writer.Add("tokenizer.ggml.unknown_token_id", (uint)unk);
        }
        writer.Add("tokenizer.ggml.add_bos_token", vocabulary.AddBos);
        writer.Add("tokenizer.ggml.add_eos_token", false);
        if (chatTemplate is not null)
        {
            writer.Add("tokenizer.chat_template", chatTemplate.Text);
        }

        // llama.cpp's converter permutes a Llama's q/k rows into Meta's interleaved order and leaves Qwen2's in rotate_half order.
        bool permute = checkpoint.RopeConvention == RopeConvention.Half && GgufLlamaLayout.RopeConventionOf(config.Architecture) == RopeConvention.Interleaved;
        if (checkpoint.RopeConvention == RopeConvention.Interleaved && GgufLlamaLayout.RopeConventionOf(config.Architecture) == RopeConvention.Half)
        {
            throw new ArgumentException($"{checkpoint.SourcePath} holds {config.Architecture} q/k rows in the interleaved order, which a {arch} GGUF does not use.", nameof(checkpoint));
        }
        foreach (var (runtimeName, shape) in config.ExpectedTensors())
        {
            string ggufName = GgufLlamaLayout.ToGgufName(runtimeName, config.NumHiddenLayers)
                ?? throw new InvalidOperationException($"Llama tensor '{runtimeName}' has no GGUF name.");
            CheckpointTensor tensor = checkpoint.GetTensor(runtimeName);
            int heads = runtimeName.EndsWith("q_proj.weight", StringComparison.Ordinal) ? config.NumAttentionHeads
                : runtimeName.EndsWith("k_proj.weight", StringComparison.Ordinal) ? config.NumKeyValueHeads
                : 0;
            GgufTensorType type = MatrixType(matrixType, runtimeName, shape);
            writer.AddTensor(ggufName, shape, type, () =>
            {
                float[] values = tensor.ReadFloat32();
                return permute && heads > 0 ? ToInterleaved(values, heads, (int)shape[1]) : values;
            });
        }
        writer.Write(path);
    }

    /// <summary>The stored type of one tensor of a <see cref="WriteLlama"/> file of <paramref name="matrixType"/>.</summary>
    private static GgufTensorType MatrixType(GgufTensorType matrixType, string runtimeName, long[] shape)
    {
        if (shape.Length == 1)
        {
            return GgufTensorType.F32;
        }
        GgufTensorType type = matrixType;
        if ((type is GgufTensorType.Q4_K or GgufTensorType.Q4_0 && runtimeName is Llama.LlamaTensorNames.Embedding or Llama.LlamaTensorNames.LmHead)
            || (type == GgufTensorType.Q4_K && shape[^1] % 256 != 0))
        {
            type = GgufTensorType.Q8_0;
        }
        return type is GgufTensorType.Q8_0 or GgufTensorType.Q4_0 && shape[^1] % 32 != 0 ? GgufTensorType.F32 : type;
    }

    /// <summary>
    /// Reorders q/k rows from Hugging Face's rotate_half pairing (i, i + d/2) to Meta's interleaved
    /// pairing (2i, 2i + 1) within each head, as llama.cpp's converter does.
    /// </summary>
    internal static float[] ToInterleaved(float[] rows, int heads, int columns)
    {
        int headDim = rows.Length / columns / heads;
        int half = headDim / 2;
        var result = new float[rows.Length];
        for (int h = 0; h < heads; h++)
        {
            for (int i = 0; i < half; i++)
            {
                for (int j = 0; j < 2; j++)
                {
                    int from = h * headDim + j * half + i;
                    int to = h * headDim + 2 * i + j;
                    Array.Copy(rows, (long)from * columns, result, (long)to * columns, columns);
                }
            }
        }
        return result;
    }

    private static byte[] Encode(string name, GgufTensorType type, float[] values)
    {
        switch (type)
        {
            case GgufTensorType.F32:
                return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            case GgufTensorType.F16:
            {
                var bytes = new byte[values.Length * 2];
                for (int i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(i * 2), (Half)values[i]);
                }
                return bytes;
            }
            case GgufTensorType.BF16:
            {
                var bytes = new byte[values.Length * 2];
                for (int i = 0; i < values.Length; i++)
                {
                    // Round to nearest even, as torch and ggml's fp32_to_bf16 do (NaN kept quiet).
                    uint bits = BitConverter.SingleToUInt32Bits(values[i]);
                    ushort bf = float.IsNaN(values[i]) ? (ushort)((bits >> 16) | 0x40) : (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), bf);
                }
                return bytes;
            }
            case GgufTensorType.Q8_0:
            {
                var bytes = new byte[values.Length / 32 * GgufTensorTypes.Q8_0BlockBytes];
                GgufQuantization.QuantizeQ8_0(values, bytes);
                return bytes;
            }
            case GgufTensorType.Q4_0:
            {
                var bytes = new byte[values.Length / 32 * GgufTensorTypes.Q4_0BlockBytes];
                GgufQuantization.QuantizeQ4_0(values, bytes);
                return bytes;
            }
            case GgufTensorType.Q4_K:
            {
                var bytes = new byte[values.Length / 256 * GgufTensorTypes.Q4_KBlockBytes];
                GgufQuantization.QuantizeQ4_K(values, bytes);
                return bytes;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, $"Tensor '{name}': GgufWriter writes F32, F16, BF16, Q8_0, Q4_0 and Q4_K.");
        }
    }

    private static void Pad(BinaryWriter w, ref long written, long count)
    {
        for (long i = 0; i < count; i++)
        {
            w.Write((byte)0);
        }
        written += count;
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)value); break;
            case GgufValueType.Int8: w.Write((sbyte)value); break;
            case GgufValueType.UInt16: w.Write((ushort)value); break;
            case GgufValueType.Int16: w.Write((short)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt64: w.Write((ulong)value); break;
            case GgufValueType.Int64: w.Write((long)value); break;
            case GgufValueType.Float64: w.Write((double)value); break;
            case GgufValueType.Array:
            {
                var array = (GgufArray)value;
                w.Write((uint)array.ElementType);
                w.Write((ulong)array.Count);
                foreach (object? element in array.Values)
                {
                    WriteValue(w, array.ElementType, element!);
                }
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "Not a GGUF value type.");
        }
    }
}
