using System.Text;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Models;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Docs;

/// <summary>The README's quick start, line for line, on stories260K: it must compile and print the reference story.</summary>
public class ReadmeQuickStartTests
{
    [Test]
    public void QuickStartPrintsTheReferenceContinuation()
    {
        string folder = TestData.RequireModel("stories260K");
        var output = new StringBuilder();

        using var runtime = new NpuRuntime(new NpuDevice(), ownsDevice: true);
        using var checkpoint = LlamaCheckpoint.Open(folder);
        var tokenizer = TextTokenizer.Load(folder);
        using var model = LlamaDeviceModel.Load(runtime, checkpoint, new LlamaDeviceOptions { Mode = ExecutionMode.Graph, MaxContext = 512 });
        var ids = new List<int>(tokenizer.Encode("Once upon a time"));
        // llama2.c counts the 4 prompt positions in its 64 steps, so its reference continues 60 tokens.
        foreach (int token in model.Generate(tokenizer.Encode("Once upon a time"), maxTokens: 60))
        {
            output.Append(tokenizer.Decode([token]));
            ids.Add(token);
        }

        string reference = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt")).Trim();
        Assert.That(tokenizer.Decode(ids).Trim(), Is.EqualTo(reference));
        Assert.That(output.ToString(), Is.Not.Empty);
    }
}
