using AscendCC.Runtime.Chat;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tests.Models;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Chat;

/// <summary>
/// A GGUF file's chat template (<c>tokenizer.chat_template</c>, which llama.cpp's converter copies from
/// tokenizer_config.json): read by <see cref="ChatTemplate.TryLoadFromModel"/> and <see cref="ChatTemplate.Load"/>
/// with the file's BOS and EOS texts, and written by <see cref="GgufWriter.WriteLlama"/>.
/// </summary>
public class GgufChatTemplateTests
{
    private const string ChatMl = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    [Test]
    public void AGgufCarriesItsTemplateAndSpecialTokens()
    {
        using var temp = new TempFolder();
        string stories = TestData.RequireModel("stories260K");
        string with = temp.File("with.gguf"), without = temp.File("without.gguf");
        using (var checkpoint = ModelCheckpoint.Open(stories))
        {
            TextTokenizer tokenizer = TextTokenizer.Load(stories);
            GgufWriter.WriteLlama(with, checkpoint, tokenizer, chatTemplate: ChatTemplate.FromText(ChatMl, "<s>", "</s>"));
            GgufWriter.WriteLlama(without, checkpoint, tokenizer);
        }
        using (var file = GgufFile.Open(with))
        {
            Assert.That(file.Metadata.GetString("tokenizer.chat_template"), Is.EqualTo(ChatMl));
        }

        ChatTemplate template = ChatTemplate.TryLoadFromModel(with)!;
        Assert.That(template, Is.Not.Null);
        Assert.That(template.Text, Is.EqualTo(ChatMl));
        Assert.That(template.BosToken, Is.EqualTo("<s>"), "the text of tokenizer.ggml.bos_token_id");
        Assert.That(template.EosToken, Is.EqualTo("</s>"));
        Assert.That(template.Source, Does.Contain("tokenizer.chat_template"));
        Assert.That(template.Render([ChatTurn.User("Hi")], addGenerationPrompt: true), Is.EqualTo("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
        Assert.That(template.EndOfTurnTokens, Does.Contain("<|im_end|>"));
        Assert.That(ChatTemplate.Load(with).Text, Is.EqualTo(ChatMl));

        // A base model's file: no template, and Load says which key it looked for.
        Assert.That(ChatTemplate.TryLoadFromModel(without), Is.Null);
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Load(without));
        Assert.That(e!.Message, Does.Contain("tokenizer.chat_template"));

        // A template file given beside a GGUF takes the file's special tokens.
        string jinja = temp.File("t.jinja");
        File.WriteAllText(jinja, "{{ bos_token }}{{ messages[0]['content'] }}{{ eos_token }}");
        Assert.That(ChatTemplate.Load(jinja, specialTokensFrom: without).Render([ChatTurn.User("x")], addGenerationPrompt: false), Is.EqualTo("<s>x</s>"));
    }
}
