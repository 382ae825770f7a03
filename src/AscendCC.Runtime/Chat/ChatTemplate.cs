using System.Text.Json;
using AscendCC.Runtime.Chat.Jinja;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Runtime.Chat;

/// <summary>
/// A model's chat format as Hugging Face ships it: the Jinja <c>chat_template</c> of
/// <c>tokenizer_config.json</c> (or a <c>chat_template.jinja</c> file) with its <c>bos_token</c> and
/// <c>eos_token</c>, rendered as <c>tokenizer.apply_chat_template</c> renders it (trim_blocks,
/// lstrip_blocks, <c>raise_exception</c>, <c>strftime_now</c>, <c>tojson</c> as json.dumps).
/// The template is parsed when loaded, so a syntax error, an unknown filter or an unknown test is
/// reported then, with its line and column.
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>Markers that end a turn in the common formats; those the template writes stop a reply besides <see cref="EosToken"/>.</summary>
    private static readonly string[] EndOfTurnMarkers = ["<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "<|eom_id|>", "<|endoftext|>", "</s>"];

    private readonly JinjaTemplate _template;

    private ChatTemplate(string text, string? bosToken, string? eosToken, string source)
    {
        _template = JinjaTemplate.Parse(text, source);
        Text = text;
        BosToken = string.IsNullOrEmpty(bosToken) ? null : bosToken;
        EosToken = string.IsNullOrEmpty(eosToken) ? null : eosToken;
        Source = source;
        var stops = new List<string>();
        if (EosToken is not null)
        {
            stops.Add(EosToken);
        }
        stops.AddRange(EndOfTurnMarkers.Where(m => text.Contains(m, StringComparison.Ordinal) && !stops.Contains(m)));
        EndOfTurnTokens = stops;
    }

    /// <summary>The template text.</summary>
    public string Text { get; }

    /// <summary>Where the template came from (a file and field, or "chat template"); errors start with it.</summary>
    public string Source { get; }

    /// <summary>The beginning-of-sequence token's text (<c>bos_token</c>), or null when the model has none.</summary>
    public string? BosToken { get; }

    /// <summary>The end-of-sequence token's text (<c>eos_token</c>), or null when the model has none.</summary>
    public string? EosToken { get; }

    /// <summary>
    /// The token texts that end an assistant turn: <see cref="EosToken"/> and the end-of-turn markers
    /// the template writes (<c>&lt;|eot_id|&gt;</c> for Llama 3, <c>&lt;|im_end|&gt;</c> for ChatML,
    /// <c>&lt;end_of_turn&gt;</c> for Gemma, <c>&lt;|end|&gt;</c> for Phi-3): a reply stops at any of them.
    /// </summary>
    public IReadOnlyList<string> EndOfTurnTokens { get; }

    /// <summary>The clock <c>strftime_now</c> reads (local time, as Python's datetime.now()); tests inject a fixed one.</summary>
    public TimeProvider Clock { get; set; } = TimeProvider.System;

    /// <summary>A template from its text and the model's special tokens; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="ChatTemplateException">The template has a syntax error, an unknown filter or an unknown test.</exception>
    public static ChatTemplate FromText(string template, string? bosToken = null, string? eosToken = null, string source = "chat template")
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentException.ThrowIfNullOrEmpty(source);
        return new ChatTemplate(template, bosToken, eosToken, source);
    }

    /// <summary>
    /// Loads a template from a model folder (its <c>chat_template.jinja</c>, else the
    /// <c>chat_template</c> of its <c>tokenizer_config.json</c>), from a <c>tokenizer_config.json</c>,
    /// from a GGUF file (its <c>tokenizer.chat_template</c>), or from a template file (any other name,
    /// e.g. <c>.jinja</c>). A template file has no special tokens of its own: they are read from
    /// <paramref name="specialTokensFrom"/> (a model folder, a tokenizer_config.json or a GGUF file) when given.
    /// </summary>
    /// <exception cref="FileNotFoundException">Nothing at <paramref name="path"/>.</exception>
    /// <exception cref="ChatTemplateException">The file has no chat template, is not valid JSON, or the template does not parse.</exception>
    public static ChatTemplate Load(string path, string? specialTokensFrom = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            return TryLoadFromModel(full) ?? throw new ChatTemplateException($"{full}: the model folder has no chat template (no chat_template.jinja, and no tokenizer_config.json with a chat_template).");
        }
        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"Chat template not found: {full}. Pass a .jinja file, a tokenizer_config.json, a .gguf or a model folder.", full);
        }
        if (IsGguf(full))
        {
            return TryLoadFromModel(full) ?? throw new ChatTemplateException($"{full}: the GGUF file has no tokenizer.chat_template (the model may be a base model without a chat format).");
        }
        if (Path.GetFileName(full).Equals("tokenizer_config.json", StringComparison.OrdinalIgnoreCase) || full.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            var config = ReadConfig(full);
            return config.Template is { } text
                ? new ChatTemplate(text, config.Bos, config.Eos, $"{full} (chat_template)")
                : throw new ChatTemplateException($"{full}: has no chat_template (the model may be a base model without a chat format).");
        }
        (string? bos, string? eos) = specialTokensFrom is null ? (null, null) : SpecialTokens(specialTokensFrom);
        return new ChatTemplate(File.ReadAllText(full), bos, eos, full);
    }

    /// <summary>
    /// The model's chat template, or null when it has none (a base model): for a model folder its
    /// <c>chat_template.jinja</c> (newer transformers save the template there), else the
    /// <c>chat_template</c> of its <c>tokenizer_config.json</c> (a string, or a list of named templates
    /// of which "default" is used); for a GGUF file its <c>tokenizer.chat_template</c>, with bos_token
    /// and eos_token the texts of its BOS and EOS ids.
    /// </summary>
    /// <exception cref="ChatTemplateException">tokenizer_config.json is not valid JSON, or the template does not parse.</exception>
    public static ChatTemplate? TryLoadFromModel(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (File.Exists(folder) && IsGguf(folder))
        {
            return FromGguf(folder);
        }
        string config = Path.Combine(folder, "tokenizer_config.json");
        string jinja = Path.Combine(folder, "chat_template.jinja");
        var parsed = File.Exists(config) ? ReadConfig(config) : (Template: null, Bos: null, Eos: null);
        if (File.Exists(jinja))
        {
            return new ChatTemplate(File.ReadAllText(jinja), parsed.Bos, parsed.Eos, jinja);
        }
        return parsed.Template is { } text ? new ChatTemplate(text, parsed.Bos, parsed.Eos, $"{config} (chat_template)") : null;
    }

    /// <summary>
    /// Renders <paramref name="messages"/> as the model's prompt text, special tokens as text
    /// (encode it with the tokenizer's special-token parsing on); with
    /// <paramref name="addGenerationPrompt"/> the text ends where the assistant's reply begins.
    /// </summary>
    /// <exception cref="ChatTemplateRaisedException">The template refused the conversation (<c>raise_exception</c>).</exception>
    /// <exception cref="ChatTemplateException">The template failed on these messages (e.g. attribute of an undefined value).</exception>
    public string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt) => Render(messages, addGenerationPrompt, null);

    /// <summary>
    /// Renders with extra template variables (e.g. <c>date_string</c> for Llama 3.1), which override
    /// the standard ones: <c>messages</c>, <c>add_generation_prompt</c>, <c>bos_token</c>,
    /// <c>eos_token</c>, <c>tools</c> and <c>documents</c> (none).
    /// </summary>
    public string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? variables)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.Select(m => (object?)m).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            // apply_chat_template passes tools and documents even when there are none: defined, as None.
            ["tools"] = null,
            ["documents"] = null,
        };
        if (BosToken is not null)
        {
            scope["bos_token"] = BosToken;
        }
        if (EosToken is not null)
        {
            scope["eos_token"] = EosToken;
        }
        if (variables is not null)
        {
            foreach (var (name, value) in variables)
            {
                scope[name] = value;
            }
        }
        return _template.Render(scope, Clock);
    }

    /// <summary>
    /// Template variables from a JSON object (transformers' apply_chat_template keyword arguments as
    /// vLLM's and llama.cpp's servers take them, <c>chat_template_kwargs</c>, e.g. <c>{"enable_thinking": false}</c>):
    /// strings, booleans, numbers (integral ones as long) and null.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="json"/> is not an object, or a value is a list or an object (named).</exception>
    public static IReadOnlyDictionary<string, object?> VariablesFromJson(System.Text.Json.JsonElement json)
    {
        if (json.ValueKind != System.Text.Json.JsonValueKind.Object)
        {
            throw new ArgumentException($"chat template variables must be a JSON object such as {{\"enable_thinking\": false}}, not a JSON {json.ValueKind.ToString().ToLowerInvariant()}", nameof(json));
        }
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (System.Text.Json.JsonProperty p in json.EnumerateObject())
        {
            variables[p.Name] = VariableFromJson(p.Name, p.Value);
        }
        return variables;
    }

    /// <summary>One template variable's value from JSON (see <see cref="VariablesFromJson"/>).</summary>
    /// <exception cref="ArgumentException">The value is a list or an object.</exception>
    public static object? VariableFromJson(string name, System.Text.Json.JsonElement value) => value.ValueKind switch
    {
        System.Text.Json.JsonValueKind.True => true,
        System.Text.Json.JsonValueKind.False => false,
        System.Text.Json.JsonValueKind.Null => null,
        System.Text.Json.JsonValueKind.String => value.GetString(),
        System.Text.Json.JsonValueKind.Number => value.TryGetInt64(out long l) ? l : value.GetDouble(),
        _ => throw new ArgumentException($"chat template variable '{name}' is a JSON {value.ValueKind.ToString().ToLowerInvariant()}; only strings, booleans, numbers and null are passed to the template", nameof(value)),
    };

    /// <summary>True when <paramref name="rendered"/> already starts with <see cref="BosToken"/>, so the tokenizer must not add another.</summary>
    public bool StartsWithBos(string rendered)
    {
        ArgumentNullException.ThrowIfNull(rendered);
        return BosToken is not null && rendered.StartsWith(BosToken, StringComparison.Ordinal);
    }

    /// <summary>
    /// Renders <paramref name="messages"/> and encodes the prompt with <paramref name="tokenizer"/>:
    /// the special tokens the template writes become their single ids, and a BOS is put first only
    /// when the tokenizer uses one and the template did not already write it (Llama 2's and Llama 3's
    /// templates do; a second BOS would change what the model reads). <paramref name="variables"/> are
    /// extra template variables, as <see cref="Render(IReadOnlyList{ChatTurn}, bool, IReadOnlyDictionary{string, object?})"/>
    /// takes them (transformers' apply_chat_template keyword arguments, e.g. Qwen3's <c>enable_thinking</c>).
    /// </summary>
    public IReadOnlyList<int> Encode(TextTokenizer tokenizer, IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt = true, IReadOnlyDictionary<string, object?>? variables = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        string rendered = Render(messages, addGenerationPrompt, variables);
        return tokenizer.Encode(rendered, addBos: tokenizer.HasBos && !StartsWithBos(rendered), parseSpecialTokens: true);
    }

    /// <summary>
    /// The ids of <see cref="EndOfTurnTokens"/> in <paramref name="tokenizer"/>: each that is one of its
    /// special tokens or encodes to a single id. Generation stops at any of them.
    /// </summary>
    public IReadOnlyList<int> EndOfTurnTokenIds(TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var ids = new List<int>();
        foreach (string token in EndOfTurnTokens)
        {
            if (tokenizer.SpecialTokens.TryGetValue(token, out int id) || tokenizer.Encode(token, addBos: false, parseSpecialTokens: true) is [int single] && (id = single) >= 0)
            {
                if (!ids.Contains(id))
                {
                    ids.Add(id);
                }
            }
        }
        return ids;
    }

    /// <summary>True when <paramref name="path"/> is a file that starts with GGUF's magic.</summary>
    private static bool IsGguf(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        using FileStream file = File.OpenRead(path);
        return file.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("GGUF"u8);
    }

    /// <summary>
    /// A GGUF file's chat template, as llama.cpp's converter stores a model's: <c>tokenizer.chat_template</c>,
    /// with the texts of <c>tokenizer.ggml.bos_token_id</c> and <c>eos_token_id</c> as bos_token and
    /// eos_token; null when the file has none.
    /// </summary>
    private static ChatTemplate? FromGguf(string path)
    {
        using var file = Models.Gguf.GgufFile.Open(path);
        if (file.Metadata.GetString("tokenizer.chat_template") is not { } text)
        {
            return null;
        }
        (string? bos, string? eos) = GgufSpecialTokens(file);
        return new ChatTemplate(text, bos, eos, $"{path} (tokenizer.chat_template)");
    }

    private static (string? Bos, string? Eos) GgufSpecialTokens(Models.Gguf.GgufFile file)
    {
        string? Token(string key) => file.Metadata.GetInt32(key) is { } id && file.Metadata.GetArray("tokenizer.ggml.tokens")?.Values is string[] tokens && id >= 0 && id < tokens.Length
            ? tokens[id]
            : null;
        return (Token("tokenizer.ggml.bos_token_id"), Token("tokenizer.ggml.eos_token_id"));
    }

    private static (string? Bos, string? Eos) SpecialTokens(string path)
    {
        if (File.Exists(path) && IsGguf(path))
        {
            using var file = Models.Gguf.GgufFile.Open(path);
            return GgufSpecialTokens(file);
        }
        string config = Directory.Exists(path) ? Path.Combine(path, "tokenizer_config.json") : path;
        if (!File.Exists(config))
        {
            return (null, null);
        }
        var parsed = ReadConfig(config);
        return (parsed.Bos, parsed.Eos);
    }

    private static (string? Template, string? Bos, string? Eos) ReadConfig(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new ChatTemplateException($"{path}: is not a JSON object.");
            }
            return (Template(root, path), Token(root, "bos_token"), Token(root, "eos_token"));
        }
        catch (JsonException e)
        {
            throw new ChatTemplateException($"{path}: is not valid JSON ({e.Message}).", e);
        }
    }

    private static string? Template(JsonElement root, string path)
    {
        if (!root.TryGetProperty("chat_template", out JsonElement template) || template.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (template.ValueKind == JsonValueKind.String)
        {
            return template.GetString();
        }
        if (template.ValueKind == JsonValueKind.Array)
        {
            // A list of {name, template}: apply_chat_template uses "default" unless told otherwise.
            foreach (JsonElement named in template.EnumerateArray())
            {
                if (named.ValueKind == JsonValueKind.Object && named.TryGetProperty("name", out JsonElement name) && name.ValueKind == JsonValueKind.String
                    && name.GetString() == "default" && named.TryGetProperty("template", out JsonElement text) && text.ValueKind == JsonValueKind.String)
                {
                    return text.GetString();
                }
            }
            throw new ChatTemplateException($"{path}: chat_template is a list of named templates with none named \"default\".");
        }
        throw new ChatTemplateException($"{path}: chat_template is a JSON {template.ValueKind}, not a string or a list of {{name, template}}.");
    }

    /// <summary>A special token written as a string or as an AddedToken object {"content": ...}.</summary>
    private static string? Token(JsonElement root, string name) =>
        !root.TryGetProperty(name, out JsonElement token) ? null
        : token.ValueKind == JsonValueKind.String ? token.GetString()
        : token.ValueKind == JsonValueKind.Object && token.TryGetProperty("content", out JsonElement content) && content.ValueKind == JsonValueKind.String ? content.GetString()
        : null;
}
