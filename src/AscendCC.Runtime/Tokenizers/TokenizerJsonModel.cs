using System.Text.Json;
using AscendCC.Runtime.Models;

namespace AscendCC.Runtime.Tokenizers;

/// <summary>
/// What the two tokenizer.json readers (SentencePiece-style and byte-level BPE) share: the file they
/// came from, its field access with errors that name the file, and the model's vocabulary.
/// </summary>
internal abstract class TokenizerJsonModel : TextTokenizer
{
    protected TokenizerJsonModel(string source) => Source = source;

    /// <summary>The file, for error messages.</summary>
    protected string Source { get; }

    protected JsonElement Required(JsonElement parent, string name, JsonValueKind kind) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind == kind
            ? value
            : throw Format($"field \"{name}\" is missing or not a JSON {kind}.");

    protected CheckpointFormatException Format(string problem) =>
        new(Source, null, problem, "Pass the tokenizer.json that came with the model.");

    protected NotSupportedException Unsupported(string what, string hint) =>
        new($"{Source}: {what} is not supported. {hint}");

    /// <summary>model.vocab: token → id, every id a non-negative integer.</summary>
    protected Dictionary<string, int> ReadVocab(JsonElement model)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in Required(model, "vocab", JsonValueKind.Object).EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out int id) || id < 0)
            {
                throw Format($"model.vocab entry '{entry.Name}' has id {entry.Value.GetRawText()}, not a non-negative integer.");
            }
            vocab[entry.Name] = id;
        }
        return vocab;
    }
}
