using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Tests;
using LLama;
using LLama.Native;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// <see cref="CheckpointPrecisions.Stored"/>: the deployment precision a checkpoint's storage suggests,
/// on llama.cpp's own files of every family (llama_model_quantize of an F32 GGUF of the random
/// checkpoint, whose widths are whole 256-blocks) and on files <see cref="GgufWriter"/> writes.
/// </summary>
[NonParallelizable]
public class StoredPrecisionTests
{
    [TestCase(LLamaFtype.MOSTLY_Q8_0, WeightPrecision.Q8_0)]
    [TestCase(LLamaFtype.MOSTLY_Q4_0, WeightPrecision.Q4_0)]
    [TestCase(LLamaFtype.MOSTLY_Q4_K_M, WeightPrecision.Q4_K)]
    [TestCase(LLamaFtype.MOSTLY_Q4_K_S, WeightPrecision.Q4_K)]
    [TestCase(LLamaFtype.MOSTLY_Q5_K_M, WeightPrecision.Q8_0)]
    [TestCase(LLamaFtype.MOSTLY_Q6_K, WeightPrecision.Q8_0)]
    [TestCase(LLamaFtype.MOSTLY_Q5_0, WeightPrecision.Q8_0)]
    [TestCase(LLamaFtype.MOSTLY_Q4_1, WeightPrecision.Q4_K)]
    [TestCase(LLamaFtype.MOSTLY_Q3_K_M, WeightPrecision.Q4_K)]
    [TestCase(LLamaFtype.MOSTLY_Q2_K, WeightPrecision.Q4_K)]
    [TestCase(LLamaFtype.MOSTLY_IQ4_XS, WeightPrecision.Q4_K)]
    [TestCase(LLamaFtype.MOSTLY_F16, WeightPrecision.F16)]
    [TestCase(LLamaFtype.ALL_F32, WeightPrecision.F32)]
    public void LlamaCppsFilesRunInTheirOwnPrecision(LLamaFtype ftype, WeightPrecision expected)
    {
        using var temp = new TempFolder();
        string folder = RandomLlamaCheckpoint.WriteFolder(temp.File("random"), seed: 4096, edgeBlocks: false);
        string f32Path = temp.File("random-f32.gguf"), path = temp.File($"random-{ftype}.gguf");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            Assert.That(CheckpointPrecisions.Stored(checkpoint), Is.EqualTo(WeightPrecision.F32), "an F32 safetensors folder");
            GgufWriter.WriteLlama(f32Path, checkpoint, TextTokenizer.Load(folder));
        }
        NativeApi.llama_empty_call();
        Assert.That(LLamaQuantizer.Quantize(f32Path, path, ftype, nthread: 2), Is.True, "llama_model_quantize");
        using var quantized = ModelCheckpoint.Open(path);
        WeightPrecision stored = CheckpointPrecisions.Stored(quantized);
        Assert.That(stored, Is.EqualTo(expected));
        // What stays wider under the pick: only a 4-bit pick keeps anything, and only what the file stores wider.
        IReadOnlyDictionary<string, WeightPrecision> kept = CheckpointPrecisions.For(quantized, stored);
        Assert.That(kept.Keys.Select(n => quantized.GetTensor(n).StoredGgufType),
            Is.All.AnyOf(GgufTensorType.Q5_0, GgufTensorType.Q5_1, GgufTensorType.Q5_K, GgufTensorType.Q6_K, GgufTensorType.Q8_0));
        if (ftype == LLamaFtype.MOSTLY_Q4_K_M)
        {
            Assert.That(kept, Is.Not.Empty, "a Q4_K_M file's Q6_K matrices");
        }
    }

    /// <summary>
    /// A pick steps wider while a matrix's rows are not whole blocks of it: stories260K written in Q8_0
    /// keeps its 172-wide w2 (down_proj) in F32 (<see cref="GgufWriter"/> cannot block it), and Q8_0 cannot
    /// hold that matrix on the device either, so the file runs in F32. A Q4_K file of the random
    /// checkpoint with an MLP of 96 (whole 32-blocks, not 256) stores that down_proj in Q8_0, which a
    /// Q4_K deployment keeps, so it stays Q4_K. A BF16 file stays BF16.
    /// </summary>
    [Test]
    public void APickThatAMatrixWidthCannotHoldStepsWider()
    {
        using var temp = new TempFolder();
        string stories = TestData.RequireModel("stories260K");
        string q8 = temp.File("stories-q8_0.gguf");
        using (var checkpoint = ModelCheckpoint.Open(stories))
        {
            GgufWriter.WriteLlama(q8, checkpoint, TextTokenizer.Load(stories), GgufTensorType.Q8_0);
        }
        using (var file = ModelCheckpoint.Open(q8))
        {
            Assert.That(file.GetTensor("model.layers.0.mlp.up_proj.weight").StoredGgufType, Is.EqualTo(GgufTensorType.Q8_0), "the premise: most of it is Q8_0");
            Assert.That(CheckpointPrecisions.Stored(file), Is.EqualTo(WeightPrecision.F32));
            Assert.That(CheckpointPrecisions.Misfit(file.Config, WeightPrecision.Q8_0), Is.EqualTo(("model.layers.0.mlp.down_proj.weight", 172L, 32)));
            Assert.That(CheckpointPrecisions.Misfit(file.Config, WeightPrecision.Q4_K), Is.EqualTo(("model.layers.0.self_attn.q_proj.weight", 64L, 256)));
            Assert.That(CheckpointPrecisions.Misfit(file.Config, WeightPrecision.BF16), Is.Null);
            Assert.That(CheckpointPrecisions.Fitting(file), Is.EqualTo(new[] { WeightPrecision.BF16, WeightPrecision.F16, WeightPrecision.F32 }));
            Assert.That(CheckpointPrecisions.Refusal(file, WeightPrecision.Q8_0),
                Is.EqualTo("'model.layers.0.mlp.down_proj.weight' has rows of 172 weights, not whole blocks of 32; the precisions that hold every matrix: bf16, f16, f32"));
            Assert.That(CheckpointPrecisions.Refusal(file, WeightPrecision.BF16), Is.Null);
        }

        // BF16 as stored (LLamaSharp's quantizer does not write BF16; the runtime's writer does).
        string bf16 = temp.File("random-bf16.gguf");
        string random = RandomLlamaCheckpoint.WriteFolder(temp.File("random"), seed: 5, edgeBlocks: false);
        using (var checkpoint = ModelCheckpoint.Open(random))
        {
            GgufWriter.WriteLlama(bf16, checkpoint, TextTokenizer.Load(random), GgufTensorType.BF16);
        }
        using (var file = ModelCheckpoint.Open(bf16))
        {
            Assert.That(CheckpointPrecisions.Stored(file), Is.EqualTo(WeightPrecision.BF16));
        }

        string folder = temp.File("narrow");
        Directory.CreateDirectory(folder);
        LlamaConfig narrow = RandomLlamaCheckpoint.Config with { IntermediateSize = 96 };
        var rng = new Random(7);
        var tensors = narrow.ExpectedTensors().Select(e => (e.Name, TensorDType.F32, e.Shape,
            TensorData.FromFloat32(e.Name, e.Shape, [.. Enumerable.Range(0, (int)e.Shape.Aggregate(1L, (a, b) => a * b)).Select(_ => (float)(RandomLlamaCheckpoint.Gaussian(rng) * 0.02))]).Bytes.ToArray()));
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), tensors.OrderBy(t => t.Name, StringComparer.Ordinal));
        File.WriteAllText(Path.Combine(folder, "config.json"), narrow.ToJson());
        File.Copy(Path.Combine(stories, "tokenizer.model"), Path.Combine(folder, "tokenizer.model"));
        string q4k = temp.File("narrow-q4_k.gguf");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            GgufWriter.WriteLlama(q4k, checkpoint, TextTokenizer.Load(folder), GgufTensorType.Q4_K);
        }
        using (var file = ModelCheckpoint.Open(q4k))
        {
            Assert.That(file.GetTensor("model.layers.0.self_attn.q_proj.weight").StoredGgufType, Is.EqualTo(GgufTensorType.Q4_K));
            Assert.That(file.GetTensor("model.layers.0.mlp.down_proj.weight").StoredGgufType, Is.EqualTo(GgufTensorType.Q8_0), "the writer keeps the 96-wide matrix in Q8_0");
            // That matrix alone cannot be Q4_K, but the file keeps it wider, so the file runs in Q4_K.
            Assert.That(CheckpointPrecisions.Misfit(file.Config, WeightPrecision.Q4_K), Is.EqualTo(("model.layers.0.mlp.down_proj.weight", 96L, 256)));
            Assert.That(CheckpointPrecisions.Misfit(file.Config, WeightPrecision.Q4_K, CheckpointPrecisions.For(file, WeightPrecision.Q4_K)), Is.Null);
            Assert.That(CheckpointPrecisions.Stored(file), Is.EqualTo(WeightPrecision.Q4_K));
            Assert.That(CheckpointPrecisions.Fitting(file), Has.Count.EqualTo(6));
            // And the loader agrees: the pick loads and runs.
            using var runtime = new AscendCC.Runtime.Acl.NpuRuntime(new AscendCC.Device.NpuDevice(new AscendCC.Device.NpuDeviceOptions { HbmCapacity = 1L << 28 }), ownsDevice: true);
            using var model = CausalLM.Load(runtime, file, new CausalLMOptions { MaxContext = 64, WeightPrecision = CheckpointPrecisions.Stored(file) });
            Assert.That(model.Layout.WeightPrecisions["model.layers.0.mlp.down_proj.weight"], Is.EqualTo(WeightPrecision.Q8_0));
            Assert.That(model.ForwardAllLogits([1, 403, 407], 0), Is.All.Matches<float>(float.IsFinite));
        }
        // A 4-bit deployment keeps the embedding and the classifier in Q8_0 (blocks of 32): 288-wide rows fit
        // them, so the first matrix a Q4_K deployment cannot hold is the first layer's q_proj, not the embedding.
        LlamaConfig wide = RandomLlamaCheckpoint.Config with { HiddenSize = 288 };
        Assert.That(CheckpointPrecisions.Misfit(wide, WeightPrecision.Q4_K), Is.EqualTo(("model.layers.0.self_attn.q_proj.weight", 288L, 256)));
        Assert.That(CheckpointPrecisions.Misfit(wide, WeightPrecision.Q4_0), Is.Null);
    }
}
