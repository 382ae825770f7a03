namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// A tokenizer as GGUF's <c>tokenizer.ggml.*</c> metadata holds it: the model kind ("llama" for
/// SentencePiece-style, "gpt2" for byte-level BPE), the pieces, their scores and types, and the special ids.
/// </summary>
/// <param name="Model"><c>tokenizer.ggml.model</c>.</param>
/// <param name="Tokens"><c>tokenizer.ggml.tokens</c>: pieces by id, SentencePiece's "▁" for the space.</param>
/// <param name="Scores"><c>tokenizer.ggml.scores</c>, or null when absent.</param>
/// <param name="TokenTypes"><c>tokenizer.ggml.token_type</c>, or null when absent (all normal).</param>
/// <param name="BosId"><c>tokenizer.ggml.bos_token_id</c>.</param>
/// <param name="EosId"><c>tokenizer.ggml.eos_token_id</c>.</param>
/// <param name="UnknownId"><c>tokenizer.ggml.unknown_token_id</c>, or null.</param>
public sealed record GgufVocabulary(string Model, IReadOnlyList<string> Tokens, IReadOnlyList<float>? Scores, IReadOnlyList<GgufTokenType>? TokenTypes, int BosId, int EosId, int? UnknownId)
{
    /// <summary><c>tokenizer.ggml.merges</c> ("left right", byte-level spelling) of a byte-level BPE vocabulary; null otherwise.</summary>
    public IReadOnlyList<string>? Merges { get; init; }

    /// <summary><c>tokenizer.ggml.pre</c>: llama.cpp's name of a byte-level BPE pre-tokenizer ("llama-bpe", "qwen2", "gpt-2"…); null when absent.</summary>
    public string? PreTokenizer { get; init; }

    /// <summary><c>tokenizer.ggml.add_bos_token</c>: whether a sequence starts with BOS (true when absent).</summary>
    public bool AddBos { get; init; } = true;

    /// <summary>The type of token <paramref name="id"/> (<see cref="GgufTokenType.Normal"/> when the file gives none).</summary>
    public GgufTokenType TypeOf(int id) => TokenTypes is null ? GgufTokenType.Normal : TokenTypes[id];

    /// <summary>Reads the vocabulary from <paramref name="file"/>'s metadata, checking that the arrays agree.</summary>
    public static GgufVocabulary Read(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var m = file.Metadata;
        string model = m.GetString("tokenizer.ggml.model")
            ?? throw new CheckpointFormatException(file.Path, null, "has no tokenizer.ggml.model metadata (no tokenizer inside).", "Pass the model's tokenizer file separately.");
        GgufArray tokens = m.GetArray("tokenizer.ggml.tokens") is { ElementType: GgufValueType.String } t ? t
            : throw new CheckpointFormatException(file.Path, null, "has no tokenizer.ggml.tokens string array.", "The GGUF's tokenizer is incomplete; convert the model again.");
        int n = tokens.Count;
        float[]? scores = null;
        if (m.GetArray("tokenizer.ggml.scores") is { } s)
        {
            scores = s is { ElementType: GgufValueType.Float32, Count: var c } && c == n ? (float[])s.Values
                : throw new CheckpointFormatException(file.Path, null, $"tokenizer.ggml.scores is {s}, expected {n} float32 (one per token).", "The GGUF's tokenizer is malformed; convert the model again.");
        }
        GgufTokenType[]? types = null;
        if (m.GetArray("tokenizer.ggml.token_type") is { } ty)
        {
            if (ty is not { ElementType: GgufValueType.Int32 or GgufValueType.UInt32 } || ty.Count != n)
            {
                throw new CheckpointFormatException(file.Path, null, $"tokenizer.ggml.token_type is {ty}, expected {n} int32 (one per token).", "The GGUF's tokenizer is malformed; convert the model again.");
            }
            types = new GgufTokenType[n];
            for (int i = 0; i < n; i++)
            {
                long v = Convert.ToInt64(ty.Values.GetValue(i), System.Globalization.CultureInfo.InvariantCulture);
                types[i] = v is >= 1 and <= 6 ? (GgufTokenType)v
                    : throw new CheckpointFormatException(file.Path, null, $"tokenizer.ggml.token_type[{i}] is {v}, not a token type (1–6).", "The GGUF's tokenizer is malformed; convert the model again.");
            }
        }
        int Id(string key, int fallback)
        {
            int id = m.GetInt32(key) ?? fallback;
            return id >= 0 && id < n ? id : throw new CheckpointFormatException(file.Path, null, $"{key} is {id}, outside the {n}-token vocabulary.", "The GGUF's tokenizer is malformed; convert the model again.");
        }
        int? unk = m.Contains("tokenizer.ggml.unknown_token_id") ? Id("tokenizer.ggml.unknown_token_id", 0) : null;
        string[]? merges = null;
        if (m.GetArray("tokenizer.ggml.merges") is { } me)
        {
            merges = me.ElementType == GgufValueType.String ? (string[])me.Values
                : throw new CheckpointFormatException(file.Path, null, $"tokenizer.ggml.merges is {me}, expected strings.", "The GGUF's tokenizer is malformed; convert the model again.");
        }
        bool addBos = m.Find("tokenizer.ggml.add_bos_token") is not { Value: bool b } || b;
        return new GgufVocabulary(model, (string[])tokens.Values, scores, types, Id("tokenizer.ggml.bos_token_id", 1), Id("tokenizer.ggml.eos_token_id", 2), unk)
        {
            Merges = merges,
            PreTokenizer = m.GetString("tokenizer.ggml.pre"),
            AddBos = addBos,
        };
    }
}
