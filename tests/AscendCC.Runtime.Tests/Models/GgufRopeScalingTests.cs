using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using LLama.Native;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// RoPE scaling in GGUF as llama.cpp's converter writes it (<see cref="GgufRopeScaling"/>): llama3's
/// rope_freqs.weight divisors fitted back to their parameters, linear's metadata, the writer's round trip,
/// the kinds refused, and llama.cpp running the same file.
/// </summary>
[NonParallelizable]
public class GgufRopeScalingTests
{
    /// <summary>Llama 3.1/3.3 (factor 8) and 3.2 (factor 32) at their head sizes and base, and a short-context variant.</summary>
    [TestCase(8.0, 4.0, 8192, 128, 500000.0)]
    [TestCase(32.0, 4.0, 8192, 64, 500000.0)]
    [TestCase(8.0, 4.0, 64, 64, 10000.0)]
    [TestCase(4.0, 2.0, 2048, 128, 10000.0)]
    public void Llama3DivisorsGiveBackTheirParameters(double factor, double high, int original, int rotaryDim, double theta)
    {
        RopeScaling scaling = RopeScaling.Llama3(factor, 1, high, original);
        float[] divisors = GgufRopeScaling.Llama3Divisors(scaling, rotaryDim, theta);
        Assert.That(divisors, Has.Some.EqualTo(1f).And.Some.EqualTo((float)factor), "the premise: kept and interpolated frequencies");
        Assert.That(GgufRopeScaling.FitLlama3(divisors, rotaryDim, theta), Is.EqualTo(scaling));
    }

    [Test]
    public void DivisorsNoLlama3ScalingReproducesAreRefused()
    {
        float[] divisors = Enumerable.Range(0, 32).Select(i => 1f + (i % 5)).ToArray();
        Assert.That(GgufRopeScaling.FitLlama3(divisors, 64, 10000), Is.Null);
        // A blend that is not linear in 1 / wavelength.
        float[] llama3 = GgufRopeScaling.Llama3Divisors(RopeScaling.Llama3(8, 1, 4, 64), 64, 10000);
        int blended = Array.FindIndex(llama3, d => d > 1 && d < 8);
        llama3[blended] *= 1.01f;
        Assert.That(GgufRopeScaling.FitLlama3(llama3, 64, 10000), Is.Null);
    }

    /// <summary>
    /// A checkpoint with llama3 (or linear) scaling written to GGUF reads back with the same scaling, and
    /// the device's logits on the file are the folder's; a file of another kind is refused naming it.
    /// </summary>
    [Test]
    public void TheWriterAndTheReaderRoundTripTheScalingAndTheDeviceAgrees()
    {
        using var temp = new TempFolder();
        foreach (RopeScaling scaling in new[] { RopeScaling.Llama3(8, 1, 4, 64), RopeScaling.Linear(4) })
        {
            string folder = ScaledFolder(temp, scaling);
            string gguf = temp.File($"scaled-{scaling.Type}.gguf");
            using (var checkpoint = ModelCheckpoint.Open(folder))
            {
                Assert.That(((LlamaConfig)checkpoint.Config).RopeScaling, Is.EqualTo(scaling));
                GgufWriter.WriteLlama(gguf, checkpoint, TextTokenizer.Load(folder));
            }
            using (var file = GgufFile.Open(gguf))
            {
                Assert.That(file.FindTensor(GgufRopeScaling.FreqsTensor) is not null, Is.EqualTo(scaling.Type == RopeScaling.Llama3Type));
            }
            using (var checkpoint = ModelCheckpoint.Open(gguf))
            {
                Assert.That(((LlamaConfig)checkpoint.Config).RopeScaling, Is.EqualTo(scaling));
            }
            int[] prompt = [1, .. Enumerable.Range(0, 60).Select(i => 3 + (i * 37 % 500))];
            float[] fromFolder = GgufReadBack.DeviceLastLogits(folder, prompt, WeightPrecision.F32);
            float[] fromFile = GgufReadBack.DeviceLastLogits(gguf, prompt, WeightPrecision.F32);
            Assert.That(fromFile.Zip(fromFolder).Max(p => Math.Abs(p.First - p.Second)), Is.LessThan(1e-3), $"{scaling.Type}: the file's logits are the folder's");
        }

        string yarn = temp.File("yarn.gguf");
        new GgufWriter().Add("general.architecture", "llama").Add("llama.embedding_length", 64u).Add("llama.attention.head_count", 4u)
            .Add("llama.feed_forward_length", 128u).Add("llama.block_count", 1u).Add("llama.context_length", 64u).Add("llama.rope.scaling.type", "yarn").Write(yarn);
        var e = Assert.Throws<CheckpointFormatException>(() => ModelCheckpoint.Open(yarn));
        Assert.That(e!.Message, Does.Contain("'yarn'").And.Contain("linear scaling and Llama 3's"));
    }

    /// <summary>
    /// llama.cpp on the same llama3-scaled file: the device's last logits after a 60-token prompt are as
    /// close to llama.cpp's as on the same weights without scaling, far inside the gap the scaling itself
    /// makes (the file without rope_freqs.weight), and the next token is llama.cpp's.
    /// </summary>
    [Test]
    public void LlamaCppAppliesTheSameScalingToTheFile()
    {
        using var temp = new TempFolder();
        RopeScaling scaling = RopeScaling.Llama3(8, 1, 4, 64);
        string scaledFolder = ScaledFolder(temp, scaling), plainFolder = RandomLlamaCheckpoint.WriteFolder(temp.File("plain"), seed: 4096, edgeBlocks: false);
        string scaled = temp.File("scaled.gguf"), plain = temp.File("plain.gguf");
        using (var checkpoint = ModelCheckpoint.Open(scaledFolder))
        {
            GgufWriter.WriteLlama(scaled, checkpoint, TextTokenizer.Load(scaledFolder));
        }
        using (var checkpoint = ModelCheckpoint.Open(plainFolder))
        {
            GgufWriter.WriteLlama(plain, checkpoint, TextTokenizer.Load(plainFolder));
        }
        int[] prompt = [1, .. Enumerable.Range(0, 60).Select(i => 3 + (i * 37 % 500))];
        float[] ours = GgufReadBack.DeviceLastLogits(scaled, prompt, WeightPrecision.F32), oursPlain = GgufReadBack.DeviceLastLogits(plain, prompt, WeightPrecision.F32);
        NativeApi.llama_empty_call();
        float[] theirs = LlamaCppGreedy.LastLogits(scaled, prompt), theirsPlain = LlamaCppGreedy.LastLogits(plain, prompt);
        static double Distance(float[] a, float[] b) => a.Zip(b).Max(p => Math.Abs(p.First - p.Second));
        double gap = Distance(theirs, theirsPlain), distance = Distance(ours, theirs), baseline = Distance(oursPlain, theirsPlain);
        TestContext.Out.WriteLine($"device against llama.cpp {distance:g4} (without the scaling {baseline:g4}); llama.cpp with against without the scaling {gap:g4}");
        Assert.That(gap, Is.GreaterThan(0.05), "the premise: the scaling moves the logits");
        // Both engines' float arithmetic differs by about the same with and without the scaling (measured 0.0024 and
        // the plain file's baseline), a hundredth of what the scaling moves: the divisors are applied alike.
        Assert.That(distance, Is.LessThan(Math.Max(2 * baseline, 1e-3)).And.LessThan(0.05 * gap));
        Assert.That(Array.IndexOf(ours, ours.Max()), Is.EqualTo(Array.IndexOf(theirs, theirs.Max())), "the next token");
    }

    /// <summary>The random checkpoint (Gaussian weights) with <paramref name="scaling"/> in its config.json.</summary>
    private static string ScaledFolder(TempFolder temp, RopeScaling scaling)
    {
        string folder = RandomLlamaCheckpoint.WriteFolder(temp.File($"random-{scaling.Type}"), seed: 4096, edgeBlocks: false);
        File.WriteAllText(Path.Combine(folder, "config.json"), (RandomLlamaCheckpoint.Config with { RopeScaling = scaling }).ToJson());
        return folder;
    }
}
