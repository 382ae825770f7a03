using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Tests;
using LLama;
using LLama.Common;
using LLama.Native;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// llama.cpp itself (through LLamaSharp 0.30.0, a test-only reference) loads the GGUF that
/// <see cref="GgufWriter"/> writes from stories260K and agrees with the runtime on the same file:
/// the prompt's tokens and 32 greedy tokens.
/// </summary>
[NonParallelizable]
public class GgufLlamaCppTests
{
    [TestCase("once_upon_a_time", "Once upon a time")]
    [TestCase("lily_had_a", "Lily had a")]
    public void LlamaCppLoadsTheWrittenGgufAndItsGreedyTokensEqualOurs(string reference, string prompt)
    {
        const int steps = 32;
        string folder = TestData.RequireModel("stories260K");
        using var temp = new TempFolder();
        string gguf = temp.File("stories260K-f32.gguf");
        using (var original = ModelCheckpoint.Open(Path.Combine(folder, "model.safetensors")))
        {
            GgufWriter.WriteLlama(gguf, original, TextTokenizer.Load(folder));
        }

        int[] ourPrompt, ours;
        using (var checkpoint = ModelCheckpoint.Open(gguf))
        using (var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true))
        using (var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 128 }))
        {
            ourPrompt = TextTokenizer.Load(gguf).Encode(prompt).ToArray();
            ours = model.Generate(ourPrompt, steps).ToArray();
        }

        var parameters = new ModelParams(gguf) { ContextSize = 128, BatchSize = 128, GpuLayerCount = 0, Threads = 2 };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        int[] theirPrompt = context.Tokenize(prompt, addBos: true, special: false).Select(t => (int)t).ToArray();
        Assert.That(theirPrompt, Is.EqualTo(ourPrompt), "llama.cpp's tokenization of the prompt");
        Assert.That(ourPrompt, Is.EqualTo(ReferenceOutputs.Load(folder, reference).PromptTokens));

        var theirs = new List<int>();
        var batch = new LLamaBatch();
        for (int i = 0; i < theirPrompt.Length; i++)
        {
            batch.Add(theirPrompt[i], i, LLamaSeqId.Zero, i == theirPrompt.Length - 1);
        }
        int position = theirPrompt.Length;
        for (int step = 0; step < steps; step++)
        {
            Assert.That(context.Decode(batch), Is.EqualTo(DecodeResult.Ok), $"llama_decode at step {step}");
            Span<float> logits = context.NativeHandle.GetLogitsIth(batch.TokenCount - 1);
            int next = 0;
            for (int v = 1; v < logits.Length; v++)
            {
                if (logits[v] > logits[next])
                {
                    next = v;
                }
            }
            theirs.Add(next);
            batch.Clear();
            batch.Add(next, position++, LLamaSeqId.Zero, true);
        }
        Assert.That(ours, Is.EqualTo(theirs), "greedy tokens: runtime vs llama.cpp on the same GGUF");
        Assert.That(theirs, Is.EqualTo(ReferenceOutputs.Load(folder, reference).GeneratedTokens.Take(steps)), "llama.cpp vs llama2.c's reference");
    }
}
