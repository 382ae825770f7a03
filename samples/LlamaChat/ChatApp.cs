using System.Diagnostics;
using AscendCC.Protocol.Attestation;
using AscendCC.Runtime.Chat;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Driver;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using LlamaChat.Attacks;
using LlamaChat.Demo;
using LlamaChat.Hosting;
using LlamaChat.Ui;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using AscendCC.Runtime.Tokenizers;

namespace LlamaChat;

/// <summary>
/// LlamaChat's main job: parse the command line, obtain the model (the demo is trained on first
/// run), play every party of a confidential inference and chat. Exit codes: 0 success, 1 bad input, a
/// refused step or an attack that was not blocked; in one-shot mode, <see cref="ExitTruncated"/> when
/// the reply was cut (by --max-tokens in chat mode, or by the end of the context) and
/// <see cref="ExitInterrupted"/> when Ctrl-C stopped it.
/// </summary>
public static class ChatApp
{
    /// <summary>One-shot exit code: the reply was printed but cut short by --max-tokens (chat mode) or the end of the context.</summary>
    public const int ExitTruncated = 3;

    /// <summary>One-shot exit code: Ctrl-C stopped the reply (128 + SIGINT, as a shell reports it).</summary>
    public const int ExitInterrupted = 130;

    /// <summary>Prefill chunk: tokens per forward pass while reading the prompt.</summary>
    private const int MaxBatchTokens = 64;

    /// <summary>
    /// Default KV cache cap (--ctx-size overrides it up to the model's maximum): the chat re-sends the
    /// whole history, sealed, every turn, and the simulated NPU's memory is the host's.
    /// </summary>
    private const int ContextCap = 2048;

    /// <summary>
    /// Runs LlamaChat with explicit streams: the reply (in raw completion mode, the prompt and its
    /// continuation) goes to <paramref name="stdout"/>; in one-shot mode everything else goes to
    /// <paramref name="stderr"/>, and --verbose diagnostics always do.
    /// </summary>
    /// <param name="args">The command line.</param>
    /// <param name="stdout">The reply stream (and, in chat mode, everything else but errors).</param>
    /// <param name="stderr">Errors and notices (and, in one-shot mode, the party steps).</param>
    /// <param name="stdin">The user's turns.</param>
    /// <param name="interrupt">Ctrl-C presses (Program wires the console's); null: none arrive.</param>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, TextReader stdin, ReplyInterrupt? interrupt = null)
    {
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        // The reply stream, Spectre (which may render progress from its own thread) and the logger share these writers.
        stdout = TextWriter.Synchronized(stdout);
        stderr = TextWriter.Synchronized(stderr);
        interrupt ??= new ReplyInterrupt();
        var command = ChatCommand.Create(options => Execute(options, stdout, stderr, stdin, interrupt));
        System.CommandLine.ParseResult parsed = command.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // One line per problem, naming the option, instead of the whole help after a .NET type name.
            foreach (System.CommandLine.Parsing.ParseError error in parsed.Errors)
            {
                stderr.WriteLine($"error: {ReadableParseError(error.Message)}");
            }
            stderr.WriteLine("Run LlamaChat --help for the options.");
            return 1;
        }
        return parsed.Invoke(new System.CommandLine.InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
    }

    /// <summary>System.CommandLine's message with the .NET type it expected said in words.</summary>
    private static string ReadableParseError(string message) => System.Text.RegularExpressions.Regex.Replace(message,
        @"as expected type '(System\.[A-Za-z0-9]+)'", m => "as " + (m.Groups[1].Value switch
        {
            "System.UInt64" or "System.UInt32" => "a whole number of zero or more",
            "System.Int32" or "System.Int64" => "a whole number",
            "System.Single" or "System.Double" => "a number (e.g. 0.8)",
            "System.Boolean" => "true or false",
            _ => "a value of the option's kind",
        }));

    /// <summary>
    /// A console on <paramref name="writer"/> that wraps lines and colours them only on a terminal:
    /// redirected to a file or a pipe, a hash, an evidence line or an error stays on one line without
    /// escape codes, so it can be grepped and copied.
    /// </summary>
    private static IAnsiConsole CreateConsole(TextWriter writer)
    {
        bool terminal = IsTerminal(writer);
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            // Escape codes in a file or a pipe are noise: colour only on a terminal.
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (!terminal)
        {
            console.Profile.Width = UnwrappedWidth;
        }
        return console;
    }

    private static bool IsTerminal(TextWriter writer) =>
        (ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected) || (ReferenceEquals(writer, Console.Error) && !Console.IsErrorRedirected);

    /// <summary>The width a redirected console lays text out in: wider than any line LlamaChat writes.</summary>
    private const int UnwrappedWidth = 1 << 14;

    private static int Execute(ChatOptions options, TextWriter stdout, TextWriter stderr, TextReader stdin, ReplyInterrupt interrupt)
    {
        bool oneShot = options.Prompt is not null;
        IAnsiConsole console = CreateConsole(oneShot ? stderr : stdout);
        using ILoggerFactory logs = LoggerFactory.Create(b =>
        {
            if (options.Verbose)
            {
                b.AddProvider(new WriterLoggerProvider(stderr, LogLevel.Debug)).SetMinimumLevel(LogLevel.Debug);
            }
        });
        IAnsiConsole errors = oneShot ? console : CreateConsole(stderr);
        var ui = new ChatUi(console, errors, stdout, logs.CreateLogger("LlamaChat"))
        {
            Quiet = options.Quiet,
            Terminal = IsTerminal(oneShot ? stderr : stdout),
            Interrupt = interrupt,
        };

        if (options.Attack is not null)
        {
            return RunAttack(ui, options.Attack);
        }
        if (Validate(options) is { } problem)
        {
            ui.Error(problem);
            return 1;
        }
        // A run that fails leaves no transcript behind (one it did not create is left alone).
        bool transcriptExisted = options.Transcript is not null && File.Exists(options.Transcript);
        try
        {
            return Chat(ui, options, stdin);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or CheckpointFormatException or NotSupportedException
            or FormatException or ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException
            or AscendCC.Runtime.Confidential.FirmwareMailboxException or AscendCC.Runtime.Trusted.Verification.AttestationFailedException
            or AscendCC.Runtime.Driver.NpuException or ChatInputException or ChatTemplateException
            or AscendCC.Client.RemoteNpuException or HttpRequestException or AscendCC.Protocol.Channels.SecureChannelException)
        {
            ui.Error(e.Message);
            ui.Logger.LogDebug(e, "details");
            if (options.Transcript is { } path && !transcriptExisted)
            {
                DeleteQuietly(path);
            }
            return 1;
        }
    }

    private static void DeleteQuietly(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The error already reported is what matters; a file that cannot be removed stays.
        }
    }

    private static string? Validate(ChatOptions o) =>
        o.MaxTokens < 1 ? "--max-tokens must be at least 1."
        : o.ContextSize is < 0 or 1 ? "--ctx-size must be at least 2 (or 0 for the model's maximum, at most 2048)."
        : !(o.Temperature >= 0) ? "--temperature must be 0 (greedy) or positive."
        : !(o.TopP > 0 && o.TopP <= 1) ? "--top-p must be in (0, 1]."
        : o.TopK < 0 ? "--top-k must be 0 (off) or positive."
        : !(o.MinP >= 0 && o.MinP <= 1) ? "--min-p must be in [0, 1] (0 = off)."
        : !(o.RepeatPenalty > 0) || !float.IsFinite(o.RepeatPenalty) ? "--repeat-penalty must be positive (1 = off)."
        : o.RepeatLastN < -1 ? "--repeat-last-n must be -1 (the whole context), 0 (none) or positive."
        : !float.IsFinite(o.FrequencyPenalty) ? "--frequency-penalty must be a finite number (0 = off)."
        : !float.IsFinite(o.PresencePenalty) ? "--presence-penalty must be a finite number (0 = off)."
        : ServerProblem(o);

    /// <summary>What is missing or contradictory about --server and its companions.</summary>
    private static string? ServerProblem(ChatOptions o)
    {
        if (o.Server is null)
        {
            return o.Manufacturer is not null || o.RequireModel is not null || o.Package is not null || o.Device != 0
                ? "--manufacturer, --require-model, --device and --package go with --server URL."
                : null;
        }
        if (!Uri.TryCreate(o.Server, UriKind.Absolute, out Uri? url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
        {
            return $"--server must be an http:// or https:// URL, not '{o.Server}'.";
        }
        return o.Model is null ? "--server needs --model: the model's folder (config.json, the tokenizer and its chat template; no weights) on this machine."
            : o.Manufacturer is null ? "--server needs --manufacturer: the folder of the manufacturer's public files the data owner trusts (docs/deployment.md)."
            : o.RequireModel is null ? "--server needs --require-model: the model's graph measurement its provider published (ascendcc-provider deploy prints it)."
            : !IsHex(o.RequireModel, 48) ? $"--require-model must be the model's 48-byte graph measurement as 96 hex digits; '{o.RequireModel}' is not."
            : o.NoCc ? "--no-cc cannot go with --server: the server's NPUs run with confidential computing on."
            : o.Weights is not null ? "--weights cannot go with --server: the model's provider chose its precision when it deployed the package."
            : o.KvCache != CausalLMOptions.DefaultKvCachePrecision ? "--kv-cache cannot go with --server: the model's provider chose the KV cache's type when it deployed the package."
            : o.Transcript is not null ? "--transcript records the bytes the local host handles; with --server the host is remote (capture its traffic instead)."
            : o.Device < 0 ? "--device must be 0 or more."
            : null;
    }

    private static bool IsHex(string text, int bytes) => text.Length == 2 * bytes && text.All(Uri.IsHexDigit);

    private static int RunAttack(ChatUi ui, string name)
    {
        IAttackCatalog catalog = AttackCatalogs.Current;
        if (name == "list")
        {
            // Names never wrap: they are what the user copies into --attack NAME.
            var table = new Table().AddColumn(new TableColumn("name").NoWrap()).AddColumns("requirement", "description");
            foreach (AttackInfo a in catalog.Attacks)
            {
                table.AddRow(Markup.Escape(a.Name), Markup.Escape(a.Requirement), Markup.Escape(a.Description));
            }
            ui.Console.Write(table);
            return 0;
        }
        if (catalog.Attacks.FirstOrDefault(a => a.Name == name) is not { } attack)
        {
            ui.Error($"no attack named '{name}'; run --attack list");
            return 1;
        }
        var clock = Stopwatch.StartNew();
        AttackOutcome outcome = catalog.Run(name);
        ui.Logger.LogInformation("attack {Name} ({Requirement}) ran on a fresh testbed in {Milliseconds} ms: {Outcome}", attack.Name, attack.Requirement, clock.ElapsedMilliseconds, outcome.Blocked ? "blocked" : "NOT blocked");
        string what = Markup.Escape($"{attack.Name} ({attack.Requirement}): {outcome.Evidence}");
        ui.Line(outcome.Blocked ? $"[green]blocked[/] {what}" : $"[red]NOT blocked[/] {what}");
        return outcome.Blocked ? 0 : 1;
    }

    /// <summary>--chat-template-kwargs as template variables; null when not given.</summary>
    private static IReadOnlyDictionary<string, object?>? ParseTemplateKwargs(string? json)
    {
        if (json is null)
        {
            return null;
        }
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(json);
            return ChatTemplate.VariablesFromJson(document.RootElement);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException)
        {
            throw new ChatInputException($"--chat-template-kwargs '{json}' is not a JSON object of strings, booleans, numbers and nulls ({e.Message}); write it as '{{\"enable_thinking\": false}}'");
        }
    }

    private static int Chat(ChatUi ui, ChatOptions options, TextReader stdin)
    {
        (string modelPath, string modelName) = ResolveModel(ui, options);
        // Before anything is opened or booted: a size or a template that does not parse is the user's to fix.
        ParseHbm(options.Hbm);
        ChatTemplate? template = LoadChatTemplate(options, modelPath);
        if (options.System is not null && template is null)
        {
            throw new ChatInputException($"--system needs a chat template, and {modelName} has none (no chat template in its folder or .gguf{(options.Raw ? ", or --raw was given" : "")}); pass --chat-template FILE");
        }
        IReadOnlyDictionary<string, object?>? templateVariables = ParseTemplateKwargs(options.ChatTemplateKwargs);
        if (templateVariables is not null && template is null)
        {
            throw new ChatInputException($"--chat-template-kwargs needs a chat template, and {modelName} has none (no chat template in its folder or .gguf{(options.Raw ? ", or --raw was given" : "")}); pass --chat-template FILE");
        }
        var clock = Stopwatch.StartNew();
        // With --server the weights are on the server: the data owner needs only the configuration,
        // the tokenizer and the template.
        using ModelCheckpoint? checkpoint = options.Server is null ? ModelCheckpoint.Open(modelPath) : null;
        ModelConfig config = checkpoint?.Config ?? ModelConfig.Load(Path.Combine(modelPath, "config.json"));
        TextTokenizer tokenizer = checkpoint is not null ? LoadTokenizer(modelPath, options.Tokenizer, checkpoint) : TextTokenizer.Load(options.Tokenizer ?? modelPath);
        ui.Logger.LogDebug("opened {Layout} model {Path} and its tokenizer ({Vocab} tokens) in {Milliseconds} ms", checkpoint?.Layout.ToString() ?? "config-only", modelPath, tokenizer.VocabSize, clock.ElapsedMilliseconds);
        if (tokenizer.VocabSize > config.VocabSize)
        {
            throw new ChatInputException($"the tokenizer has {tokenizer.VocabSize} tokens but the model only {config.VocabSize}; pass the tokenizer that belongs to {modelPath}");
        }
        // Without a chat template the model just continues text, so the chat behaves like llama2.c's run.c.
        bool completion = template is null;
        ui.Logger.LogDebug("{Mode} mode: --max-tokens {MaxTokens} bounds {Bound}", completion ? "raw completion" : "chat", options.MaxTokens,
            completion ? "the prompt's tokens after BOS plus the new tokens" : "the reply's tokens");
        ui.Evidence("model", $"{modelName}: {config.Family}, {config.NumHiddenLayers} layers, hidden {config.HiddenSize}, heads {config.NumAttentionHeads}/{config.KeyValueHeads} kv, vocab {config.VocabSize}");

        int modelContext = config.MaxPositionEmbeddings;
        if (options.ContextSize > modelContext)
        {
            throw new ChatInputException($"--ctx-size {options.ContextSize} is more than the {modelContext} positions {modelName} was trained for; pass at most {modelContext}");
        }
        int maxContext = options.ContextSize > 0 ? options.ContextSize : Math.Min(modelContext, ContextCap);
        IReadOnlyCollection<int> eos = config.EosTokenIds.Count > 0 ? config.EosTokenIds : [tokenizer.EosId];
        // An instruction-tuned model ends its turn with the template's end-of-turn token (Llama 3's <|eot_id|>), not always with EOS.
        IReadOnlyCollection<int> stop = [.. eos.Union(template?.EndOfTurnTokenIds(tokenizer) ?? [])];
        if (template is not null)
        {
            ui.Logger.LogDebug("chat template {Source}: bos {Bos}, eos {Eos}; a reply ends at token ids {Stop}", template.Source, template.BosToken ?? "(none)", template.EosToken ?? "(none)", string.Join(", ", stop));
        }
        var conversation = new Conversation(tokenizer, template, stop, options.System, templateVariables);
        if (options.Prompt is { } oneShot)
        {
            // Refuse a prompt that cannot be answered before booting and loading anything.
            IReadOnlyList<int> context = conversation.AddUserTurn(oneShot);
            if (context.Count == 0)
            {
                throw new ChatInputException("the prompt is empty and this model's tokenizer has no beginning-of-sequence token to generate from; give a prompt (--prompt TEXT)");
            }
            if (context.Count >= maxContext)
            {
                throw new ChatInputException($"the prompt is {context.Count} tokens; the context holds {maxContext}, so it must be at most {maxContext - 1}"
                    + (maxContext < modelContext ? $"; pass --ctx-size up to {modelContext}" : ""));
            }
            if (NoRoomToGenerate(conversation, options, completion) is { } problem)
            {
                throw new ChatInputException(problem);
            }
        }

        using ITranscriptWriter? transcript = options.Transcript is null ? null : TranscriptFiles.Open(options.Transcript);
        var load = Stopwatch.StartNew();
        using IChatEngine engine = CreateEngine(ui, options, checkpoint, modelName, tokenizer, maxContext, transcript);
        // As llama.cpp reports its load time: here booting the NPU, every attestation, the key release and the load.
        ui.Info(options.Server is not null
            ? $"ready in {load.Elapsed.TotalSeconds:F2} s (the manufacturer's files read; each reply attests the remote NPU); context {engine.MaxContext} tokens"
            : $"ready in {load.Elapsed.TotalSeconds:F2} s (boot, {(options.NoCc ? "weight upload" : "attestation, key release, package unlock")} and program load); context {engine.MaxContext} tokens");

        if (options.Prompt is not null)
        {
            ReplyEnd end = Reply(ui, engine, conversation, options, completion, echoTurn: completion);
            ReportTranscript(ui, transcript);
            return end switch
            {
                ReplyEnd.Interrupted => ExitInterrupted,
                ReplyEnd.Truncated => ExitTruncated,
                _ => 0,
            };
        }

        ui.Line("[bold]Chat[/] [grey](end a line with \\ to continue it; /reset starts over; /help lists the commands; /exit quits)[/]");
        if (template is not null)
        {
            ui.Info($"chat template from {template.Source}: your turns{(options.System is null ? "" : " and the --system message")} are formatted with it; --raw feeds your text as is");
        }
        while (true)
        {
            string? input = ReadTurn(ui, stdin);
            if (input is null || input.Trim() == "/exit")
            {
                break;
            }
            if (input.Trim() == "/reset")
            {
                conversation.Reset();
                ui.Info("context cleared");
                ui.Logger.LogInformation("history cleared: the next turn starts a new context at position 0");
                continue;
            }
            if (input.Trim() == "/help")
            {
                ui.Info(ChatCommandsHelp);
                continue;
            }
            if (IsUnknownCommand(input))
            {
                // A lone "/word" is a mistyped command far more often than a turn for the model.
                ui.Warning($"unknown command {input.Trim()}; {ChatCommandsHelp}");
                continue;
            }
            if (input.Trim().Length == 0)
            {
                continue;
            }
            IReadOnlyList<int> context;
            try
            {
                context = conversation.AddUserTurn(input);
            }
            catch (ChatTemplateException e)
            {
                // The template refused the history with this turn (e.g. roles that do not alternate): the turn is not taken.
                ui.Warning(e.Message);
                continue;
            }
            // Room for a reply: the turn must leave at least a quarter of the context (or --max-tokens, if less).
            int room = Math.Max(1, Math.Min(options.MaxTokens, engine.MaxContext / 4));
            if (conversation.LatestTurnAlone > engine.MaxContext - room)
            {
                int tokens = conversation.LatestTurnAlone;
                conversation.UndoUserTurn();
                ui.Warning($"this turn is {tokens} tokens; the context holds {engine.MaxContext} and keeps {room} for the reply, so a turn can be at most {engine.MaxContext - room} tokens. Shorten it"
                    + (engine.MaxContext < modelContext ? $", or pass --ctx-size up to {modelContext}." : "."));
                continue;
            }
            if (context.Count > engine.MaxContext - room)
            {
                (int turns, int dropped) = conversation.DropOldestTurns(engine.MaxContext - room);
                ui.Notice($"the context is full: dropped the oldest {turns} turn{(turns == 1 ? "" : "s")} ({dropped} tokens) to fit {engine.MaxContext}; /reset starts over");
                context = conversation.Tokens;
            }
            if (NoRoomToGenerate(conversation, options, completion) is { } problem)
            {
                conversation.UndoUserTurn();
                ui.Warning(problem);
                continue;
            }
            ui.Console.Markup("[bold deepskyblue1]llama>[/]");
            // The user just typed this turn's text, so even in completion mode only the continuation is shown.
            _ = Reply(ui, engine, conversation, options, completion, echoTurn: false);
        }
        ReportTranscript(ui, transcript);
        return 0;
    }

    /// <summary>Every party here (a simulated NPU, CC on or off), or only the data owner against --server.</summary>
    /// <summary>
    /// --hbm as bytes: "2GiB", "512MiB", "1.5GiB" or a plain number of GiB, between 1 MiB (the device's
    /// smallest HBM) and 1 TiB.
    /// </summary>
    public static long ParseHbm(string text)
    {
        var m = System.Text.RegularExpressions.Regex.Match(text.Trim(), @"^(\d+(?:\.\d+)?)\s*(GiB|MiB|G|M)?$", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
        if (!m.Success || !double.TryParse(m.Groups[1].Value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double value))
        {
            throw new ChatInputException($"--hbm '{text}' is not a size; write it as 2GiB, 16GiB or 512MiB");
        }
        double bytes = value * (m.Groups[2].Value.StartsWith("M", StringComparison.OrdinalIgnoreCase) ? 1 << 20 : 1L << 30);
        if (bytes < 1 << 20 || bytes > 1L << 40)
        {
            throw new ChatInputException($"--hbm {text} is outside 1MiB…1024GiB");
        }
        return (long)bytes;
    }

    private static ChatInputException HbmTooSmall(string modelName, WeightPrecision precision, int maxContext, long needed, long hbm)
    {
        static string Size(long bytes) => bytes >= 1L << 30
            ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.##}GiB")
            : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{bytes / (double)(1 << 20):0.#}MiB");
        // A round size above the need: whole GiB from 1 GiB on, else whole 64 MiB.
        long step = needed >= 1L << 30 ? 1L << 30 : 64L << 20;
        long suggest = (needed + step - 1) / step * step;
        return new ChatInputException($"{modelName} in {precision} with a {maxContext}-token context needs at least {Size(needed)} of HBM and the simulated NPU has {Size(hbm)}: "
            + $"pass --hbm {Size(suggest)} (the host's memory backs it), or a smaller --weights or --ctx-size");
    }

    private static IChatEngine CreateEngine(ChatUi ui, ChatOptions options, ModelCheckpoint? checkpoint, string modelName, TextTokenizer tokenizer, int maxContext, ITranscriptWriter? transcript)
    {
        if (options.Server is { } server)
        {
            return new RemoteEngine(ui, new Uri(server), options.Manufacturer!, options.Device, options.Package, Convert.FromHexString(options.RequireModel!), tokenizer, maxContext);
        }
        WeightPrecision precision = options.Weights ?? CheckpointPrecisions.Stored(checkpoint!);
        IReadOnlyDictionary<string, WeightPrecision> wider = CheckpointPrecisions.For(checkpoint!, precision);
        if (CheckpointPrecisions.Refusal(checkpoint!, precision) is { } refusal)
        {
            throw new ChatInputException($"--weights {precision.ToString().ToLowerInvariant()}: {modelName}'s {refusal} (pass one to --weights)");
        }
        if (options.KvCache is KvCachePrecision.Q8_0 or KvCachePrecision.Q4_0 && checkpoint!.Config.HeadDim % 32 != 0)
        {
            throw new ChatInputException($"--kv-cache {options.KvCache.ToString().ToLowerInvariant()} keeps each head's row in whole blocks of 32 values; {modelName}'s head dimension is {checkpoint.Config.HeadDim} (pass --kv-cache f16)");
        }
        ui.Evidence("weights", $"{precision}{(options.Weights is null ? " (as the checkpoint stores them; --weights to choose)" : "")}"
            + (wider.Count > 0 ? $", {wider.Count} matrices the file stores wider kept in Q8_0" : "") + $"; KV cache {options.KvCache}");
        // Before anything boots: the program's regions (weights, KV cache, activations, staging) must fit the NPU's HBM.
        long hbm = ParseHbm(options.Hbm);
        var deployment = new ModelDeployment(checkpoint!.Config, checkpoint.RopeConvention, maxContext, MaxBatchTokens, precision, options.KvCache, MatrixPrecisions: wider);
        long needed = deployment.MinimumHbmBytes();
        if (needed > hbm)
        {
            throw HbmTooSmall(modelName, precision, maxContext, needed, hbm);
        }
        var npu = new SimulatedNpu(ui, options.NoCc ? CcMode.Off : CcMode.On, transcript, hbm);
        try
        {
            IChatEngine engine = options.NoCc
                ? new PlainEngine(ui, npu, checkpoint, options.Mode, maxContext, MaxBatchTokens, precision, wider, options.KvCache)
                : new ConfidentialEngine(ui, npu, checkpoint, modelName, options.Mode, maxContext, MaxBatchTokens, precision, wider, options.KvCache);
            return new OwningEngine(engine, npu);
        }
        catch (NpuOutOfMemoryException)
        {
            // The estimate is a lower bound of what the regions take; should it fall short, the same advice.
            npu.Dispose();
            throw HbmTooSmall(modelName, precision, maxContext, Math.Max(needed, hbm + 1), hbm);
        }
        catch
        {
            npu.Dispose();
            throw;
        }
    }

    /// <summary>An engine together with the simulated NPU it runs on, disposed engine first.</summary>
    private sealed class OwningEngine(IChatEngine engine, IDisposable npu) : IChatEngine
    {
        public int MaxContext => engine.MaxContext;

        public IEnumerable<int> Generate(IReadOnlyList<int> context, int maxTokens, SamplingOptions sampling, IReadOnlyCollection<int> stopTokens) =>
            engine.Generate(context, maxTokens, sampling, stopTokens);

        public void Dispose()
        {
            engine.Dispose();
            npu.Dispose();
        }
    }

    /// <summary>
    /// In completion mode --max-tokens is llama2.c's -n: it counts the turn's text tokens (after BOS)
    /// as well as the new ones, so a turn of N or more tokens leaves nothing to generate.
    /// </summary>
    private static string? NoRoomToGenerate(Conversation conversation, ChatOptions options, bool completion)
    {
        int text = conversation.TurnTextTokens;
        return completion && text >= options.MaxTokens
            ? $"the prompt is {text} tokens and --max-tokens is {options.MaxTokens}; in raw completion mode --max-tokens counts the prompt's tokens as well as the new ones (like llama2.c's -n), "
              + $"so no token is left to generate. Pass --max-tokens greater than {text} (e.g. {text + options.MaxTokens}) or a shorter prompt."
            : null;
    }

    /// <summary>How a reply ended.</summary>
    private enum ReplyEnd
    {
        /// <summary>The model ended it (end-of-sequence or end-of-turn), a --stop string did, or raw completion used its --max-tokens.</summary>
        Finished,

        /// <summary>Cut short: by --max-tokens in chat mode, or by the end of the context.</summary>
        Truncated,

        /// <summary>Ctrl-C stopped it.</summary>
        Interrupted,
    }

    private static ReplyEnd Reply(ChatUi ui, IChatEngine engine, Conversation conversation, ChatOptions options, bool completion, bool echoTurn)
    {
        IReadOnlyList<int> context = conversation.Tokens;
        int promptTokens = context.Count;
        if (conversation.RenderedPrompt is { } rendered)
        {
            // The diagnostic hook for what the model reads: the template's text, on one line.
            ui.Logger.LogDebug("chat template rendered the prompt ({Tokens} tokens): {Prompt}", promptTokens, rendered.Replace("\n", "\\n", StringComparison.Ordinal));
        }
        int budget = Math.Min(completion ? options.MaxTokens - conversation.TurnTextTokens : options.MaxTokens, engine.MaxContext - promptTokens);
        TextStreamDecoder stream;
        if (echoTurn)
        {
            // Decoding the turn's own tokens (not echoing the typed string) prints what the model read,
            // with the tokenizer's leading-space rule after BOS — what llama2.c prints for its prompt.
            int start = conversation.TurnStart;
            stream = new TextStreamDecoder(conversation.Tokenizer, context.Take(start));
            for (int i = start; i < promptTokens; i++)
            {
                ui.ReplyText(stream.Push(context[i]));
            }
        }
        else
        {
            stream = new TextStreamDecoder(conversation.Tokenizer, context);
        }
        var clock = Stopwatch.StartNew();
        TimeSpan firstToken = TimeSpan.Zero;
        var reply = new List<int>();
        var stops = new StopSequences(options.Stop);
        // A one-shot chat reply goes to stdout alone: without the space the tokenizer puts before its
        // first word (after "A:"), as a script expects it. Raw completion prints the text exactly.
        bool trimLead = !completion && options.Prompt is not null;
        string Lead(string piece)
        {
            if (!trimLead)
            {
                return piece;
            }
            piece = piece.TrimStart(' ');
            trimLead = piece.Length == 0;
            return piece;
        }
        // Where each reply token's text ends, to keep in the history only the tokens before a stop string.
        var ends = new List<int>();
        ui.Interrupt.BeginReply();
        try
        {
            foreach (int token in engine.Generate(context, budget, options.Sampling, conversation.StopTokens))
            {
                if (reply.Count == 0)
                {
                    firstToken = clock.Elapsed;
                }
                reply.Add(token);
                ui.ReplyText(Lead(stops.Push(stream.Push(token))));
                ends.Add(stops.Length);
                // Leaving the loop ends the generation: no further step is asked of the device.
                if (stops.Stopped || ui.Interrupt.Requested)
                {
                    break;
                }
            }
        }
        finally
        {
            ui.Interrupt.EndReply();
        }
        bool interrupted = ui.Interrupt.Requested;
        TimeSpan total = clock.Elapsed;
        ui.ReplyText(Lead(stops.Push(stream.Flush()) + stops.Flush()));
        ui.ReplyEnd();
        if (stops.Stopped)
        {
            ui.Logger.LogInformation("generation: a --stop string ended the reply after {Tokens} tokens", reply.Count);
            int kept = ends.FindIndex(end => end > stops.StopAt);
            reply.RemoveRange(kept, reply.Count - kept);
        }
        conversation.AddReply(reply);
        bool endedByModel = stops.Stopped || (reply.Count > 0 && conversation.StopTokens.Contains(reply[^1]));
        bool cutByContext = !endedByModel && !interrupted && reply.Count >= budget && budget == engine.MaxContext - promptTokens;
        bool cutByMaxTokens = !endedByModel && !interrupted && !cutByContext && !completion && reply.Count >= options.MaxTokens;
        if (interrupted)
        {
            ui.Notice($"stopped by Ctrl-C after {reply.Count} tokens" + (options.Prompt is null ? "; Ctrl-C at the prompt exits" : ""));
        }
        else if (cutByContext)
        {
            ui.Notice($"the reply was cut at the end of the context ({engine.MaxContext} tokens): the next turn drops the oldest turns; --ctx-size sets the context");
        }
        else if (cutByMaxTokens)
        {
            ui.Notice($"the reply was cut at --max-tokens {options.MaxTokens}; pass a larger --max-tokens for longer replies");
        }
        double prefillSeconds = firstToken.TotalSeconds, decodeSeconds = (total - firstToken).TotalSeconds;
        int decoded = Math.Max(0, reply.Count - 1);
        bool stopped = reply.Count > 0 && conversation.StopTokens.Contains(reply[^1]);
        ui.Logger.LogInformation(
            "generation: prefill {PromptTokens} tok (positions 0-{LastPromptPosition}) in {PrefillMs:F1} ms; decode {Decoded} tok (positions {FirstDecodePosition}-{LastDecodePosition}) in {DecodeMs:F1} ms; {Generated} new of at most {Budget}, {End}",
            promptTokens, promptTokens - 1, firstToken.TotalMilliseconds, decoded, promptTokens, promptTokens + decoded - 1, (total - firstToken).TotalMilliseconds,
            reply.Count, budget, stopped ? "stopped at end-of-sequence" : "budget reached");
        ui.Info($"{reply.Count} tokens · first after {prefillSeconds:F2} s · prefill {promptTokens} tok in {prefillSeconds:F2} s ({Rate(promptTokens, prefillSeconds)} tok/s) · decode {decoded} tok in {decodeSeconds:F2} s ({Rate(decoded, decodeSeconds)} tok/s)");
        return interrupted ? ReplyEnd.Interrupted : cutByContext || cutByMaxTokens ? ReplyEnd.Truncated : ReplyEnd.Finished;
    }

    private static string Rate(int tokens, double seconds) => seconds > 0 ? (tokens / seconds).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) : "-";

    private static void ReportTranscript(ChatUi ui, ITranscriptWriter? transcript)
    {
        if (transcript is not null)
        {
            ui.Evidence("transcript", $"{transcript.Records:N0} records, {transcript.Bytes:N0} bytes the host handled");
        }
    }

    private const string ChatCommandsHelp = "commands: /help lists them, /reset starts a new conversation, /exit quits; end a line with \\ to continue it on the next";

    /// <summary>A line that is one slash word other than the known commands (text with spaces after a slash goes to the model).</summary>
    private static bool IsUnknownCommand(string input)
    {
        string line = input.Trim();
        return line.Length > 1 && line[0] == '/' && !line.Any(char.IsWhiteSpace);
    }

    private static string? ReadTurn(ChatUi ui, TextReader stdin)
    {
        ui.Console.Markup("[bold green]you>[/] ");
        var text = new System.Text.StringBuilder();
        while (true)
        {
            string? line = stdin.ReadLine();
            if (line is null)
            {
                return text.Length > 0 ? text.ToString() : null;
            }
            if (line.EndsWith('\\'))
            {
                text.Append(line.AsSpan(0, line.Length - 1)).Append('\n');
                ui.Console.Markup("[grey]...>[/] ");
                continue;
            }
            text.Append(line);
            return text.ToString();
        }
    }

    private static (string Path, string Name) ResolveModel(ChatUi ui, ChatOptions options)
    {
        if (options.Model is { } path)
        {
            if (!File.Exists(path) && !Directory.Exists(path))
            {
                throw new ChatInputException($"model not found: {Path.GetFullPath(path)}. Pass a Hugging Face model folder or a llama2.c .bin file, or omit --model for the demo.");
            }
            return (path, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path))));
        }
        DemoTrainingSettings settings = DemoTrainingSettings.Default;
        string cacheRoot = DemoTrainer.DefaultCacheRoot;
        ui.Step("model provider", $"obtains the demo Llama (TorchSharp, trained on a generated corpus; cache {cacheRoot})");
        string cached = Path.Combine(cacheRoot, settings.Hash());
        bool usable = !options.RebuildDemo && Directory.Exists(cached) && DemoCache.Verify(cached) is null;
        DemoModelResult result = usable
            ? DemoTrainer.GetOrTrain(settings, cacheRoot)
            : ui.Progress("training", settings.Steps, report => DemoTrainer.GetOrTrain(settings, cacheRoot,
                new InlineProgress<TrainingProgress>(p => report(p.Step, $"step {p.Step}/{p.Steps} loss {p.Loss:F3}")), options.RebuildDemo));
        if (result.RebuiltBecause is { } reason)
        {
            ui.Notice($"the demo model cache at {cached} was rebuilt: {reason}");
        }
        ui.Evidence("demo model", result.FromCache
            ? $"cached at {result.Folder}"
            : $"trained in {result.Elapsed.TotalSeconds:F0} s, final loss {result.FinalLoss:F3}, saved to {result.Folder}");
        return (result.Folder, "llamachat-demo");
    }

    /// <summary>
    /// The chat template: --chat-template FILE (a .jinja file, whose special tokens come from the model
    /// folder's tokenizer_config.json or the .gguf, or a tokenizer_config.json), else the model's own
    /// (its folder's, or a .gguf's tokenizer.chat_template); none with --raw or for a base model.
    /// </summary>
    private static ChatTemplate? LoadChatTemplate(ChatOptions options, string modelPath)
    {
        // A .gguf carries its own template and special tokens (tokenizer.chat_template); a llama2.c .bin's are its folder's.
        string folder = Directory.Exists(modelPath) || modelPath.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? modelPath : Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        if (options.ChatTemplate is { } file)
        {
            return options.Raw
                ? throw new ChatInputException("--raw feeds your text without a chat template, so it cannot be combined with --chat-template")
                : ChatTemplate.Load(file, specialTokensFrom: folder);
        }
        return options.Raw ? null : ChatTemplate.TryLoadFromModel(folder);
    }

    private static TextTokenizer LoadTokenizer(string modelPath, string? tokenizerPath, ModelCheckpoint checkpoint)
    {
        if (tokenizerPath is not null)
        {
            return TextTokenizer.Load(tokenizerPath);
        }
        if (checkpoint.Layout == CheckpointLayout.Llama2c)
        {
            string folder = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
            if (!Directory.EnumerateFiles(folder, "tok*.bin").Any() && !File.Exists(Path.Combine(folder, "tokenizer.model")) && !File.Exists(Path.Combine(folder, "tokenizer.json")))
            {
                throw new ChatInputException($"{modelPath} is a llama2.c checkpoint and {folder} has no tokenizer; pass --tokenizer PATH (tok*.bin, tokenizer.model or tokenizer.json)");
            }
            return TextTokenizer.Load(folder);
        }
        return TextTokenizer.Load(modelPath);
    }

    /// <summary>IProgress that calls back synchronously (Progress&lt;T&gt; would post to a thread pool).</summary>
    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

/// <summary>Input the chat cannot use (bad model path, prompt too long, mismatched tokenizer).</summary>
public sealed class ChatInputException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ChatInputException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ChatInputException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public ChatInputException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
