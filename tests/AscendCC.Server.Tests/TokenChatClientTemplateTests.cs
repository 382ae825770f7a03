using System.Runtime.CompilerServices;
using System.Text.Json;
using AscendCC.Client;
using AscendCC.Runtime.Chat;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Tests;
using Microsoft.Extensions.AI;
using NUnit.Framework;

namespace AscendCC.Server.Tests;

/// <summary>
/// A <see cref="TokenChatClient"/> (the base of ConfidentialChatClient and the CC-off DeviceChatClient)
/// with a real model's chat template: the prompt tokens it sends and where the reply ends.
/// </summary>
public class TokenChatClientTemplateTests
{
    private static ChatTemplate Load(string model) =>
        ChatTemplate.Load(Path.Combine(TestContext.CurrentContext.TestDirectory, "ChatTemplates", model + ".json"));

    private static TextTokenizer Llama2Tokenizer()
    {
        string folder = Path.Combine(TestData.ModelsRoot, "llama2-tokenizer");
        if (!File.Exists(Path.Combine(folder, "tokenizer.model")))
        {
            Assert.Ignore($"The real Llama 2 tokenizer is not at {folder} (see ../shared/models/README.md); skipped.");
        }
        return TextTokenizer.Load(folder);
    }

    [Test]
    public async Task Llama2ChatTemplateGivesThePromptTokensTransformersWouldAndOneBos()
    {
        TextTokenizer tokenizer = Llama2Tokenizer();
        ChatTemplate template = Load("Llama-2-7b-chat-hf");
        IReadOnlyList<int> answer = tokenizer.Encode("I am a llama.", addBos: false);
        using var client = new ScriptedClient(tokenizer, TokenChatClientOptions.FromChatTemplate(template, modelId: "llama-2-chat"), [.. answer, tokenizer.EosId, 999]);

        ChatResponse response = await client.GetResponseAsync(
            [new ChatMessage(ChatRole.System, "Be brief."), new ChatMessage(ChatRole.User, "Who are you?")], new ChatOptions { MaxOutputTokens = 32 });

        string rendered = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWho are you? [/INST]";
        Assert.That(template.Render([ChatTurn.System("Be brief."), ChatTurn.User("Who are you?")], true), Is.EqualTo(rendered));
        int[] expected = [1, .. tokenizer.Encode(rendered["<s>".Length..], addBos: false)];
        Assert.That(client.Prompt, Is.EqualTo(expected), "the template's <s> is the only BOS, as id 1");
        Assert.That(client.Prompt.Take(4), Is.EqualTo(new[] { 1, 518, 25580, 29962 }), "<s>[INST] as transformers encodes it");
        // The reply is decoded in the prompt's context, so the space of its first piece ("▁I") stays.
        Assert.That(response.Text, Is.EqualTo(" I am a llama."));
        Assert.That(response.FinishReason, Is.EqualTo(ChatFinishReason.Stop), "</s> (the template's eos_token) ended the reply");
    }

    [Test]
    public async Task ATemplatesEndOfTurnTokenEndsTheReplyAndMessageRolesMapToTurns()
    {
        TextTokenizer tokenizer = Llama2Tokenizer();
        // A ChatML template over the Llama 2 vocabulary, with <|im_end|> mapped to an id the tokenizer
        // knows as text only: the client stops on the template's end-of-turn id it can resolve (</s> here).
        ChatTemplate chatml = ChatTemplate.FromText(
            "{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}", "<s>", "</s>");
        using var client = new ScriptedClient(tokenizer, TokenChatClientOptions.FromChatTemplate(chatml), [.. tokenizer.Encode("ok", addBos: false), tokenizer.EosId]);
        ChatMessage[] chat = [new(ChatRole.System, "s"), new(ChatRole.User, "u"), new(ChatRole.Assistant, "a"), new(ChatRole.Tool, "t"), new(ChatRole.User, "v")];
        Assert.That(TokenChatClientOptions.ToChatTurns(chat).Select(t => t.Role), Is.EqualTo(new[] { "system", "user", "assistant", "tool", "user" }));
        ChatResponse response = await client.GetResponseAsync(chat);
        Assert.That(tokenizer.Decode(client.Prompt), Is.EqualTo("system: s user: u assistant: a tool: t user: v assistant:"),
            "each stretch after a special token is encoded as its own text (with SentencePiece's leading space), as transformers' Llama tokenizer does");
        Assert.That(client.Prompt[0], Is.EqualTo(1), "no BOS in the template: the tokenizer's is added");
        Assert.That(client.Prompt.Count(id => id == 2), Is.EqualTo(5), "each eos_token the template writes is one id");
        Assert.That(response.Text, Is.EqualTo(" ok"));
        Assert.That(response.FinishReason, Is.EqualTo(ChatFinishReason.Stop));

        // A template that refuses the chat refuses it before anything is generated.
        using var gemma = new ScriptedClient(tokenizer, TokenChatClientOptions.FromChatTemplate(Load("gemma-7b-it")), [1]);
        Assert.That(async () => await gemma.GetResponseAsync([new ChatMessage(ChatRole.System, "s")]),
            Throws.InstanceOf<ChatTemplateRaisedException>().With.Property(nameof(ChatTemplateRaisedException.TemplateMessage)).EqualTo("System role not supported"));
        Assert.That(gemma.Prompt, Is.Empty);
    }

    /// <summary>
    /// Qwen3's template with chat_template_kwargs {"enable_thinking": false} — given as a dictionary (a .NET
    /// caller) or as the JSON object the OpenAI endpoint passes on — renders the empty think block that
    /// turns thinking off; a value that is a list is refused naming the variable before anything is generated.
    /// </summary>
    [Test]
    public async Task ChatTemplateKwargsReachTheTemplateAsADictionaryOrAsJson()
    {
        TextTokenizer tokenizer = Llama2Tokenizer();
        ChatTemplate qwen3 = Load("Qwen3-0.6B");
        ChatMessage[] ask = [new(ChatRole.User, "Hello")];
        using var client = new ScriptedClient(tokenizer, TokenChatClientOptions.FromChatTemplate(qwen3), [tokenizer.EosId]);
        var off = new Dictionary<string, object?> { ["enable_thinking"] = false };
        IReadOnlyList<int> expected = qwen3.Encode(tokenizer, [ChatTurn.User("Hello")], addGenerationPrompt: true, off);
        Assert.That(tokenizer.Decode(expected), Does.EndWith("assistant\n<think>\n\n</think>\n\n"), "the premise: the variable changes the prompt");

        await client.GetResponseAsync(ask, new ChatOptions { AdditionalProperties = new() { [TokenChatClient.ChatTemplateKwargs] = off } });
        Assert.That(client.Prompt, Is.EqualTo(expected), "a dictionary");
        using (JsonDocument json = JsonDocument.Parse("{\"enable_thinking\": false}"))
        {
            await client.GetResponseAsync(ask, new ChatOptions { AdditionalProperties = new() { [TokenChatClient.ChatTemplateKwargs] = json.RootElement.Clone() } });
        }
        Assert.That(client.Prompt, Is.EqualTo(expected), "a JSON object");
        await client.GetResponseAsync(ask);
        Assert.That(client.Prompt, Is.EqualTo(qwen3.Encode(tokenizer, [ChatTurn.User("Hello")])), "none: the template's default");

        using var refused = new ScriptedClient(tokenizer, TokenChatClientOptions.FromChatTemplate(qwen3), [tokenizer.EosId]);
        using JsonDocument list = JsonDocument.Parse("{\"enable_thinking\": [false]}");
        var e = Assert.ThrowsAsync<ArgumentException>(async () => await refused.GetResponseAsync(ask, new ChatOptions { AdditionalProperties = new() { [TokenChatClient.ChatTemplateKwargs] = list.RootElement.Clone() } }));
        Assert.That(e!.Message, Does.Contain("'enable_thinking' is a JSON array"));
        Assert.That(refused.Prompt, Is.Empty, "nothing was generated");
    }

    /// <summary>Generates a fixed list of ids and records the prompt it was given.</summary>
    private sealed class ScriptedClient(TextTokenizer tokenizer, TokenChatClientOptions options, IReadOnlyList<int> script) : TokenChatClient(tokenizer, options, "scripted")
    {
        public IReadOnlyList<int> Prompt { get; private set; } = [];

        protected override async IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions sampling, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            Prompt = prompt;
            foreach (int token in script.Take(maxTokens))
            {
                await Task.Yield();
                yield return token;
            }
        }
    }
}
