using AscendCC.Runtime.Chat;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Chat;

/// <summary>
/// Real models' chat templates (their tokenizer_config.json chat_template, bos_token and eos_token,
/// in ChatTemplates/) render the prompts their model cards and transformers document.
/// </summary>
public class ChatTemplateRealModelsTests
{
    private static readonly ChatTurn[] SystemConversation =
    [
        ChatTurn.System("You are a helpful assistant."),
        ChatTurn.User("Hello"),
        ChatTurn.Assistant("Hi there!"),
        ChatTurn.User("Who are you?"),
    ];

    private static readonly ChatTurn[] UserConversation = SystemConversation[1..];

    private static ChatTemplate Load(string model) =>
        ChatTemplate.Load(Path.Combine(TestContext.CurrentContext.TestDirectory, "Chat", "ChatTemplates", model + ".json"));

    [TestCase("Llama-2-7b-chat-hf", "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello [/INST] Hi there! </s><s>[INST] Who are you? [/INST]")]
    [TestCase("Meta-Llama-3-8B-Instruct", "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")]
    [TestCase("Llama-3.1-8B-Instruct", "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")]
    [TestCase("Mistral-7B-Instruct-v0.3", "<s>[INST] Hello[/INST] Hi there!</s>[INST] You are a helpful assistant.\n\nWho are you?[/INST]")]
    [TestCase("OpenHermes-2.5-Mistral-7B", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")]
    [TestCase("Qwen2-7B-Instruct", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")]
    [TestCase("Qwen2.5-7B-Instruct", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")]
    [TestCase("Qwen3-0.6B", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")]
    [TestCase("SmolLM2-135M-Instruct", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")]
    [TestCase("zephyr-7b-beta", "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there!</s>\n<|user|>\nWho are you?</s>\n<|assistant|>\n")]
    [TestCase("TinyLlama-1.1B-Chat-v1.0", "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there!</s>\n<|user|>\nWho are you?</s>\n<|assistant|>\n")]
    [TestCase("Phi-3-mini-4k-instruct", "<s><|user|>\nHello<|end|>\n<|assistant|>\nHi there!<|end|>\n<|user|>\nWho are you?<|end|>\n<|assistant|>\n")]
    public void WithASystemMessageRendersTheDocumentedPrompt(string model, string expected)
    {
        Assert.That(Load(model).Render(SystemConversation, addGenerationPrompt: true), Is.EqualTo(expected));
    }

    [TestCase("Llama-2-7b-chat-hf", "<s>[INST] Hello [/INST] Hi there! </s><s>[INST] Who are you? [/INST]")]
    [TestCase("Mistral-7B-Instruct-v0.1", "<s>[INST] Hello [/INST]Hi there!</s> [INST] Who are you? [/INST]")]
    [TestCase("Mistral-7B-Instruct-v0.3", "<s>[INST] Hello[/INST] Hi there!</s>[INST] Who are you?[/INST]")]
    [TestCase("gemma-7b-it", "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there!<end_of_turn>\n<start_of_turn>user\nWho are you?<end_of_turn>\n<start_of_turn>model\n")]
    [TestCase("SmolLM2-135M-Instruct", "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")]
    [TestCase("Qwen2-7B-Instruct", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")]
    [TestCase("Qwen3-0.6B", "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")]
    [TestCase("Qwen2.5-7B-Instruct", "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n")]
    [TestCase("Llama-3.1-8B-Instruct", "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")]
    public void WithoutASystemMessageRendersTheDocumentedPrompt(string model, string expected)
    {
        Assert.That(Load(model).Render(UserConversation, addGenerationPrompt: true), Is.EqualTo(expected));
    }

    /// <summary>
    /// Qwen3's thinking: enable_thinking false closes an empty think block after the generation prompt
    /// (its model card's "soft switch" off), undefined leaves the model to open one; an assistant turn
    /// before the last user query loses its reasoning, the turn after it keeps it.
    /// </summary>
    [Test]
    public void Qwen3RendersItsThinkingSwitchAndDropsEarlierReasoning()
    {
        ChatTemplate qwen3 = Load("Qwen3-0.6B");
        ChatTurn[] ask = [ChatTurn.User("Hello")];
        Assert.That(qwen3.Render(ask, addGenerationPrompt: true, new Dictionary<string, object?> { ["enable_thinking"] = false }),
            Is.EqualTo("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"));
        Assert.That(qwen3.Render(ask, addGenerationPrompt: true, new Dictionary<string, object?> { ["enable_thinking"] = true }),
            Is.EqualTo("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"));
        ChatTurn[] chat = [ChatTurn.User("A"), ChatTurn.Assistant("<think>\nfirst\n</think>\n\nB"), ChatTurn.User("C"), ChatTurn.Assistant("<think>\nsecond\n</think>\n\nD")];
        Assert.That(qwen3.Render(chat, addGenerationPrompt: false), Is.EqualTo(
            "<|im_start|>user\nA<|im_end|>\n<|im_start|>assistant\nB<|im_end|>\n<|im_start|>user\nC<|im_end|>\n"
            + "<|im_start|>assistant\n<think>\nsecond\n</think>\n\nD<|im_end|>\n"));
    }

    [Test]
    public void WithoutTheGenerationPromptTheLastTurnIsClosed()
    {
        ChatTurn[] chat = [ChatTurn.User("Hello"), ChatTurn.Assistant("Hi there!")];
        Assert.That(Load("OpenHermes-2.5-Mistral-7B").Render(chat, addGenerationPrompt: false), Is.EqualTo("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n"));
        Assert.That(Load("Meta-Llama-3-8B-Instruct").Render(chat, addGenerationPrompt: false), Does.EndWith("Hi there!<|eot_id|>"));
        Assert.That(Load("zephyr-7b-beta").Render(chat, addGenerationPrompt: false), Is.EqualTo("<|user|>\nHello</s>\n<|assistant|>\nHi there!</s>\n"));
    }

    [Test]
    public void ToolResultsFollowTheTemplatesToolPath()
    {
        ChatTurn[] chat = [ChatTurn.User("Weather?"), new ChatTurn("tool", "sunny"), new ChatTurn("tool", "22C"), ChatTurn.User("Thanks")];
        Assert.That(Load("Qwen2.5-7B-Instruct").Render(chat, true), Is.EqualTo(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\n22C\n</tool_response><|im_end|>\n<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n"));
        // Llama 3.1's `content is mapping or content is iterable` holds for a string too, so a text result goes out as JSON, quotes included (as transformers renders it).
        Assert.That(Load("Llama-3.1-8B-Instruct").Render([ChatTurn.User("Weather?"), new ChatTurn("tool", "sunny")], true),
            Does.EndWith("<|start_header_id|>user<|end_header_id|>\n\nWeather?<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n\"sunny\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"));
    }

    [Test]
    public void Llama31TakesTheDateFromATemplateVariable()
    {
        string rendered = Load("Llama-3.1-8B-Instruct").Render([ChatTurn.User("Hi")], true, new Dictionary<string, object?> { ["date_string"] = "03 Dec 2026" });
        Assert.That(rendered, Does.Contain("Cutting Knowledge Date: December 2023\nToday Date: 03 Dec 2026\n\n<|eot_id|>"));
    }

    [Test]
    public void Llama32DatesTheSystemHeaderWithStrftimeNowOnTheTemplatesClock()
    {
        ChatTemplate template = Load("Llama-3.2-1B-Instruct");
        template.Clock = new FixedClock(new DateTimeOffset(2026, 3, 5, 9, 30, 0, TimeSpan.Zero));
        Assert.That(template.Render([ChatTurn.System("Be brief."), ChatTurn.User("Hi")], true), Is.EqualTo(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 05 Mar 2026\n\nBe brief.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"));
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;

        public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
    }

    [Test]
    public void GemmaRefusesASystemMessageAndBrokenAlternationWithItsOwnWords()
    {
        ChatTemplate gemma = Load("gemma-7b-it");
        var system = Assert.Throws<ChatTemplateRaisedException>(() => gemma.Render(SystemConversation, true))!;
        Assert.That(system.TemplateMessage, Is.EqualTo("System role not supported"));
        Assert.That(system.Message, Does.Contain("gemma-7b-it.json (chat_template): line 1, column").And.Contain("System role not supported"));

        var alternation = Assert.Throws<ChatTemplateRaisedException>(() => gemma.Render([ChatTurn.User("a"), ChatTurn.User("b")], true))!;
        Assert.That(alternation.TemplateMessage, Is.EqualTo("Conversation roles must alternate user/assistant/user/assistant/..."));
        Assert.Throws<ChatTemplateRaisedException>(() => Load("Mistral-7B-Instruct-v0.1").Render(SystemConversation, true));
        Assert.That(Assert.Throws<ChatTemplateRaisedException>(() => Load("Mistral-7B-Instruct-v0.3").Render([ChatTurn.Assistant("a")], true))!.TemplateMessage,
            Does.StartWith("After the optional system message, conversation roles must alternate"));
    }

    [TestCase("Llama-2-7b-chat-hf", "<s>", "</s>", new[] { "</s>" })]
    [TestCase("Meta-Llama-3-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>", new[] { "<|eot_id|>" })]
    [TestCase("gemma-7b-it", "<bos>", "<eos>", new[] { "<eos>", "<end_of_turn>" })]
    [TestCase("Phi-3-mini-4k-instruct", "<s>", "<|endoftext|>", new[] { "<|endoftext|>", "<|end|>" })]
    [TestCase("Qwen2-7B-Instruct", null, "<|im_end|>", new[] { "<|im_end|>" })]
    public void SpecialTokensAndEndOfTurnComeFromTheConfig(string model, string? bos, string eos, string[] endOfTurn)
    {
        ChatTemplate template = Load(model);
        Assert.That(template.BosToken, Is.EqualTo(bos));
        Assert.That(template.EosToken, Is.EqualTo(eos));
        Assert.That(template.EndOfTurnTokens, Is.EqualTo(endOfTurn));
    }

    [Test]
    public void ANamedTemplateListUsesDefaultAndAModelFolderPrefersChatTemplateJinja()
    {
        string folder = Directory.CreateTempSubdirectory("chat-template-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), """
                {"bos_token": "<s>", "eos_token": {"content": "</s>", "lstrip": false},
                 "chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"}]}
                """);
            Assert.That(ChatTemplate.TryLoadFromModel(folder)!.Render([ChatTurn.User("x")], false), Is.EqualTo("<s>x</s>"));
            File.WriteAllText(Path.Combine(folder, "chat_template.jinja"), "[{{ messages[0].content }}]{{ eos_token }}");
            Assert.That(ChatTemplate.Load(folder).Render([ChatTurn.User("x")], false), Is.EqualTo("[x]</s>"));

            string empty = Directory.CreateTempSubdirectory("chat-template-none-").FullName;
            File.WriteAllText(Path.Combine(empty, "tokenizer_config.json"), """{"bos_token": "<s>"}""");
            Assert.That(ChatTemplate.TryLoadFromModel(empty), Is.Null, "a base model has no template");
            Assert.That(Assert.Throws<ChatTemplateException>(() => ChatTemplate.Load(Path.Combine(empty, "tokenizer_config.json")))!.Message, Does.Contain("has no chat_template"));
            Directory.Delete(empty, recursive: true);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
