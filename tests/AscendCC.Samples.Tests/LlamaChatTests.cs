using System.Text;
using AscendCC.Runtime.Models;
using AscendCC.Tests;
using LlamaChat;
using LlamaChat.Demo;
using NUnit.Framework;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Samples.Tests;

/// <summary>LlamaChat's main entry, in process, as a user runs it.</summary>
public class LlamaChatTests
{
    private static (int Exit, string Stdout, string Stderr) RunChat(params string[] args) => RunChatWithInput("", args);

    private static (int Exit, string Stdout, string Stderr) RunChatWithInput(string stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = ChatApp.Run(args, stdout, stderr, new StringReader(stdin));
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Test]
    public void InteractiveChatKeepsHistoryJoinsContinuedLinesResetsAndExitsAtEndOfInput()
    {
        string folder = TestData.RequireModel("stories260K");
        TextTokenizer tokenizer = TextTokenizer.Load(folder);
        string reference = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"));
        // Turn 1; turn 2 typed over two lines; /reset; turn 1 again; then end of input (no /exit).
        const string script = "Once upon a time\nLily had\\\na dog\n/reset\nOnce upon a time\n";
        // Raw completion mode: -n 16 leaves 12 new tokens after the 4 of "Once upon a time".
        var (exit, stdout, stderr) = RunChatWithInput(script, "--model", folder, "--temperature", "0", "--max-tokens", "16", "--verbose");
        Assert.That(exit, Is.EqualTo(0), stdout + stderr);

        string[] replies = System.Text.RegularExpressions.Regex.Matches(PlainText(stdout), "llama>(.*)\n").Select(m => m.Groups[1].Value).ToArray();
        Assert.That(replies, Has.Length.EqualTo(3), "three turns answered: the continued line is one turn, /reset is none");
        Assert.That(reference, Does.StartWith("Once upon a time" + replies[0]));
        Assert.That(replies[0], Is.Not.Empty);
        Assert.That(stdout, Does.Contain("...>"), "the continuation prompt");
        Assert.That(stdout, Does.Contain("context cleared"));

        // What the data owner sealed and sent each turn: the whole history, then after /reset the turn alone.
        int[] sealedTokens = System.Text.RegularExpressions.Regex.Matches(stderr, @"data owner sealed (\d+) prompt tokens")
            .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        int first = tokenizer.Encode("Once upon a time", addBos: true).Count;
        int second = tokenizer.Encode("Lily had\na dog", addBos: false).Count;
        int firstReply = tokenizer.Encode("Once upon a time" + replies[0], addBos: true).Count - first;
        Assert.That(firstReply, Is.EqualTo(12));
        Assert.That(sealedTokens, Is.EqualTo(new[] { first, first + firstReply + second, first }));
        Assert.That(replies[2], Is.EqualTo(replies[0]), "after /reset the same turn gets the same greedy reply");
        Assert.That(replies[1], Is.Not.EqualTo(replies[0]));
    }

    [Test]
    public void HelpListsTheCommandsAndAnUnknownCommandIsNotSentToTheModel()
    {
        string folder = TestData.RequireModel("stories260K");
        var (exit, stdout, stderr) = RunChatWithInput("/help\n/foo\nOnce upon a time\n/exit\n", "--model", folder, "--temperature", "0", "--max-tokens", "8", "--verbose");
        Assert.That(exit, Is.EqualTo(0), stdout + stderr);
        string text = Unwrap(stdout);
        Assert.That(text, Does.Contain("commands: /help lists them, /reset starts a new conversation, /exit quits"));
        Assert.That(text, Does.Contain("unknown command /foo;"));
        Assert.That(System.Text.RegularExpressions.Regex.Count(PlainText(stdout), "llama>"), Is.EqualTo(1), "only the story turn is answered");
        Assert.That(System.Text.RegularExpressions.Regex.Matches(stderr, @"data owner sealed (\d+) prompt tokens").Select(m => m.Groups[1].Value), Is.EqualTo(new[] { "5" }),
            "the data owner sealed one prompt: BOS + \"Once upon a time\", nothing of /help or /foo");
    }

    [Test]
    public void InteractiveTurnAsLongAsMaxTokensInCompletionModeIsSkippedWithAWarning()
    {
        string folder = TestData.RequireModel("stories260K");
        var (exit, stdout, _) = RunChatWithInput("Once upon a time\nLily\n", "--model", folder, "--temperature", "0", "--max-tokens", "4");
        Assert.That(exit, Is.EqualTo(0));
        Assert.That(Unwrap(stdout), Does.Contain("the prompt is 4 tokens and --max-tokens is 4"));
        // The refused turn left no trace: the next one starts the context (BOS + "Lily").
        Assert.That(System.Text.RegularExpressions.Regex.Matches(PlainText(stdout), @"prefill (\d+) tok").Select(m => m.Groups[1].Value), Is.EqualTo(new[] { "2" }));
    }

    [Test]
    public void VerboseLogsEachStepWithTimingsToTheGivenStderrAndIsSilentOtherwise()
    {
        string folder = TestData.RequireModel("stories260K");
        string[] args = ["--model", folder, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "8"];
        var (exit, stdout, stderr) = RunChat([.. args, "--verbose"]);
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(stdout.TrimEnd('\n'), Does.StartWith("Once upon a time"), "the log stays off stdout");
        string[] log = stderr.Split('\n').Where(l => l.StartsWith("info: LlamaChat: ", StringComparison.Ordinal) || l.StartsWith("dbug: LlamaChat: ", StringComparison.Ordinal)).ToArray();
        string[] expected =
        [
            @"^info: .*boot: NPU-CC-0001 powered on.* in \d+ ms",
            @"^dbug: .*model provider attestation check KeyBinding: PASS",
            @"^info: .*model provider attestation: 12 of 12 checks passed, policy satisfied",
            @"^info: .*load: package exported, \d+ bytes .* in \d+ ms",
            @"^info: .*key release: model key released .* in \d+ ms",
            @"^info: .*load: staged 47 weight regions in [\d.]+ ms, opened the package in [\d.]+ ms, unlocked \d+ bytes in [\d.]+ ms, attested the Graph task list in [\d.]+ ms",
            @"^dbug: .*data owner attestation check Freshness: PASS",
            @"^info: .*data owner: attested the NPU .* in \d+ ms",
            @"^info: .*generation: prefill 5 tok \(positions 0-4\) in [\d.]+ ms; decode 3 tok \(positions 5-7\) in [\d.]+ ms; 4 new of at most 4",
        ];
        foreach (string pattern in expected)
        {
            Assert.That(log.Any(l => System.Text.RegularExpressions.Regex.IsMatch(l, pattern)), Is.True, $"no log line matches {pattern}:\n{string.Join('\n', log)}");
        }

        (exit, _, stderr) = RunChat(args);
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(stderr, Does.Not.Contain("info: ").And.Not.Contain("dbug: ").And.Not.Contain("generation: prefill"));
    }

    /// <summary>
    /// A quantized GGUF runs in the precision it stores (--weights auto): a Q4_K file in Q4_K, CC on and
    /// off alike, the same tokens as --weights q4_k names it; --weights f32 widens it (and --kv-cache
    /// bf16, q8_0 or q4_0 narrows the cache); an unknown precision, a q8_0 or q4_0 cache for heads that are not whole
    /// 32-blocks, or --weights or --kv-cache with --server, is refused before anything boots.
    /// </summary>
    [Test]
    public void AGgufRunsInThePrecisionItStoresUnlessWeightsNamesAnother()
    {
        using var temp = new AscendCC.Runtime.Tests.Models.TempFolder();
        string folder = AscendCC.Runtime.Tests.Models.RandomLlamaCheckpoint.WriteFolder(temp.File("random"), seed: 4096, edgeBlocks: false);
        string q4k = temp.File("random-q4_k.gguf");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            AscendCC.Runtime.Models.Gguf.GgufWriter.WriteLlama(q4k, checkpoint, TextTokenizer.Load(folder), AscendCC.Runtime.Models.Gguf.GgufTensorType.Q4_K);
        }
        string[] args = ["--model", q4k, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "12"];
        var (exit, stdout, stderr) = RunChat(args);
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(Unwrap(stderr), Does.Contain("weights: Q4_K (as the checkpoint stores them"));
        Assert.That(stdout, Does.StartWith("Once upon a time"));
        var plain = RunChat([.. args, "--no-cc"]);
        Assert.That(plain.Exit, Is.EqualTo(0), plain.Stderr);
        Assert.That(plain.Stdout, Is.EqualTo(stdout), "CC off: the same program, the same tokens");
        var named = RunChat([.. args, "--weights", "q4_k"]);
        Assert.That(named.Exit, Is.EqualTo(0), named.Stderr);
        Assert.That(named.Stdout, Is.EqualTo(stdout));
        Assert.That(Unwrap(named.Stderr), Does.Contain("weights: Q4_K").And.Not.Contain("as the checkpoint stores them"));
        var wide = RunChat([.. args, "--weights", "f32", "--no-cc", "--kv-cache", "bf16"]);
        Assert.That(wide.Exit, Is.EqualTo(0), wide.Stderr);
        Assert.That(Unwrap(wide.Stderr), Does.Contain("weights: F32").And.Contain("KV cache BF16"));
        Assert.That(Unwrap(stderr), Does.Contain("KV cache F16"), "the default");
        var q8Cache = RunChat([.. args, "--kv-cache", "q8_0"]);
        Assert.That(q8Cache.Exit, Is.EqualTo(0), q8Cache.Stderr);
        Assert.That(Unwrap(q8Cache.Stderr), Does.Contain("KV cache Q8_0"));
        Assert.That(q8Cache.Stdout, Does.StartWith("Once upon a time"));
        var q4Cache = RunChat([.. args, "--kv-cache", "q4_0", "--no-cc"]);
        Assert.That(q4Cache.Exit, Is.EqualTo(0), q4Cache.Stderr);
        Assert.That(Unwrap(q4Cache.Stderr), Does.Contain("KV cache Q4_0"));
        Assert.That(q4Cache.Stdout, Does.StartWith("Once upon a time"));

        // A precision the model's widths cannot hold is refused before anything boots, with the ones that fit.
        var narrow = RunChat("--model", TestData.RequireModel("stories260K"), "--weights", "q4_k", "--prompt", "Once upon a time", "--temperature", "0");
        Assert.That(narrow.Exit, Is.EqualTo(1));
        Assert.That(Unwrap(narrow.Stderr), Does.Contain("--weights q4_k: stories260K's 'model.layers.0.self_attn.q_proj.weight' has rows of 64 weights, not whole blocks of 256; the precisions that hold every matrix: bf16, f16, f32 (pass one to --weights)"));
        Assert.That(narrow.Stderr, Does.Not.Contain("powers on the NPU"));
        var q8Narrow = RunChat("--model", TestData.RequireModel("stories260K"), "--kv-cache", "q8_0", "--prompt", "Once upon a time", "--temperature", "0");
        Assert.That(q8Narrow.Exit, Is.EqualTo(1));
        Assert.That(Unwrap(q8Narrow.Stderr), Does.Contain("--kv-cache q8_0 keeps each head's row in whole blocks of 32 values; stories260K's head dimension is 8 (pass --kv-cache f16)"));
        Assert.That(q8Narrow.Stderr, Does.Not.Contain("powers on the NPU"));
        var q4Narrow = RunChat("--model", TestData.RequireModel("stories260K"), "--kv-cache", "q4_0", "--prompt", "Once upon a time", "--temperature", "0");
        Assert.That(q4Narrow.Exit, Is.EqualTo(1));
        Assert.That(Unwrap(q4Narrow.Stderr), Does.Contain("--kv-cache q4_0 keeps each head's row in whole blocks of 32 values; stories260K's head dimension is 8 (pass --kv-cache f16)"));

        var unknown = RunChat([.. args, "--weights", "q5_k"]);
        Assert.That(unknown.Exit, Is.Not.EqualTo(0));
        Assert.That(unknown.Stderr, Does.Contain("q5_k"));
        var remote = RunChat("--model", folder, "--server", "http://localhost:1", "--manufacturer", folder, "--require-model", new string('a', 96), "--weights", "q8_0", "--prompt", "x");
        Assert.That(remote.Exit, Is.Not.EqualTo(0));
        Assert.That(remote.Stderr, Does.Contain("--weights cannot go with --server"));
        remote = RunChat("--model", folder, "--server", "http://localhost:1", "--manufacturer", folder, "--require-model", new string('a', 96), "--kv-cache", "f32", "--prompt", "x");
        Assert.That(remote.Exit, Is.Not.EqualTo(0));
        Assert.That(remote.Stderr, Does.Contain("--kv-cache cannot go with --server"));
    }

    /// <summary>
    /// A .gguf's own chat template (tokenizer.chat_template) formats the chat, with the file's BOS and EOS:
    /// stories260K written to GGUF with a template replies exactly as its folder does with the same
    /// template given by --chat-template.
    /// </summary>
    [Test]
    public void AGgufsOwnChatTemplateFormatsTheChat()
    {
        using var temp = new AscendCC.Runtime.Tests.Models.TempFolder();
        string stories = TestData.RequireModel("stories260K");
        const string text = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}";
        string jinja = temp.File("story.jinja"), gguf = temp.File("stories260K.gguf");
        File.WriteAllText(jinja, text);
        using (var checkpoint = ModelCheckpoint.Open(stories))
        {
            AscendCC.Runtime.Models.Gguf.GgufWriter.WriteLlama(gguf, checkpoint, TextTokenizer.Load(stories), chatTemplate: AscendCC.Runtime.Chat.ChatTemplate.FromText(text, "<s>", "</s>"));
        }
        var fromFile = RunChat("--model", gguf, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "24", "--verbose");
        // Exit 3: a story model does not end its turn within 24 tokens, so --max-tokens cuts the reply.
        Assert.That(fromFile.Exit, Is.EqualTo(3), fromFile.Stderr);
        Assert.That(Unwrap(fromFile.Stderr), Does.Contain("(tokenizer.chat_template): bos <s>, eos </s>").And.Contain("rendered the prompt (5 tokens): <s>Once upon a time"));
        var fromFolder = RunChat("--model", stories, "--chat-template", jinja, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "24", "--verbose");
        Assert.That(fromFolder.Exit, Is.EqualTo(3), fromFolder.Stderr);
        Assert.That(fromFile.Stdout, Is.EqualTo(fromFolder.Stdout));
        Assert.That(fromFile.Stdout.Trim(), Is.Not.Empty);
        string reference = File.ReadAllText(Path.Combine(stories, "reference", "once_upon_a_time.text.txt"));
        Assert.That(reference, Does.StartWith("Once upon a time" + fromFile.Stdout.TrimEnd('\n')), "the template renders BOS and the text, as raw completion feeds them");
    }

    [TestCase("Once upon a time", "once_upon_a_time")]
    [TestCase("Lily had a", "lily_had_a")]
    public void RawCompletionOneShotPrintsExactlyTheLlama2cReference(string prompt, string reference)
    {
        string folder = TestData.RequireModel("stories260K");
        // llama2.c's "-n 64" printed the prompt and its continuation, 64 tokens after BOS in all; the
        // same command line here must print the same bytes (plus at most a final newline).
        string expected = File.ReadAllText(Path.Combine(folder, "reference", reference + ".text.txt"));
        var (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", prompt, "--temperature", "0", "--max-tokens", "64");
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(stdout, Is.EqualTo(expected).Or.EqualTo(expected + "\n"));
        // The evidence went to stderr: each party's step, every verifier check, the measurements.
        Assert.That(stderr, Does.Contain("PASS").And.Contain("KeyBinding").And.Contain("manifest digest").And.Contain("graph measurement"));
        Assert.That(stderr, Does.Not.Contain("FAIL"));
    }

    /// <summary>
    /// The second family through the same sample: gptneo-shakespeare (GPT-Neo, byte-level tokenizer, no
    /// BOS) prints its reference text, CC on and off, graph and eager. Its reference is the prompt's
    /// bytes and 64 greedy tokens, so -n is the prompt's length plus 64.
    /// </summary>
    [TestCase("ROMEO:", "romeo", "graph", false)]
    [TestCase("First Citizen:", "first_citizen", "eager", false)]
    [TestCase("ROMEO:", "romeo", "eager", true)]
    public void GptNeoOneShotPrintsExactlyItsReference(string prompt, string reference, string mode, bool noCc)
    {
        string folder = TestData.RequireModel("gptneo-shakespeare");
        string expected = File.ReadAllText(Path.Combine(folder, "reference", reference + ".text.txt"));
        int n = Encoding.UTF8.GetByteCount(prompt) + 64;
        string[] args = ["--model", folder, "--prompt", prompt, "--temperature", "0", "--max-tokens", n.ToString(System.Globalization.CultureInfo.InvariantCulture), "--mode", mode, "--verbose"];
        var (exit, stdout, stderr) = RunChat(noCc ? [.. args, "--no-cc"] : args);
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(stdout, Is.EqualTo(expected).Or.EqualTo(expected + "\n"));
        Assert.That(Unwrap(stderr), Does.Contain("GPT-Neo, 4 layers"));
        if (!noCc)
        {
            Assert.That(stderr, Does.Contain("PASS").And.Contain("graph measurement").And.Not.Contain("FAIL"));
            Assert.That(stderr, Does.Match($@"data owner sealed {Encoding.UTF8.GetByteCount(prompt)} prompt tokens"), "the prompt's bytes, no BOS");
        }
    }

    [Test]
    public void AStopStringSpanningTokensEndsTheReplyBeforeIt()
    {
        string folder = TestData.RequireModel("stories260K");
        // The reference continues "..., there was a little girl named Lily. She loved ...": "girl named"
        // is several tokens; the earlier of the two stop strings wins.
        var (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "64",
            "--stop", "She loved", "--stop", "girl named", "--verbose");
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(stdout, Is.EqualTo("Once upon a time, there was a little ").Or.EqualTo("Once upon a time, there was a little \n"));
        Assert.That(stderr, Does.Contain("a --stop string ended the reply"));
    }

    [Test]
    public void RawCompletionPromptOfMaxTokensOrMoreIsRefusedNamingBothNumbers()
    {
        string folder = TestData.RequireModel("stories260K");
        // "Once upon a time" is 4 tokens after BOS: with -n 4 llama2.c would print the prompt and generate nothing.
        var (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "4");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(Unwrap(stderr), Does.Contain("the prompt is 4 tokens and --max-tokens is 4").And.Contain("Pass --max-tokens greater than 4"));

        (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "5");
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(stdout, Is.EqualTo("Once upon a time,\n"), "one token after the 4 of the prompt");
    }

    [Test]
    public void ChatModePrintsOnlyTheReplyAndMaxTokensCountsTheReplysTokens()
    {
        string folder = TestData.RequireModel("stories260K");
        // stories260K with a chat template: chat mode without training the demo model.
        string chat = Directory.CreateTempSubdirectory("llamachat-format-").FullName;
        try
        {
            foreach (string file in new[] { "config.json", "model.safetensors", "tokenizer.model" })
            {
                File.Copy(Path.Combine(folder, file), Path.Combine(chat, file));
            }
            File.WriteAllText(Path.Combine(chat, "tokenizer_config.json"), """{"bos_token": "<s>", "eos_token": "</s>", "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}""");
            TextTokenizer tokenizer = TextTokenizer.Load(folder);
            string full = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"));

            // A template that writes the turn's text alone feeds the same tokens as raw mode, so the reply is the reference's
            // continuation; -n 4 is 4 reply tokens here, where raw mode refuses it (see the test above).
            // The reply is cut by --max-tokens: it says so on stderr and exits with the truncation code.
            var (exit, stdout, stderr) = RunChat("--model", chat, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "4");
            Assert.That(exit, Is.EqualTo(ChatApp.ExitTruncated), stderr);
            Assert.That(Unwrap(stderr), Does.Contain("the reply was cut at --max-tokens 4"));
            string reply = stdout.TrimEnd('\n');
            Assert.That(full, Does.StartWith("Once upon a time" + reply));
            Assert.That(tokenizer.Encode("Once upon a time" + reply, addBos: true), Has.Count.EqualTo(5 + 4));

            // A reply whose first token starts with a space ("Once upon a time," → " there ...") is printed
            // without it in chat mode, where stdout holds the reply alone.
            (exit, stdout, stderr) = RunChat("--model", chat, "--prompt", "Once upon a time,", "--temperature", "0", "--max-tokens", "3");
            Assert.That(exit, Is.EqualTo(ChatApp.ExitTruncated), stderr);
            Assert.That(stdout, Does.StartWith("there was"));
            Assert.That(full, Does.StartWith("Once upon a time, " + stdout.TrimEnd('\n')));

            // --raw switches the same folder to completion mode: prompt and continuation, 4 + 4 tokens.
            (exit, stdout, stderr) = RunChat("--model", chat, "--raw", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "8");
            Assert.That(exit, Is.EqualTo(0), stderr);
            Assert.That(stdout.TrimEnd('\n'), Is.EqualTo("Once upon a time" + reply));
        }
        finally
        {
            Directory.Delete(chat, recursive: true);
        }
    }

    /// <summary>A copy of stories260K whose tokenizer_config.json carries <paramref name="template"/>; null for none.</summary>
    private static string Stories260KWithTemplate(string? template)
    {
        string folder = TestData.RequireModel("stories260K");
        string chat = Directory.CreateTempSubdirectory("llamachat-template-").FullName;
        foreach (string file in new[] { "config.json", "model.safetensors", "tokenizer.model" })
        {
            File.Copy(Path.Combine(folder, file), Path.Combine(chat, file));
        }
        if (template is not null)
        {
            File.WriteAllText(Path.Combine(chat, "tokenizer_config.json"), System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string>
            {
                ["bos_token"] = "<s>",
                ["eos_token"] = "</s>",
                ["chat_template"] = template,
            }));
        }
        return chat;
    }

    private const string RoleTemplate = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

    [Test]
    public void AMalformedChatTemplateIsOneErrorLineNamingTheFileAndPositionBeforeAnythingBoots()
    {
        string chat = Stories260KWithTemplate(null);
        try
        {
            string bad = Path.Combine(chat, "bad.jinja");
            File.WriteAllText(bad, "{% for m in messages %}\n  {{ m.content | shout }}\n{% endfor %}");
            var (exit, stdout, stderr) = RunChat("--model", chat, "--chat-template", bad, "--prompt", "Hello");
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stdout, Is.Empty);
            string[] lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.That(lines, Has.Length.EqualTo(1), stderr);
            Assert.That(lines[0], Is.EqualTo($"error: {bad}: line 2, column 18: unknown filter 'shout'"));

            // A template the conversation makes raise_exception is refused with the template's words, also before booting.
            File.WriteAllText(bad, "{{ raise_exception('System role not supported') if messages[0].role == 'system' }}");
            (exit, _, stderr) = RunChat("--model", chat, "--chat-template", bad, "--system", "s", "--prompt", "Hello");
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1], Is.EqualTo($"error: {bad}: line 1, column 4: the template refused the conversation: System role not supported"));
            Assert.That(stderr, Does.Not.Contain("ready in"), "refused before the NPU boots");

            // In an interactive chat the refused turn is a warning and leaves no trace; the chat goes on.
            (exit, stdout, _) = RunChatWithInput("Hello\n/exit\n", "--model", chat, "--chat-template", bad, "--system", "s", "-t", "0", "-n", "2");
            Assert.That(exit, Is.EqualTo(0));
            Assert.That(Unwrap(stdout), Does.Contain("the template refused the conversation: System role not supported"));
            Assert.That(PlainText(stdout), Does.Not.Contain("llama>"));

            (exit, _, stderr) = RunChat("--model", chat, "--system", "s", "--prompt", "Hello");
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(Unwrap(stderr), Does.Contain("--system needs a chat template"));
        }
        finally
        {
            Directory.Delete(chat, recursive: true);
        }
    }

    [Test]
    public void SystemReachesThePromptThroughTheModelsTemplateAndChatTemplateOverridesIt()
    {
        string chat = Stories260KWithTemplate(RoleTemplate);
        try
        {
            TextTokenizer tokenizer = TextTokenizer.Load(chat);
            var (exit, stdout, stderr) = RunChat("--model", chat, "--system", "Be brief.", "--prompt", "Hello", "-t", "0", "-n", "4", "--verbose");
            Assert.That(exit, Is.EqualTo(ChatApp.ExitTruncated), stderr); // a chat reply cut by -n
            const string rendered = "system: Be brief.\nuser: Hello\nassistant:";
            int tokens = tokenizer.Encode(rendered, addBos: true).Count;
            Assert.That(stderr, Does.Contain($"chat template rendered the prompt ({tokens} tokens): {rendered.Replace("\n", "\\n", StringComparison.Ordinal)}"));
            Assert.That(stderr, Does.Contain($"data owner sealed {tokens} prompt tokens"));
            Assert.That(stdout, Is.Not.Empty);

            // --chat-template FILE (.jinja) replaces the folder's template; its bos/eos still come from the folder.
            string jinja = Path.Combine(chat, "other.jinja");
            File.WriteAllText(jinja, "{{ bos_token }}[{{ messages[-1].content }}]");
            (exit, _, stderr) = RunChat("--model", chat, "--chat-template", jinja, "--prompt", "Hello", "-t", "0", "-n", "2", "--verbose");
            Assert.That(exit, Is.EqualTo(ChatApp.ExitTruncated), stderr); // a chat reply cut by -n
            Assert.That(stderr, Does.Contain("chat template rendered the prompt (").And.Contain("tokens): <s>[Hello]"));
            Assert.That(stderr, Does.Contain($"data owner sealed {tokenizer.Encode("[Hello]", addBos: true).Count} prompt tokens"), "the template's <s> is the one BOS");
        }
        finally
        {
            Directory.Delete(chat, recursive: true);
        }
    }

    /// <summary>
    /// --chat-template-kwargs (llama.cpp server's name): its variables reach the template (Qwen3's
    /// enable_thinking is one); JSON that is not an object of scalars, or a model without a template, is
    /// one error line before anything boots.
    /// </summary>
    [Test]
    public void ChatTemplateKwargsReachTheTemplateAndBadOnesAreRefusedBeforeBooting()
    {
        string chat = Stories260KWithTemplate("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% if enable_thinking is defined and enable_thinking is false %} (no thinking){% endif %}{% endif %}");
        try
        {
            var (exit, _, stderr) = RunChat("--model", chat, "--chat-template-kwargs", "{\"enable_thinking\": false}", "--prompt", "Hello", "-t", "0", "-n", "2", "--verbose");
            Assert.That(exit, Is.EqualTo(ChatApp.ExitTruncated), stderr); // a chat reply cut by -n
            Assert.That(stderr, Does.Contain("tokens): user: Hello\\nassistant: (no thinking)"));
            (exit, _, stderr) = RunChat("--model", chat, "--prompt", "Hello", "-t", "0", "-n", "2", "--verbose");
            Assert.That(exit, Is.EqualTo(ChatApp.ExitTruncated), stderr);
            Assert.That(stderr, Does.Contain("tokens): user: Hello\\nassistant:").And.Not.Contain("(no thinking)"), "undefined without the option");

            foreach ((string kwargs, string named) in new[] { ("{\"enable_thinking\": [false]}", "'enable_thinking' is a JSON array"), ("[1]", "not a JSON array"), ("{oops", "--chat-template-kwargs '{oops'") })
            {
                (exit, string stdout, stderr) = RunChat("--model", chat, "--chat-template-kwargs", kwargs, "--prompt", "Hello");
                Assert.That(exit, Is.EqualTo(1), kwargs);
                Assert.That(stdout, Is.Empty, kwargs);
                Assert.That(Unwrap(stderr), Does.Contain(named), kwargs);
                Assert.That(stderr, Does.Not.Contain("ready in"), "refused before the NPU boots");
            }
            (exit, _, stderr) = RunChat("--model", chat, "--raw", "--chat-template-kwargs", "{\"enable_thinking\": false}", "--prompt", "Hello");
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(Unwrap(stderr), Does.Contain("--chat-template-kwargs needs a chat template"));
        }
        finally
        {
            Directory.Delete(chat, recursive: true);
        }
    }

    /// <summary>
    /// --hbm sizes the simulated NPU's HBM; a model whose program does not fit is refused before anything
    /// boots, saying how much it needs and what to pass; a size that does not parse is named.
    /// </summary>
    [Test]
    public void HbmSizesTheNpuAndAModelThatDoesNotFitIsRefusedBeforeBooting()
    {
        string model = TestData.RequireModel("stories260K");
        var (exit, stdout, stderr) = RunChat("--model", model, "--prompt", "Once upon a time", "-t", "0", "-n", "8", "--hbm", "64MiB", "--verbose");
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(stderr, Does.Contain("powered on (64 MiB of HBM)"));
        Assert.That(stdout, Is.Not.Empty);

        (exit, stdout, stderr) = RunChat("--model", model, "--prompt", "Once upon a time", "--hbm", "1MiB");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(Unwrap(stderr), Does.Match(@"stories260K in F32 with a 512-token context needs at least [\d.]+MiB of HBM and the simulated NPU has 1MiB: pass --hbm 64MiB"));
        Assert.That(stderr, Does.Not.Contain("ready in"), "refused before the NPU boots");

        foreach (string bad in new[] { "2TB", "0.5MiB", "many" })
        {
            (exit, _, stderr) = RunChat("--model", model, "--prompt", "Once", "--hbm", bad);
            Assert.That(exit, Is.EqualTo(1), bad);
            Assert.That(Unwrap(stderr), Does.Contain($"--hbm {bad}").Or.Contain($"--hbm '{bad}'"), bad);
        }
    }

    [Test]
    public void ATemplatedChatThatOutgrowsTheContextDropsOldTurnsAndKeepsTheSystemMessage()
    {
        string chat = Stories260KWithTemplate(RoleTemplate);
        try
        {
            const string script = "Once upon a time\nLily had a dog\nThe sun was hot\nTom went home\n";
            var (exit, stdout, stderr) = RunChatWithInput(script, "--model", chat, "--system", "Tell stories.", "-t", "0", "-n", "8", "--ctx-size", "100", "--verbose");
            Assert.That(exit, Is.EqualTo(0), stdout + stderr);
            Assert.That(System.Text.RegularExpressions.Regex.Count(PlainText(stdout), "llama>"), Is.EqualTo(4), "every turn is answered");
            Assert.That(stderr, Does.Match(@"the context is full: dropped the oldest \d+ turns? \(\d+ tokens\) to fit 100"));
            string[] prompts = System.Text.RegularExpressions.Regex.Matches(stderr, @"chat template rendered the prompt \((\d+) tokens\): (.*)").Select(m => m.Groups[2].Value).ToArray();
            Assert.That(prompts, Has.Length.EqualTo(4));
            Assert.That(prompts, Has.All.StartWith("system: Tell stories.\\nuser: "), "the system message survives every drop");
            Assert.That(prompts[^1], Does.Not.Contain("Once upon a time"), "the oldest turn was dropped");
            Assert.That(prompts[^1], Does.EndWith("user: Tom went home\\nassistant:"));
            Assert.That(prompts.Any(p => System.Text.RegularExpressions.Regex.IsMatch(p, @"\\nassistant: \S[^\\]*\\nuser: ")), "a reply went back into the history as the assistant's message");
        }
        finally
        {
            Directory.Delete(chat, recursive: true);
        }
    }

    [Test]
    public void TranscriptHoldsNoPromptOrReplyTokensOrText()
    {
        string folder = TestData.RequireModel("stories260K");
        const string prompt = "Once upon a time";
        string reply = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"))[prompt.Length..];
        // The ids from llama2.c's reference, not from our tokenizer, so a tokenizer bug cannot hide a leak.
        string[] lines = File.ReadAllLines(Path.Combine(folder, "reference", "once_upon_a_time.tokens.txt"));
        int[] Ids(string key) => lines.First(l => l.StartsWith(key + " ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Skip(1).Select(t => int.Parse(t, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        int[] ids = [.. Ids("prompt_tokens"), .. Ids("generated_tokens")];
        Assert.That(ids, Has.Length.EqualTo(65));

        byte[] confidential = RecordTranscript("--model", folder, "--prompt", prompt, "--temperature", "0", "--max-tokens", "64");
        Assert.That(confidential, Has.Length.GreaterThan(100_000), "the transcript records the package, task buffers and relayed records");
        Assert.That(FindLeak(confidential, ids, [prompt, reply]), Is.Null);

        // Control: with CC off the host writes the prompt's ids into device memory itself, and the same
        // search must find them; otherwise the search above proves nothing.
        byte[] plain = RecordTranscript("--model", folder, "--prompt", prompt, "--temperature", "0", "--max-tokens", "64", "--no-cc");
        Assert.That(FindLeak(plain, ids, [prompt, reply]), Does.StartWith("token ids 1 403 407"));
    }

    /// <summary>Runs the CLI with --transcript and returns the transcript's bytes.</summary>
    private static byte[] RecordTranscript(params string[] args)
    {
        string transcript = Path.Combine(Path.GetTempPath(), $"llamachat-transcript-{Guid.NewGuid():N}.bin");
        try
        {
            var (exit, _, stderr) = RunChat([.. args, "--transcript", transcript]);
            Assert.That(exit, Is.EqualTo(0), stderr);
            return File.ReadAllBytes(transcript);
        }
        finally
        {
            File.Delete(transcript);
        }
    }

    /// <summary>
    /// The first plaintext found in <paramref name="bytes"/>, or null: any 3 consecutive ids of
    /// <paramref name="ids"/> as little-endian int32, or any 12-character piece of <paramref name="texts"/>
    /// (pieces overlap, so any leaked run of 24 characters contains one) as UTF-8 or UTF-16.
    /// </summary>
    private static string? FindLeak(byte[] bytes, int[] ids, string[] texts)
    {
        for (int i = 0; i + 3 <= ids.Length; i++)
        {
            byte[] needle = new byte[12];
            for (int j = 0; j < 3; j++)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(needle.AsSpan(4 * j), ids[i + j]);
            }
            if (bytes.AsSpan().IndexOf(needle) is var at and >= 0)
            {
                return $"token ids {ids[i]} {ids[i + 1]} {ids[i + 2]} at byte {at}";
            }
        }
        foreach (string text in texts)
        {
            for (int i = 0; i < text.Length; i += 6)
            {
                string piece = text.Substring(Math.Min(i, Math.Max(0, text.Length - 12)), Math.Min(12, text.Length));
                foreach (Encoding encoding in new[] { Encoding.UTF8, Encoding.Unicode })
                {
                    if (bytes.AsSpan().IndexOf(encoding.GetBytes(piece)) is var at and >= 0)
                    {
                        return $"text \"{piece}\" ({encoding.WebName}) at byte {at}";
                    }
                }
            }
        }
        return null;
    }

    /// <summary>The text without ANSI styling and with Spectre's line wrapping undone (every whitespace run as one space).</summary>
    private static string Unwrap(string text) => System.Text.RegularExpressions.Regex.Replace(PlainText(text), @"\s+", " ");

    /// <summary>The text without ANSI styling (Spectre colours its output when TERM says the terminal can).</summary>
    private static string PlainText(string text) => System.Text.RegularExpressions.Regex.Replace(text, @"\x1b\[[0-9;]*[A-Za-z]", "");

    [Test]
    public void MissingModelPathIsAClearErrorWithExitCode1()
    {
        var (exit, stdout, stderr) = RunChat("--model", "/nonexistent/model-folder", "--prompt", "hi");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr, Does.Contain("model not found").And.Contain("/nonexistent/model-folder"));
    }

    [Test]
    public void UnknownArchitectureIsAClearErrorWithExitCode1()
    {
        string folder = Directory.CreateTempSubdirectory("llamachat-gpt2-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(folder, "config.json"), """{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","n_embd":64,"n_layer":2,"n_head":2,"vocab_size":100}""");
            var (exit, _, stderr) = RunChat("--model", folder, "--prompt", "hi");
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("GPT2LMHeadModel"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void PromptLongerThanTheContextIsRefused()
    {
        string folder = TestData.RequireModel("stories260K");
        string prompt = string.Join(' ', Enumerable.Repeat("Lily had a big red ball.", 80));
        var (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", prompt, "--max-tokens", "4");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr, Does.Contain("the context holds"));
    }

    [Test]
    public void LlamaCBinWithoutTokenizerInItsFolderAsksForTokenizer()
    {
        string folder = TestData.RequireModel("stories260K");
        string lonely = Directory.CreateTempSubdirectory("llamachat-bin-").FullName;
        try
        {
            File.Copy(Path.Combine(folder, "stories260K.bin"), Path.Combine(lonely, "stories260K.bin"));
            var (exit, _, stderr) = RunChat("--model", Path.Combine(lonely, "stories260K.bin"), "--prompt", "hi");
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("--tokenizer"));
        }
        finally
        {
            Directory.Delete(lonely, recursive: true);
        }
    }

    [Test]
    public void NoCcEagerOnTheLlama2cBinGivesTheSameGreedyReply()
    {
        string folder = TestData.RequireModel("stories260K");
        var (exit, stdout, stderr) = RunChat("--model", Path.Combine(folder, "stories260K.bin"), "--tokenizer", Path.Combine(folder, "tok512.bin"),
            "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20", "--no-cc", "--mode", "eager");
        Assert.That(exit, Is.EqualTo(0), stderr);
        // Raw completion: the prompt and 16 new tokens, the start of llama2.c's text.
        string reference = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"));
        Assert.That(reference, Does.StartWith(stdout.TrimEnd('\n')));
        Assert.That(stdout.Trim(), Has.Length.GreaterThan("Once upon a time".Length + 40));
    }

    [Test]
    public void RedirectedOutputIsNeverWrapped()
    {
        string folder = TestData.RequireModel("stories260K");
        var (exit, _, stderr) = RunChat("--model", folder, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "8");
        Assert.That(exit, Is.EqualTo(0), stderr);
        // Not unwrapped first: a redirected stream gets whole lines, so a hash can be grepped.
        Assert.That(stderr, Does.Match(@"graph measurement \(device accepted\): [0-9a-f]{96}\r?\n"));
        Assert.That(stderr.Split('\n').Max(l => l.Length), Is.GreaterThan(120), "evidence lines longer than a terminal stay whole");
        Assert.That(stderr, Does.Not.Contain("\u001b["), "no colour escape codes in a file or a pipe");

        (exit, string list, stderr) = RunChat("--attack", "list");
        Assert.That(exit, Is.EqualTo(0), stderr);
        string[] lines = list.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // One row per attack, plus the table's top border, header, separator and bottom border.
        Assert.That(lines, Has.Length.EqualTo(AscendCC.Attacks.AttackCatalog.All.Count + 4), list);
    }

    [Test]
    public void AnEmptyPromptGeneratesFromBosOrIsRefusedBeforeAnyAttestation()
    {
        string folder = TestData.RequireModel("stories260K");
        var (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", "", "--temperature", "0", "--max-tokens", "8");
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(stdout.Trim(), Is.Not.Empty, "llama2.c generates from BOS alone");

        string neo = TestData.RequireModel("gptneo-shakespeare");
        (exit, stdout, stderr) = RunChat("--model", neo, "--prompt", "", "--temperature", "0", "--max-tokens", "8");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr, Does.Contain("the prompt is empty and this model's tokenizer has no beginning-of-sequence token"));
        Assert.That(stderr, Does.Not.Contain("attests").And.Not.Contain("policy satisfied"), "refused before the NPU is booted or attested");
    }

    [Test]
    public void QuietShowsOneLinePerAttestationInsteadOfEveryStep()
    {
        string folder = TestData.RequireModel("stories260K");
        string expected = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"));
        var (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "64", "--quiet");
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(stdout, Is.EqualTo(expected).Or.EqualTo(expected + "\n"), "the reply is unchanged");
        string[] attested = stderr.Split('\n').Where(l => l.Contains("NPU attested, all 12 checks passed", StringComparison.Ordinal)).ToArray();
        Assert.That(attested, Has.Length.EqualTo(2), "the model provider's and the data owner's attestation, one line each:\n" + stderr);
        Assert.That(stderr, Does.Not.Contain("PASS").And.Not.Contain("manifest digest").And.Not.Contain("model provider >"));
        Assert.That(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.LessThan(10), stderr);
        // The end-of-reply statistics llama.cpp users expect: load time, time to first token, rates, tokens.
        Assert.That(stderr, Does.Match(@"ready in \d+\.\d\d s \(boot, attestation, key release, package unlock and program load\); context 512 tokens"));
        Assert.That(stderr, Does.Match(@"60 tokens · first after \d+\.\d\d s · prefill 5 tok in \d+\.\d\d s \([\d.]+ tok/s\) · decode 59 tok in"));
    }

    [Test]
    public void HelpShowsExamples()
    {
        var (exit, stdout, _) = RunChat("--help");
        Assert.That(exit, Is.EqualTo(0));
        Assert.That(stdout, Does.Contain("Examples:").And.Contain("-p \"Once upon a time\" -t 0 -n 64").And.Contain("--attack list"));
        Assert.That(stdout, Does.Contain("--stop").And.Contain("--quiet"), "every option is listed");
    }

    [Test]
    public void AChatThatOutgrowsTheContextDropsItsOldestTurnsAndSaysSo()
    {
        string folder = TestData.RequireModel("stories260K");
        // Raw completion, -n 16: each turn is BOS-less text plus its continuation; a context of 48 holds
        // about two turns, and keeps 12 (a quarter) for the reply.
        const string script = "Once upon a time\nLily had a dog\nThe sun was hot\nTom went home\n";
        var (exit, stdout, stderr) = RunChatWithInput(script, "--model", folder, "--temperature", "0", "--max-tokens", "16", "--ctx-size", "48", "--verbose");
        Assert.That(exit, Is.EqualTo(0), stdout + stderr);
        Assert.That(System.Text.RegularExpressions.Regex.Count(PlainText(stdout), "llama>"), Is.EqualTo(4), "every turn is answered");
        Assert.That(stderr, Does.Match(@"the context is full: dropped the oldest \d+ turns? \(\d+ tokens\) to fit 48"));
        int[] sealedTokens = System.Text.RegularExpressions.Regex.Matches(stderr, @"data owner sealed (\d+) prompt tokens")
            .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.That(sealedTokens, Has.Length.EqualTo(4));
        Assert.That(sealedTokens, Has.All.LessThanOrEqualTo(48 - 12), "the history sent never leaves less than a quarter of the context for the reply");

        // A one-shot reply that runs into the end of a small context says so, and exits with the truncation code.
        (exit, _, stderr) = RunChat("--model", folder, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "64", "--ctx-size", "12");
        Assert.That(exit, Is.EqualTo(ChatApp.ExitTruncated), stderr);
        Assert.That(stderr, Does.Contain("the reply was cut at the end of the context (12 tokens)"));

        (exit, _, stderr) = RunChat("--model", folder, "--prompt", "Once upon a time", "--ctx-size", "4096");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("--ctx-size 4096 is more than the 512 positions"));
    }

    [Test]
    public void ARepeatPenaltyOnTheDeviceChangesTheGreedyStory()
    {
        string folder = TestData.RequireModel("stories260K");
        string reference = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"));
        var (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "64");
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(reference, Does.StartWith(stdout.TrimEnd('\n')), "without penalties: llama2.c's greedy story");
        (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "64", "--repeat-penalty", "1.5", "--repeat-last-n", "-1");
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.StartWith("Once upon a time"));
        Assert.That(reference, Does.Not.StartWith(stdout.TrimEnd('\n')), "the penalty, sealed in the prompt and applied by the device, changes it");
    }

    [Test]
    public void CtrlCStopsTheReplyAndTheChatGoesOnAtThePrompt()
    {
        string folder = TestData.RequireModel("stories260K");
        var interrupt = new LlamaChat.Ui.ReplyInterrupt();
        // Presses Ctrl-C once the first reply has printed three pieces, as a user would mid-reply.
        var stdout = new PressingWriter(interrupt, afterPieces: 3);
        var stderr = new StringWriter();
        int exit = ChatApp.Run(["--model", folder, "--temperature", "0", "--max-tokens", "200", "--ctx-size", "256"], stdout, stderr,
            new StringReader("Once upon a time\nLily had a dog\n"), interrupt);
        Assert.That(exit, Is.EqualTo(0), stdout + stderr.ToString());
        string[] replies = System.Text.RegularExpressions.Regex.Matches(PlainText(stdout.ToString()), "llama>(.*)\n").Select(m => m.Groups[1].Value).ToArray();
        Assert.That(replies, Has.Length.EqualTo(2), "the chat went on to the second turn");
        Assert.That(Unwrap(stderr.ToString()), Does.Match(@"stopped by Ctrl-C after \d+ tokens; Ctrl-C at the prompt exits"));
        Assert.That(replies[0].Length, Is.LessThan(replies[1].Length), "the first reply stopped early; the second ran to its budget");

        // One-shot: the reply printed so far stays, and the exit code says it was interrupted.
        interrupt = new LlamaChat.Ui.ReplyInterrupt();
        stdout = new PressingWriter(interrupt, afterPieces: 8, marker: null);
        exit = ChatApp.Run(["--model", folder, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "200"], stdout, new StringWriter(), new StringReader(""), interrupt);
        Assert.That(exit, Is.EqualTo(ChatApp.ExitInterrupted));
        Assert.That(stdout.ToString(), Does.StartWith("Once upon a time"));
    }

    [Test]
    [NonParallelizable]
    public void ARunThatFailsAfterItsTranscriptOpenedLeavesNoTranscript()
    {
        string folder = TestData.RequireModel("stories260K");
        string path = Path.Combine(Path.GetTempPath(), "llamachat-transcript-" + Guid.NewGuid().ToString("N") + ".bin");
        Func<string, LlamaChat.Hosting.ITranscriptWriter> open = LlamaChat.Hosting.TranscriptFiles.Open;
        // The disk fills after the first few records: the run fails mid-way, as any later failure would.
        LlamaChat.Hosting.TranscriptFiles.Open = p => new FailingTranscript(open(p), after: 5);
        try
        {
            var (exit, _, stderr) = RunChat("--model", folder, "--prompt", "Once upon a time", "-t", "0", "-n", "8", "--transcript", path);
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("No space left on device"));
            Assert.That(File.Exists(path), Is.False, "a failed run leaves no transcript");
        }
        finally
        {
            LlamaChat.Hosting.TranscriptFiles.Open = open;
            File.Delete(path);
        }
    }

    private sealed class FailingTranscript(LlamaChat.Hosting.ITranscriptWriter inner, int after) : LlamaChat.Hosting.ITranscriptWriter
    {
        private int _records;

        public long Records => inner.Records;

        public long Bytes => inner.Bytes;

        public void Record(AscendCC.Runtime.Driver.TranscriptChannel channel, ReadOnlySpan<byte> bytes)
        {
            if (++_records > after)
            {
                throw new IOException("No space left on device");
            }
            inner.Record(channel, bytes);
        }

        public void RecordCompletion(in AscendCC.Device.CompletionEntry entry) => inner.RecordCompletion(entry);

        public void Dispose() => inner.Dispose();
    }

    [Test]
    public void CtrlCAtThePromptOrTwiceInOneReplyExits()
    {
        var interrupt = new LlamaChat.Ui.ReplyInterrupt();
        Assert.That(interrupt.Press(), Is.False, "at the prompt: the process ends");
        interrupt.BeginReply();
        Assert.That(interrupt.Press(), Is.True, "the first press stops the reply");
        Assert.That(interrupt.Requested, Is.True);
        Assert.That(interrupt.Press(), Is.False, "a second press in the same reply ends the process");
        interrupt.EndReply();
        interrupt.BeginReply();
        Assert.That(interrupt.Requested, Is.False, "each reply starts uninterrupted");
        Assert.That(interrupt.Press(), Is.True);
    }

    [Test]
    public void ProgressOffATerminalIsPlainLinesNotASilentBar()
    {
        var output = new StringWriter();
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings { Out = new Spectre.Console.AnsiConsoleOutput(output), Ansi = Spectre.Console.AnsiSupport.No });
        var ui = new LlamaChat.Ui.ChatUi(console, console, TextWriter.Null, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance) { Terminal = false, PlainProgressInterval = TimeSpan.Zero };
        int result = ui.Progress("training", 100, report =>
        {
            for (int step = 1; step <= 100; step++)
            {
                report(step, $"step {step}/100");
            }
            return 42;
        });
        Assert.That(result, Is.EqualTo(42));
        string[] lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines[0], Is.EqualTo("training: started"));
        Assert.That(lines[^1], Does.Match(@"^training: done in \d+\.\d s$"));
        Assert.That(lines[1..^1], Has.Length.EqualTo(10).And.All.Match(@"^training: step \d+/100 \(\d+%, \d+ s\)$"), "one line per tenth of the work");
        Assert.That(lines[1], Does.StartWith("training: step 10/100 (10%"));
        Assert.That(output.ToString().Contains('\u001b', StringComparison.Ordinal), Is.False, "no escape codes");
        Assert.That(output.ToString(), Does.Not.Contain("━"), "no bar");
    }

    /// <summary>
    /// A stdout that presses Ctrl-C once <c>afterPieces</c> pieces were written after the first
    /// <c>marker</c> (the chat's reply prompt), or from the start when there is none (one-shot).
    /// </summary>
    private sealed class PressingWriter(LlamaChat.Ui.ReplyInterrupt interrupt, int afterPieces, string? marker = "llama>") : StringWriter
    {
        private int _pieces = marker is null ? 0 : -1;

        public override void Write(string? value)
        {
            base.Write(value);
            if (marker is not null && value is not null && value.Contains(marker, StringComparison.Ordinal) && _pieces < 0)
            {
                _pieces = 0;
            }
            else if (_pieces >= 0 && !string.IsNullOrEmpty(value) && ++_pieces == afterPieces)
            {
                interrupt.Press();
            }
        }
    }

    [Test]
    public void UnknownAttackNameIsAnErrorPointingToTheList()
    {
        var (exit, stdout, stderr) = RunChat("--attack", "NoSuchAttack");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(Unwrap(stderr), Does.Contain("no attack named 'NoSuchAttack'; run --attack list"));
        Assert.That(stdout, Is.Empty, "errors go to standard error");
    }

    [Test]
    public void EveryListedAttackRunsBlockedThroughTheCliNamingItsRule()
    {
        var (exit, stdout, stderr) = RunChat("--attack", "list");
        Assert.That(exit, Is.EqualTo(0), stderr);
        // The first column of the table; long descriptions wrap onto rows whose first cell is empty.
        string[] listed = stdout.Split('\n')
            .Select(l => l.Split('│', '|'))
            .Where(cells => cells.Length >= 4 && cells[1].Trim() is { Length: > 0 } name && name != "name")
            .Select(cells => cells[1].Trim())
            .ToArray();
        // Guards the parsing: the listing names exactly the project's catalog, once each.
        Assert.That(listed, Is.EquivalentTo(AscendCC.Attacks.AttackCatalog.All.Select(a => a.Name)), stdout);

        foreach (string name in listed)
        {
            AscendCC.Attacks.Attack attack = AscendCC.Attacks.AttackCatalog.All.Single(a => a.Name == name);
            (exit, stdout, stderr) = RunChat("--attack", name);
            string output = Unwrap(stdout + stderr);
            Assert.That(exit, Is.EqualTo(0), $"{name}: {output}");
            Assert.That(output, Does.Contain($"blocked {name} ({attack.Requirement}): ").And.Not.Contain("NOT blocked"), name);
            // The rule the refusal must name, so a refusal for an unrelated reason does not pass.
            Assert.That(output[output.IndexOf("blocked ", StringComparison.Ordinal)..], Does.Contain(attack.ExpectedEvidence), name);
        }
    }

    [TestCase("--seed", "abc", "a whole number of zero or more")]
    [TestCase("--temperature", "warm", "a number (e.g. 0.8)")]
    [TestCase("--max-tokens", "many", "a whole number")]
    public void AnUnparsableOptionIsOneErrorLineNamingItWithoutTheHelp(string option, string value, string expected)
    {
        var (exit, stdout, stderr) = RunChat(option, value);
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty, "no help dump");
        string[] lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines[0], Does.StartWith("error: ").And.Contain($"'{value}'").And.Contain(option).And.Contain(expected));
        Assert.That(stderr, Does.Not.Contain("System."));
        Assert.That(lines[^1], Does.Contain("--help"));
    }

    [Test]
    public void BadSamplingOptionsAreRefused()
    {
        foreach ((string option, string value) in new[] { ("--min-p", "2"), ("--repeat-penalty", "0"), ("--repeat-last-n", "-2"), ("--frequency-penalty", "NaN") })
        {
            var (exit, stdout, stderr) = RunChat("--prompt", "x", option, value);
            Assert.That(exit, Is.EqualTo(1), option);
            Assert.That(Unwrap(stderr), Does.Contain(option), option);
            Assert.That(stdout, Is.Empty, option);
        }
        Assert.That(RunChat("--prompt", "x", "--top-p", "1.5").Exit, Is.EqualTo(1));
        Assert.That(RunChat("--prompt", "x", "--max-tokens", "0").Exit, Is.EqualTo(1));
        Assert.That(RunChat("--prompt", "x", "--mode", "turbo").Exit, Is.Not.EqualTo(0));
    }

    [Test]
    public void DemoTrainingSmokeWritesACheckpointTheRuntimeOpens()
    {
        // Tiny settings: this checks the training step and the files, not the demo's quality.
        var settings = new DemoTrainingSettings(Documents: 200, Steps: 3, BatchSize: 2, SequenceLength: 32, Hidden: 32, Intermediate: 48, Layers: 1, Heads: 4, KvHeads: 2, MaxPositions: 64);
        string folder = Directory.CreateTempSubdirectory("llamachat-demo-smoke-").FullName;
        try
        {
            var seen = new List<TrainingProgress>();
            (_, double loss) = DemoTrainer.Train(settings, folder, new SyncProgress(seen.Add));
            Assert.That(seen.Select(p => p.Step), Is.EqualTo(new[] { 1, 2, 3 }));
            Assert.That(double.IsFinite(loss), Is.True);
            using ModelCheckpoint checkpoint = ModelCheckpoint.Open(folder);
            Assert.That(checkpoint.Config.KeyValueHeads, Is.EqualTo(2));
            Assert.That(checkpoint.Config.TieWordEmbeddings, Is.True);
            Assert.That(checkpoint.TensorNames, Does.Contain("model.layers.0.self_attn.q_proj.weight").And.Contain("model.embed_tokens.weight"));
            TextTokenizer tokenizer = TextTokenizer.Load(folder);
            const string text = "Q: What does the cow say?\nA: The cow says moo.";
            IReadOnlyList<int> ids = tokenizer.Encode(text, addBos: true);
            Assert.That(ids[0], Is.EqualTo(DemoTokenizer.Bos));
            Assert.That(ids, Has.Count.EqualTo(text.Length + 1), "one token per character");
            Assert.That(tokenizer.Decode(ids), Is.EqualTo(text));
            Assert.That(tokenizer.Decode(tokenizer.Encode("naïve ☃", addBos: false)), Is.EqualTo("naïve ☃"), "characters outside the corpus go through byte fallback");

            // The chat template renders a Q/A exchange as exactly the training document: BOS, Q, A, EOS.
            AscendCC.Runtime.Chat.ChatTemplate template = AscendCC.Runtime.Chat.ChatTemplate.TryLoadFromModel(folder)!;
            Assert.That(template.Render([AscendCC.Runtime.Chat.ChatTurn.User("What does the cow say?")], addGenerationPrompt: true), Is.EqualTo("<s>Q: What does the cow say?\nA:"));
            IReadOnlyList<int> exchange = template.Encode(tokenizer, [AscendCC.Runtime.Chat.ChatTurn.User("What does the cow say?"), AscendCC.Runtime.Chat.ChatTurn.Assistant("The cow says moo.")], addGenerationPrompt: false);
            Assert.That(exchange, Is.EqualTo(ids.Append(DemoTokenizer.Eos)));
            Assert.That(template.EndOfTurnTokenIds(tokenizer), Is.EqualTo(new[] { DemoTokenizer.Eos }));
            Assert.That(File.Exists(Path.Combine(folder, "llamachat.json")), Is.False, "the turn format now lives in the chat template");

            // Same settings, same bytes: the cache key (the settings' hash) names one model.
            string again = Directory.CreateTempSubdirectory("llamachat-demo-smoke-").FullName;
            try
            {
                DemoTrainer.Train(settings, again);
                Assert.That(File.ReadAllBytes(Path.Combine(again, "model.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(folder, "model.safetensors"))));
            }
            finally
            {
                Directory.Delete(again, recursive: true);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void CorpusIsDeterministic()
    {
        Assert.That(DemoCorpus.Generate(7, 50), Is.EqualTo(DemoCorpus.Generate(7, 50)));
        Assert.That(DemoTrainingSettings.Default.Hash(), Is.EqualTo(new DemoTrainingSettings().Hash()));
        Assert.That(DemoTrainingSettings.Default.Hash(), Is.Not.EqualTo((DemoTrainingSettings.Default with { Steps = 1 }).Hash()));
    }

    private sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
