using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tests.Llama;
using AscendCC.Runtime.Tokenizers;
using LLama;
using LLama.Common;
using LLama.Native;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// llama.cpp (LLamaSharp 0.30.0, test-only) against the device's Q8_0 and Q4_0 on one file: the
/// trained <see cref="PaddedStories260K"/> written as an F32 GGUF and quantized by llama.cpp's own
/// quantizer (llama_model_quantize).
/// </summary>
[NonParallelizable]
public class QuantizedLlamaCppTests
{
    private const int Steps = 64;

    /// <summary>A logit gap under which two engines' different picks are a near tie, not a disagreement (as in Q8_0ModelTests).</summary>
    private const float NearTie = 0.05f;

    private static (string F32, string Quantized) WriteFiles(TempFolder temp, LLamaFtype ftype)
    {
        string folder = PaddedStories260K.WriteFolder(temp.File("padded"));
        string f32 = temp.File("padded-f32.gguf"), quantized = temp.File($"padded-{ftype}.gguf");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            GgufWriter.WriteLlama(f32, checkpoint, TextTokenizer.Load(folder));
        }
        // LLamaQuantizer calls llama.cpp without running LLamaSharp's library selection; this does.
        NativeApi.llama_empty_call();
        Assert.That(LLamaQuantizer.Quantize(f32, quantized, ftype, nthread: 2), Is.True, "llama_model_quantize");
        return (f32, quantized);
    }

    /// <summary>
    /// Quantizing on load is llama.cpp's quantizer, byte for byte: every matrix llama.cpp wrote in the
    /// format equals what the runtime makes of the same F32 tensor. And llama.cpp's Q8_0 and Q4_0
    /// tensors are read as their stored blocks, not dequantized. (For Q4_0 llama.cpp keeps the tied
    /// embedding, its output matrix, wider: Q8_0 here, since 64-wide rows cannot be Q6_K's 256-blocks.)
    /// </summary>
    [TestCase(LLamaFtype.MOSTLY_Q8_0, TensorDType.Q8_0, WeightPrecision.Q8_0, (5 * 7) + 1)]
    [TestCase(LLamaFtype.MOSTLY_Q4_0, TensorDType.Q4_0, WeightPrecision.Q4_0, 5 * 7)]
    public void QuantizingOnLoadGivesLlamaCppsBytesAndItsBlocksLoadAsStored(LLamaFtype ftype, TensorDType dtype, WeightPrecision precision, int matrices)
    {
        using var temp = new TempFolder();
        (string f32Path, string quantizedPath) = WriteFiles(temp, ftype);
        using var f32 = ModelCheckpoint.Open(f32Path);
        using var quantized = ModelCheckpoint.Open(quantizedPath);
        int compared = 0;
        foreach ((string name, long[] shape) in quantized.Config.ExpectedTensors())
        {
            CheckpointTensor stored = quantized.GetTensor(name);
            TestContext.Out.WriteLine($"{name}: {stored.StoredBlockDType?.ToString() ?? stored.DType.ToString()}");
            if (stored.StoredBlockDType != dtype)
            {
                continue;
            }
            TensorData blocks = TensorData.FromCheckpoint(stored);
            Assert.That(blocks.DType, Is.EqualTo(dtype), name);
            Assert.That(blocks.Bytes.Length, Is.EqualTo(stored.StoredByteLength), $"{name}: the file's blocks");
            byte[] ours = WeightConversion.Convert(TensorData.FromCheckpoint(f32.GetTensor(name)), precision);
            Assert.That(ours, Is.EqualTo(WeightConversion.Convert(blocks, precision)), $"{name}: quantized on load vs llama.cpp's {dtype}");
            compared++;
        }
        Assert.That(compared, Is.EqualTo(matrices), "the matrices llama.cpp wrote in the format (every layer's seven, and for Q8_0 the embedding)");
    }

    /// <summary>
    /// <c>GgufWriter.WriteLlama(…, Q4_0)</c> (and <c>ascendcc-provider export-gguf --type q4_0</c>) writes what
    /// llama.cpp's quantizer writes from the same F32 file: every tensor of the same type (the tied
    /// embedding in Q8_0, the norms F32) and the same bytes.
    /// </summary>
    [Test]
    public void AQ4_0ExportIsLlamaCppsQ4_0FileTensorForTensor()
    {
        using var temp = new TempFolder();
        (_, string theirs) = WriteFiles(temp, LLamaFtype.MOSTLY_Q4_0);
        string ours = temp.File("padded-ours-q4_0.gguf");
        string folder = temp.File("padded");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            GgufWriter.WriteLlama(ours, checkpoint, TextTokenizer.Load(folder), GgufTensorType.Q4_0);
        }
        using var a = GgufFile.Open(ours);
        using var b = GgufFile.Open(theirs);
        Assert.That(a.Metadata.Find("general.file_type")!.Value, Is.EqualTo(2u), "MOSTLY_Q4_0");
        Assert.That(a.Tensors.Select(t => t.Name).Order(), Is.EqualTo(b.Tensors.Select(t => t.Name).Order()));
        int q4 = 0;
        foreach (GgufTensorInfo t in a.Tensors)
        {
            GgufTensorInfo u = b.FindTensor(t.Name)!;
            Assert.That(t.Type, Is.EqualTo(u.Type), t.Name);
            Assert.That(ReadBytes(ours, t), Is.EqualTo(ReadBytes(theirs, u)), t.Name);
            q4 += t.Type == GgufTensorType.Q4_0 ? 1 : 0;
        }
        Assert.That(q4, Is.EqualTo(5 * 7), "every layer's seven matrices");
    }

    private static byte[] ReadBytes(string path, GgufTensorInfo t)
    {
        using var stream = File.OpenRead(path);
        var bytes = new byte[t.ByteLength];
        stream.Position = t.FileOffset;
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>
    /// The device runs llama.cpp's quantized file as stored and picks llama.cpp's greedy tokens. Both
    /// quantize the activations per block of 32 for every product with a quantized weight; llama.cpp
    /// rounds their scales to f16 and keeps its KV cache in f16 where the device keeps f32, so the
    /// two are held equal only as far as this model's choices are clear: measured, all 64 tokens
    /// after either prompt in Q4_0 (whose file llama.cpp writes with the tied embedding in Q8_0, as the
    /// device's Q4_0 keeps it) and after "Once upon a time" in Q8_0; after "Lily had a" in Q8_0, 26,
    /// where the 27th is a near tie in llama.cpp's logits (stories260K's f32 and bf16 weights split at
    /// the same pair of tokens, 322 and 335). Those figures are with the device's cache in f32; with its
    /// default f16 cache (llama.cpp's type too) the same holds except after "Lily had a" in Q8_0, which
    /// splits at its 16th token instead (tokens 426 and 269), again a near tie in llama.cpp's logits
    /// (0.02; the f32 llama2.c model's top-two gap at that position is 0.008).
    /// </summary>
    [TestCase(LLamaFtype.MOSTLY_Q8_0, WeightPrecision.Q8_0, "Once upon a time", KvCachePrecision.F32, Steps)]
    [TestCase(LLamaFtype.MOSTLY_Q8_0, WeightPrecision.Q8_0, "Lily had a", KvCachePrecision.F32, 26)]
    [TestCase(LLamaFtype.MOSTLY_Q4_0, WeightPrecision.Q4_0, "Once upon a time", KvCachePrecision.F32, Steps)]
    [TestCase(LLamaFtype.MOSTLY_Q4_0, WeightPrecision.Q4_0, "Lily had a", KvCachePrecision.F32, Steps)]
    [TestCase(LLamaFtype.MOSTLY_Q8_0, WeightPrecision.Q8_0, "Once upon a time", KvCachePrecision.F16, Steps)]
    [TestCase(LLamaFtype.MOSTLY_Q8_0, WeightPrecision.Q8_0, "Lily had a", KvCachePrecision.F16, 15)]
    [TestCase(LLamaFtype.MOSTLY_Q4_0, WeightPrecision.Q4_0, "Once upon a time", KvCachePrecision.F16, Steps)]
    [TestCase(LLamaFtype.MOSTLY_Q4_0, WeightPrecision.Q4_0, "Lily had a", KvCachePrecision.F16, Steps)]
    public void TheDeviceOnLlamaCppsFilePicksLlamaCppsGreedyTokens(LLamaFtype ftype, WeightPrecision precision, string prompt, KvCachePrecision kv, int expectedAgreement)
    {
        using var temp = new TempFolder();
        (_, string quantized) = WriteFiles(temp, ftype);

        int[] promptTokens, ours;
        using (var checkpoint = ModelCheckpoint.Open(quantized))
        using (var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true))
        using (var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 128, WeightPrecision = precision, KvCachePrecision = kv }))
        {
            promptTokens = TextTokenizer.Load(quantized).Encode(prompt).ToArray();
            ours = model.Generate(promptTokens, Steps, stopTokens: []).ToArray();
        }

        var parameters = new ModelParams(quantized) { ContextSize = 128, BatchSize = 128, GpuLayerCount = 0, Threads = 2 };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        var gaps = new List<float>();
        // How much llama.cpp prefers its pick over the device's, at the same position.
        List<int> theirs = LlamaCppGreedy.Generate(context, promptTokens, Steps, (step, logits, picked) =>
            gaps.Add(step < ours.Length ? logits[picked] - logits[ours[step]] : 0f));
        int agree = ours.Zip(theirs).TakeWhile(p => p.First == p.Second).Count();
        TestContext.Out.WriteLine($"device:    {string.Join(' ', ours)}\nllama.cpp: {string.Join(' ', theirs)}\nequal for {agree} of {Steps}");
        Assert.That(agree, Is.EqualTo(expectedAgreement), "greedy tokens before the first difference: the device vs llama.cpp on the same Q8_0 GGUF");
        if (agree < Steps)
        {
            TestContext.Out.WriteLine($"at the first difference llama.cpp prefers its {theirs[agree]} to the device's {ours[agree]} by {gaps[agree]:g3}");
            Assert.That(gaps[agree], Is.LessThan(NearTie), "the first difference is a near tie in llama.cpp's own logits");
        }
    }
}
