using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Tests;
using LLama.Native;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// Qwen2 (Qwen2ForCausalLM; GGUF architecture "qwen2"): the Llama block with biases on q, k and v and
/// rotate_half RoPE. A random Qwen2 checkpoint runs the same from its folder and from the GGUF written
/// from it, and llama.cpp picks the same next token on that GGUF with logits as close as on a Llama;
/// the biases are applied (without them the logits move far more); configurations this runtime does
/// not run are refused naming the field.
/// </summary>
[NonParallelizable]
public class Qwen2Tests
{
    private static readonly LlamaConfig Config = RandomLlamaCheckpoint.Config with
    {
        Architecture = LlamaConfig.Qwen2Architecture,
        ModelType = "qwen2",
        QkvBias = true,
        RopeTheta = 1000000,
    };

    /// <summary>Writes a Qwen2 folder of seeded Gaussian weights (biases of spread <paramref name="biasScale"/>) with stories260K's tokenizer.</summary>
    private static string WriteFolder(string folder, float biasScale)
    {
        var rng = new Random(11);
        return RandomLlamaCheckpoint.WriteFolder(folder, Config, (name, shape) =>
        {
            int count = (int)shape.Aggregate(1L, (x, y) => x * y);
            bool bias = name.EndsWith(".bias", StringComparison.Ordinal), norm = shape.Length == 1 && !bias;
            return [.. Enumerable.Range(0, count).Select(_ => norm ? 1f : (float)(RandomLlamaCheckpoint.Gaussian(rng) * (bias ? biasScale : 1 / Math.Sqrt(shape[^1]))))];
        });
    }

    [Test]
    public void AQwen2RunsFromItsFolderAndItsGgufAsLlamaCppRunsIt()
    {
        using var temp = new TempFolder();
        string folder = WriteFolder(temp.File("qwen2"), biasScale: 0.5f), plain = WriteFolder(temp.File("qwen2-no-bias"), biasScale: 0f);
        string gguf = temp.File("qwen2.gguf"), plainGguf = temp.File("qwen2-no-bias.gguf");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            Assert.That(checkpoint.Config, Is.EqualTo(Config).Using<ModelConfig>((a, b) => a.ToJson() == b.ToJson()), "config.json round trip");
            GgufWriter.WriteLlama(gguf, checkpoint, TextTokenizer.Load(folder));
        }
        using (var checkpoint = ModelCheckpoint.Open(plain))
        {
            GgufWriter.WriteLlama(plainGguf, checkpoint, TextTokenizer.Load(plain));
        }
        using (var file = GgufFile.Open(gguf))
        {
            Assert.That(file.Metadata.GetString("general.architecture"), Is.EqualTo("qwen2"));
            Assert.That(file.FindTensor("blk.1.attn_k.bias"), Is.Not.Null);
        }
        using (var checkpoint = ModelCheckpoint.Open(gguf))
        {
            Assert.That(checkpoint.RopeConvention, Is.EqualTo(RopeConvention.Half), "a qwen2 GGUF's q/k rows are not permuted");
            Assert.That(((LlamaConfig)checkpoint.Config).QkvBias, Is.True);
            Assert.That(checkpoint.TensorNames, Does.Contain(LlamaTensorNames.VBias(1)));
        }

        int[] prompt = [1, .. Enumerable.Range(0, 24).Select(i => 3 + (i * 37 % 500))];
        float[] fromFolder = GgufReadBack.DeviceLastLogits(folder, prompt, WeightPrecision.F32);
        float[] fromFile = GgufReadBack.DeviceLastLogits(gguf, prompt, WeightPrecision.F32);
        float[] unbiased = GgufReadBack.DeviceLastLogits(plainGguf, prompt, WeightPrecision.F32);
        static double Distance(float[] a, float[] b) => a.Zip(b).Max(p => Math.Abs(p.First - p.Second));
        Assert.That(Distance(fromFile, fromFolder), Is.LessThan(1e-3), "the GGUF's logits are the folder's");

        NativeApi.llama_empty_call();
        float[] theirs = LlamaCppGreedy.LastLogits(gguf, prompt);
        double distance = Distance(fromFile, theirs), biases = Distance(fromFile, unbiased);
        TestContext.Out.WriteLine($"device against llama.cpp {distance:g4}; the biases move the device's logits by {biases:g4}");
        Assert.That(biases, Is.GreaterThan(0.05), "the premise: the biases matter");
        Assert.That(distance, Is.LessThan(0.05 * biases));
        Assert.That(Array.IndexOf(fromFile, fromFile.Max()), Is.EqualTo(Array.IndexOf(theirs, theirs.Max())), "the next token");

        // And in Q8_0 on the device (the biases stay F32), within Q8_0's rounding of the F32 run.
        float[] q8 = GgufReadBack.DeviceLastLogits(gguf, prompt, WeightPrecision.Q8_0);
        Assert.That(Distance(q8, fromFile), Is.LessThan(0.25 * biases));
    }

    [Test]
    public void ConfigurationsThisRuntimeDoesNotRunAreRefused()
    {
        string qwen = Config.ToJson();
        var e = Assert.Throws<CheckpointFormatException>(() => LlamaConfig.Parse(qwen.Replace("\"use_sliding_window\": false", "\"use_sliding_window\": true", StringComparison.Ordinal)));
        Assert.That(e!.Message, Does.Contain("use_sliding_window"));
        Assert.That(((LlamaConfig)ModelConfig.Parse(qwen)).SlidingWindow, Is.Null);

        string llama = RandomLlamaCheckpoint.Config.ToJson();
        Assert.That(llama, Does.Contain("\"model_type\": \"llama\""), "the premise");
        e = Assert.Throws<CheckpointFormatException>(() => LlamaConfig.Parse(llama.Replace("\"model_type\": \"llama\"", "\"model_type\": \"llama\", \"attention_bias\": true", StringComparison.Ordinal)));
        Assert.That(e!.Message, Does.Contain("attention_bias"));
    }
}
