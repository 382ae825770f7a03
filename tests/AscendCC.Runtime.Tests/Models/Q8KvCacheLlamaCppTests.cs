using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tests.Llama;
using AscendCC.Runtime.Tokenizers;
using LLama;
using LLama.Native;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// The Q8_0 KV cache against llama.cpp's (<c>--cache-type-k q8_0 --cache-type-v q8_0</c>, flash attention)
/// on one GGUF: stories260K with its heads widened to 32 (<see cref="WideHeadStories260K"/>, rows of whole
/// blocks). Both engines quantize the same keys and values by the same rule, so they leave their f16
/// caches' tokens at the same step, and past it the device's Q8_0 tokens stay llama.cpp's Q8_0 tokens
/// longer than either stays with f16. (llama.cpp also quantizes the query to int8 for its q8_0 dot
/// products and keeps the scale in f16, the device neither, so the two are not equal forever.)
/// </summary>
[NonParallelizable]
public class Q8KvCacheLlamaCppTests
{
    /// <summary>Measured with LLamaSharp 0.30.0 (2 threads): both leave f16 at generated token 114 / 215, and agree with each other to 128 / 384.</summary>
    [TestCase("once_upon_a_time", 114, 128)]
    [TestCase("lily_had_a", 215, 384)]
    public void TheDevicesQ8_0CacheFollowsLlamaCppsPastWhereBothLeaveTheirF16Caches(string prompt, int leaveF16, int withLlamaCpp)
    {
        using var temp = new TempFolder();
        string gguf = temp.File("wide.gguf");
        string folder = WideHeadStories260K.WriteFolderAndGguf(temp.File("wide"), gguf);
        ReferenceOutputs reference = ReferenceOutputs.Load(TestData.RequireModel("stories260K"), prompt);
        int count = 500 - reference.PromptTokens.Length;
        NativeApi.llama_empty_call();
        List<int> Theirs(GGMLType cache)
        {
            var parameters = new LLama.Common.ModelParams(gguf) { ContextSize = 512, BatchSize = 512, GpuLayerCount = 0, Threads = 2, TypeK = cache, TypeV = cache, FlashAttention = true };
            using var weights = LLamaWeights.LoadFromFile(parameters);
            using var context = weights.CreateContext(parameters);
            return LlamaCppGreedy.Generate(context, reference.PromptTokens, count);
        }
        int[] Ours(KvCachePrecision kv)
        {
            using var checkpoint = ModelCheckpoint.Open(gguf);
            using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
            using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 512, MaxBatchTokens = 64, KvCachePrecision = kv });
            return model.Generate(reference.PromptTokens, count, stopTokens: []).ToArray();
        }
        List<int> theirF16 = Theirs(GGMLType.GGML_TYPE_F16), theirQ8 = Theirs(GGMLType.GGML_TYPE_Q8_0);
        int[] ourF16 = Ours(KvCachePrecision.F16), ourQ8 = Ours(KvCachePrecision.Q8_0);
        Assert.Multiple(() =>
        {
            Assert.That(LlamaCppGreedy.Agreement(ourF16, theirF16), Is.EqualTo(count), "the premise: with f16 caches the engines agree throughout");
            Assert.That(LlamaCppGreedy.Agreement(theirQ8, theirF16), Is.EqualTo(leaveF16), "llama.cpp's q8_0 cache leaves its f16 tokens");
            Assert.That(LlamaCppGreedy.Agreement(ourQ8, ourF16), Is.EqualTo(leaveF16), "the device's Q8_0 cache leaves its f16 tokens at the same step");
            Assert.That(LlamaCppGreedy.Agreement(ourQ8, theirQ8), Is.EqualTo(withLlamaCpp).And.GreaterThan(leaveF16), "and stays with llama.cpp's q8_0 tokens beyond it");
        });
    }
}
