using System.Text;
using Microsoft.ML.Tokenizers;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Tokenizers;

/// <summary>
/// Text to token ids and back for Llama-family models, whatever file the tokenizer came in:
/// SentencePiece <c>tokenizer.model</c>, Hugging Face <c>tokenizer.json</c> (SentencePiece-style BPE with
/// byte fallback as in Llama 2 / Mistral, or byte-level BPE as in Llama 3 / GPT-2 / Qwen), llama2.c <c>tok*.bin</c>
/// or a GGUF model's <c>tokenizer.ggml.*</c> metadata (SentencePiece-style "llama" or byte-level BPE "gpt2").
/// </summary>
public abstract class TextTokenizer
{
    private static readonly string[] FolderCandidates = ["tokenizer.json", "tokenizer.model", "tokenizer.bin"];

    /// <summary>Number of ids the tokenizer can produce.</summary>
    public abstract int VocabSize { get; }

    /// <summary>Beginning-of-sequence id.</summary>
    public abstract int BosId { get; }

    /// <summary>
    /// True when the tokenizer defines a beginning-of-sequence token that a sequence starts with (Llama's
    /// &lt;s&gt;); false for tokenizers whose models take none (GPT-2 style byte-level BPE, as GPT-Neo's).
    /// Encode with <c>addBos: tokenizer.HasBos</c> to start a sequence as the model was trained.
    /// </summary>
    public virtual bool HasBos => true;

    /// <summary>End-of-sequence id.</summary>
    public abstract int EosId { get; }

    /// <summary>
    /// Encodes <paramref name="text"/>, with BOS first when <paramref name="addBos"/>. Special tokens
    /// written in the text are read as the tokenizer file reads them by default: a tokenizer.json's
    /// added tokens become their ids, a SentencePiece or llama2.c tokenizer spells "&lt;s&gt;" as
    /// characters. For a rendered chat template use <see cref="Encode(string, bool, bool)"/>.
    /// </summary>
    public abstract IReadOnlyList<int> Encode(string text, bool addBos = true);

    /// <summary>
    /// Encodes <paramref name="text"/> choosing how special tokens written in it are read. With
    /// <paramref name="parseSpecialTokens"/> each special token's text (<c>&lt;s&gt;</c>,
    /// <c>&lt;|eot_id|&gt;</c>, <c>&lt;|im_end|&gt;</c>…, see <see cref="SpecialTokens"/>) becomes its
    /// single id and the text between them is encoded as usual — what a rendered chat template needs
    /// (Hugging Face's default, split_special_tokens=False); without it they are spelled as ordinary
    /// characters, so user text can never forge a control token.
    /// </summary>
    public virtual IReadOnlyList<int> Encode(string text, bool addBos, bool parseSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!parseSpecialTokens || SpecialTokens.Count == 0)
        {
            return Encode(text, addBos);
        }
        var ids = new List<int>();
        if (addBos)
        {
            ids.Add(BosId);
        }
        var specials = SpecialTokens.Select(kv => (kv.Key, kv.Value)).OrderByDescending(t => t.Key.Length).ToList();
        foreach (var (segment, special) in HuggingFaceBpeTokenizer.SplitAddedTokens(text, specials))
        {
            if (special is { } id)
            {
                ids.Add(id);
            }
            else if (segment.Length > 0)
            {
                // Each stretch between special tokens is encoded as a text of its own, as Hugging Face's
                // (legacy) Llama tokenizer does: after "<s>", "[INST]" starts with the dummy-prefix space.
                ids.AddRange(Encode(segment, addBos: false));
            }
        }
        return ids;
    }

    /// <summary>
    /// The tokenizer's special tokens, text to id: a tokenizer.json's added tokens marked special, a
    /// SentencePiece model's &lt;s&gt;, &lt;/s&gt; and &lt;unk&gt;, llama2.c's &lt;s&gt; and &lt;/s&gt;.
    /// </summary>
    public virtual IReadOnlyDictionary<string, int> SpecialTokens => new Dictionary<string, int>();

    /// <summary>The vocabulary as GGUF metadata would hold it, for <see cref="GgufWriter"/>; null when the
    /// tokenizer is not SentencePiece-style.</summary>
    internal virtual GgufVocabulary? ToGgufVocabulary() => null;

    /// <summary>Decodes ids to text: special tokens are dropped, byte pieces (&lt;0xNN&gt; byte fallback, or
    /// byte-level tokens) are joined into UTF-8, and the leading space the encoder prepends is removed.</summary>
    public abstract string Decode(IEnumerable<int> ids);

    /// <summary>
    /// Loads a tokenizer from a file or a model folder. A folder is searched for tokenizer.json, then
    /// tokenizer.model, then tokenizer.bin / tok*.bin; a file is recognised by its name (.json, .model, .bin,
    /// .gguf: the tokenizer in a GGUF model's metadata).
    /// </summary>
    public static TextTokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = Path.GetFullPath(path);
        if (Directory.Exists(path))
        {
            string? found = FolderCandidates
                .Select(n => Path.Combine(path, n))
                .FirstOrDefault(File.Exists)
                ?? Directory.EnumerateFiles(path, "tok*.bin").Order(StringComparer.Ordinal).FirstOrDefault();
            return found is null
                ? throw new CheckpointFormatException(path, null, "contains no tokenizer.json, tokenizer.model or tok*.bin.", "Copy the model's tokenizer file into the folder or pass its path.")
                : Load(found);
        }
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer not found: {path}. Pass tokenizer.json, tokenizer.model, a llama2.c tok*.bin or a model folder.", path);
        }
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            return HuggingFaceBpeTokenizer.LoadFile(path);
        }
        if (path.EndsWith(".model", StringComparison.OrdinalIgnoreCase))
        {
            using var stream = File.OpenRead(path);
            return LoadSentencePiece(stream, path);
        }
        if (path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            return Llama2cTokenizer.LoadFile(path);
        }
        if (path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            using var gguf = GgufFile.Open(path);
            return FromGguf(GgufVocabulary.Read(gguf), path);
        }
        throw new CheckpointFormatException(path, null, "is not a recognised tokenizer file.", "Pass tokenizer.json (Hugging Face), tokenizer.model (SentencePiece), tok*.bin (llama2.c) or a .gguf model.");
    }

    /// <summary>The tokenizer a GGUF vocabulary describes; <paramref name="source"/> names it in errors.</summary>
    public static TextTokenizer FromGguf(GgufVocabulary vocabulary, string source = "gguf")
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        return vocabulary.Model switch
        {
            "llama" => Llama2cTokenizer.FromSentencePiece(vocabulary),
            "gpt2" => GgufByteLevelTokenizer.Create(vocabulary, source),
            _ => throw new CheckpointFormatException(source, null, $"has tokenizer.ggml.model '{vocabulary.Model}'; GGUF tokenizers read: 'llama' (SentencePiece-style) and 'gpt2' (byte-level BPE).",
                "Pass the model's tokenizer.json or tokenizer.model with --tokenizer / TextTokenizer.Load."),
        };
    }

    /// <summary>Loads a SentencePiece BPE model (Llama 2's tokenizer.model); <paramref name="source"/> names it in errors.</summary>
    public static TextTokenizer LoadSentencePiece(Stream modelStream, string source = "tokenizer.model")
    {
        ArgumentNullException.ThrowIfNull(modelStream);
        LlamaTokenizer tokenizer;
        byte[] model;
        try
        {
            // Kept to read the pieces' scores and types, which LlamaTokenizer does not expose (GgufWriter needs them).
            using (var copy = new MemoryStream())
            {
                modelStream.CopyTo(copy);
                model = copy.ToArray();
            }
            tokenizer = LlamaTokenizer.Create(new MemoryStream(model, writable: false), addBeginOfSentence: true, addEndOfSentence: false);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or IOException or Google.Protobuf.InvalidProtocolBufferException)
        {
            throw new CheckpointFormatException(source, null, $"is not a SentencePiece BPE model ({e.Message}).", "Pass the tokenizer.model that came with the checkpoint.", e);
        }
        return new SentencePieceTextTokenizer(tokenizer, model);
    }

    /// <summary>Parses "&lt;0xNN&gt;" byte-fallback pieces.</summary>
    internal static bool TryParseBytePiece(ReadOnlySpan<char> piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.Slice(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out value);
    }
}
