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

        List<int> theirs = LlamaCppGreedy.Generate(context, theirPrompt, steps);
        Assert.That(ours, Is.EqualTo(theirs), "greedy tokens: runtime vs llama.cpp on the same GGUF");
        Assert.That(theirs, Is.EqualTo(ReferenceOutputs.Load(folder, reference).GeneratedTokens.Take(steps)), "llama.cpp vs llama2.c's reference");
    }

    /// <summary>
    /// A random-weight Llama whose widths are whole K-quant super-blocks (hidden 256, FFN 512), with a
    /// SentencePiece-style vocabulary llama.cpp accepts (unk, bos, eos, the 256 byte tokens, pieces).
    /// </summary>
    private static string WriteRandomLlama(TempFolder temp, out Dictionary<string, float[]> weights)
    {
        const int hidden = 256, ffn = 512, heads = 4, kvHeads = 2, vocab = 320;
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        tokens.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        tokens.AddRange(Enumerable.Range(0, vocab - tokens.Count).Select(i => "\u2581w" + i));
        int[] types = tokens.Select((t, i) => i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1).ToArray();
        var writer = new GgufWriter()
            .Add("general.architecture", "llama")
            .Add("llama.context_length", 64u).Add("llama.embedding_length", (uint)hidden).Add("llama.block_count", 1u)
            .Add("llama.feed_forward_length", (uint)ffn).Add("llama.rope.dimension_count", (uint)(hidden / heads))
            .Add("llama.attention.head_count", (uint)heads).Add("llama.attention.head_count_kv", (uint)kvHeads)
            .Add("llama.attention.layer_norm_rms_epsilon", 1e-5f).Add("llama.rope.freq_base", 10000f)
            .Add("tokenizer.ggml.model", "llama")
            .Add("tokenizer.ggml.tokens", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.String, tokens.ToArray())))
            .Add("tokenizer.ggml.scores", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.Float32, tokens.Select((_, i) => -(float)i).ToArray())))
            .Add("tokenizer.ggml.token_type", new GgufValue(GgufValueType.Array, new GgufArray(GgufValueType.Int32, types)))
            .Add("tokenizer.ggml.bos_token_id", 1u).Add("tokenizer.ggml.eos_token_id", 2u).Add("tokenizer.ggml.unknown_token_id", 0u);
        var rng = new Random(13);
        var all = new Dictionary<string, float[]>();
        void T(string name, params long[] shape)
        {
            // Weights with the spread of a trained model's: mostly small, some outliers per block.
            var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (int i = 0; i < values.Length; i++)
            {
                double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
                values[i] = (float)(shape.Length == 1 ? 1 + 0.1 * g : 0.05 * g);
            }
            all[name] = values;
            writer.AddTensor(name, shape, GgufTensorType.F32, () => values);
        }
        T("token_embd.weight", vocab, hidden);
        T("blk.0.attn_norm.weight", hidden);
        T("blk.0.attn_q.weight", hidden, hidden);
        T("blk.0.attn_k.weight", hidden / heads * kvHeads, hidden);
        T("blk.0.attn_v.weight", hidden / heads * kvHeads, hidden);
        T("blk.0.attn_output.weight", hidden, hidden);
        T("blk.0.ffn_norm.weight", hidden);
        T("blk.0.ffn_gate.weight", ffn, hidden);
        T("blk.0.ffn_up.weight", ffn, hidden);
        T("blk.0.ffn_down.weight", hidden, ffn);
        T("output_norm.weight", hidden);
        T("output.weight", vocab, hidden);
        string path = temp.File("random-f32.gguf");
        writer.Write(path);
        weights = all;
        return path;
    }

    /// <summary>
    /// Relative RMS error bound per stored type for these Gaussian weights: about 1.3 times what a
    /// correct reader sees (Q8_0 0.0054, Q6_K 0.018, Q4_K 0.072, Q4_0 0.086; rounding to a step of
    /// about 2.5σ/127, /31, /15 and /7 gives 0.005, 0.02, 0.05–0.07 and 0.1), so a misplaced scale or
    /// nibble, which gives 0.3 to 1.4, cannot pass.
    /// </summary>
    private static double Bound(GgufTensorType type) => type switch
    {
        GgufTensorType.F32 => 0,
        GgufTensorType.F16 => 1e-3,
        GgufTensorType.Q8_0 => 0.007,
        GgufTensorType.Q6_K => 0.025,
        GgufTensorType.Q4_K => 0.095,
        GgufTensorType.Q4_0 => 0.115,
        _ => throw new AssertionException($"unexpected type {type}"),
    };

    /// <summary>
    /// llama.cpp's own quantizer (llama_model_quantize) writes Q8_0, Q4_0 and Q4_K_M (Q4_K and Q6_K)
    /// files of a random Llama; the runtime reads every tensor back within the format's quantization
    /// error of the original weights, and the checkpoint opens and runs on the device.
    /// </summary>
    [TestCase(LLamaFtype.MOSTLY_Q8_0, new[] { GgufTensorType.Q8_0 })]
    [TestCase(LLamaFtype.MOSTLY_Q4_0, new[] { GgufTensorType.Q4_0 })]
    [TestCase(LLamaFtype.MOSTLY_Q4_K_M, new[] { GgufTensorType.Q4_K, GgufTensorType.Q6_K })]
    public void FilesQuantizedByLlamaCppReadBackWithinTheirQuantizationError(LLamaFtype ftype, GgufTensorType[] expectedTypes)
    {
        using var temp = new TempFolder();
        string f32 = WriteRandomLlama(temp, out var weights);
        string quantized = temp.File($"random-{ftype}.gguf");
        // LLamaQuantizer calls llama.cpp without running LLamaSharp's library selection; this does.
        NativeApi.llama_empty_call();
        Assert.That(LLamaQuantizer.Quantize(f32, quantized, ftype, nthread: 2), Is.True, "llama_model_quantize");

        using (var file = GgufFile.Open(quantized))
        {
            Assert.That(expectedTypes, Is.SubsetOf(file.Tensors.Select(t => t.Type).Distinct()), "types llama.cpp chose: " + string.Join(", ", file.Tensors.Select(t => $"{t.Name} {t.Type}")));
            foreach (GgufTensorInfo info in file.Tensors)
            {
                float[] original = weights[info.Name];
                var read = new float[info.ElementCount];
                file.ReadFloat32(info, read);
                double err = 0, norm = 0;
                for (int i = 0; i < read.Length; i++)
                {
                    err += (read[i] - original[i]) * (double)(read[i] - original[i]);
                    norm += original[i] * (double)original[i];
                }
                double relative = Math.Sqrt(err / norm);
                Assert.That(relative, Is.LessThanOrEqualTo(Bound(info.Type)), $"{info.Name} ({info.Type}): relative RMS error {relative:g3}");
                TestContext.Out.WriteLine($"{info.Name} {info.Type} relative RMS error {relative:g3}");
            }
        }

        using var checkpoint = ModelCheckpoint.Open(quantized);
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 32 });
        Assert.That(model.Generate([1, 300, 301], 4).ToArray(), Has.Length.EqualTo(4).And.All.InRange(0, 319));
    }
}

