using AscendCC.Attacks;
using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Llama;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Tests;
using LLama;
using LLama.Native;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// Qwen3 (Qwen3ForCausalLM; GGUF architecture "qwen3", dense): the Llama block with an RMSNorm over each
/// head of q and of k before RoPE (q_norm, k_norm), no biases, rotate_half RoPE, and — as every Qwen3
/// release — a head_dim that is not hidden_size / num_attention_heads (here 96 against 256 / 4). A random
/// Qwen3 runs the same from its folder and from the GGUF written from it; llama.cpp, an independent
/// implementation, loads that GGUF as a qwen3 and decodes the device's greedy tokens with logits as close
/// as on a Llama; the norms are applied (the same matrices without them move the logits far more); CC on
/// gives CC off's tokens; configurations this runtime does not run are refused naming the field.
/// </summary>
[NonParallelizable]
public class Qwen3Tests
{
    private static readonly LlamaConfig Config = RandomLlamaCheckpoint.Config with
    {
        Architecture = LlamaConfig.Qwen3Architecture,
        ModelType = "qwen3",
        QkNorm = true,
        ExplicitHeadDim = 96,
        RopeTheta = 1000000,
    };

    /// <summary>The same matrices as a Llama: no q/k norms.</summary>
    private static readonly LlamaConfig WithoutNorms = Config with { Architecture = "LlamaForCausalLM", ModelType = "llama", QkNorm = false };

    /// <summary>
    /// Writes a folder of <paramref name="config"/> with stories260K's tokenizer: each tensor drawn from a
    /// generator seeded by its name, so two configurations share the tensors they both have. Matrices are
    /// Gaussian of spread 1/√fan-in, the layer norms 1, Qwen3's q/k norm weights 1 + 0.5·N(0, 1) (trained
    /// ones are far from 1, and equal weights would hide a head read with the wrong stride).
    /// </summary>
    private static string WriteFolder(string folder, LlamaConfig config) => RandomLlamaCheckpoint.WriteFolder(folder, config, (name, shape) =>
    {
        var rng = new Random(name.Aggregate(17, (h, c) => unchecked((h * 31) + c)));
        int count = (int)shape.Aggregate(1L, (x, y) => x * y);
        bool headNorm = name.EndsWith("q_norm.weight", StringComparison.Ordinal) || name.EndsWith("k_norm.weight", StringComparison.Ordinal);
        bool norm = shape.Length == 1 && !headNorm;
        return [.. Enumerable.Range(0, count).Select(_ => norm ? 1f
            : headNorm ? (float)(1 + (0.5 * RandomLlamaCheckpoint.Gaussian(rng)))
            : (float)(RandomLlamaCheckpoint.Gaussian(rng) / Math.Sqrt(shape[^1])))];
    });

    private static readonly int[] Prompt = [1, .. Enumerable.Range(0, 24).Select(i => 3 + (i * 37 % 500))];

    private static double Distance(float[] a, float[] b) => a.Zip(b).Max(p => Math.Abs(p.First - p.Second));

    [Test]
    public void AQwen3RunsFromItsFolderAndItsGgufAsLlamaCppRunsIt()
    {
        using var temp = new TempFolder();
        string folder = WriteFolder(temp.File("qwen3"), Config), plain = WriteFolder(temp.File("as-llama"), WithoutNorms);
        string gguf = temp.File("qwen3.gguf");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            Assert.That(checkpoint.Config, Is.EqualTo(Config).Using<ModelConfig>((a, b) => a.ToJson() == b.ToJson()), "config.json round trip");
            Assert.That(checkpoint.TensorNames, Does.Contain(LlamaTensorNames.KNorm(1)));
            GgufWriter.WriteLlama(gguf, checkpoint, TextTokenizer.Load(folder));
        }
        using (var file = GgufFile.Open(gguf))
        {
            Assert.That(file.Metadata.GetString("general.architecture"), Is.EqualTo("qwen3"));
            Assert.That(file.Metadata.GetInt32("qwen3.attention.key_length"), Is.EqualTo(96));
            Assert.That(file.FindTensor("blk.1.attn_q_norm.weight")!.Dimensions, Is.EqualTo(new long[] { 96 }));
            Assert.That(file.FindTensor("blk.0.attn_q.weight")!.Dimensions, Is.EqualTo(new long[] { 256, 4 * 96 }), "GGUF lists dimensions innermost first");
        }
        using (var checkpoint = ModelCheckpoint.Open(gguf))
        {
            Assert.That(checkpoint.RopeConvention, Is.EqualTo(RopeConvention.Half), "a qwen3 GGUF's q/k rows are not permuted");
            var config = (LlamaConfig)checkpoint.Config;
            Assert.That(config.QkNorm && config.Architecture == LlamaConfig.Qwen3Architecture && config.HeadDim == 96 && !config.QkvBias, Is.True, config.ToJson());
        }

        float[] fromFolder = GgufReadBack.DeviceLastLogits(folder, Prompt, WeightPrecision.F32);
        float[] fromFile = GgufReadBack.DeviceLastLogits(gguf, Prompt, WeightPrecision.F32);
        float[] unnormed = GgufReadBack.DeviceLastLogits(plain, Prompt, WeightPrecision.F32);
        Assert.That(Distance(fromFile, fromFolder), Is.LessThan(1e-3), "the GGUF's logits are the folder's");

        NativeApi.llama_empty_call();
        float[] theirs = LlamaCppGreedy.LastLogits(gguf, Prompt);
        double distance = Distance(fromFile, theirs), norms = Distance(fromFile, unnormed);
        TestContext.Out.WriteLine($"device against llama.cpp {distance:g4}; without the q/k norms the device's logits move by {norms:g4}");
        Assert.That(norms, Is.GreaterThan(0.5), "the premise: the q/k norms matter");
        Assert.That(distance, Is.LessThan(0.01 * norms));

        // Greedy decoding from the same prompt: llama.cpp's tokens, step for step.
        int[] ours;
        using (var checkpoint = ModelCheckpoint.Open(gguf))
        using (var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true))
        using (var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 128, WeightPrecision = WeightPrecision.F32 }))
        {
            ours = [.. model.Generate(Prompt, 48, stopTokens: [])];
        }
        var parameters = new LLama.Common.ModelParams(gguf) { ContextSize = 128, BatchSize = 128, GpuLayerCount = 0, Threads = 2 };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        List<int> llamaCpp = LlamaCppGreedy.Generate(context, Prompt, 48);
        Assert.That(ours, Is.EqualTo(llamaCpp), "48 greedy tokens");
        Assert.That(ours.Distinct().Count(), Is.GreaterThan(8), "the premise: a generation that does not repeat one token");
    }

    /// <summary>
    /// Q8_0 and Q4_0 on the device (the head norms stay F32): the quantized run stays the Qwen3 it
    /// quantizes — its logits are within the format's rounding of the F32 run's, and much nearer to them
    /// than to those of the same matrices without the q/k norms.
    /// </summary>
    [TestCase(WeightPrecision.Q8_0, 0.1)]
    [TestCase(WeightPrecision.Q4_0, 0.5)]
    public void AQwen3RunsInTheQuantizedFormats(WeightPrecision precision, double share)
    {
        using var temp = new TempFolder();
        string folder = WriteFolder(temp.File("qwen3"), Config), plain = WriteFolder(temp.File("as-llama"), WithoutNorms);
        float[] f32 = GgufReadBack.DeviceLastLogits(folder, Prompt, WeightPrecision.F32);
        float[] quantized = GgufReadBack.DeviceLastLogits(folder, Prompt, precision);
        float[] unnormed = GgufReadBack.DeviceLastLogits(plain, Prompt, WeightPrecision.F32);
        double error = Distance(quantized, f32), fromUnnormed = Distance(quantized, unnormed);
        TestContext.Out.WriteLine($"{precision} against F32 {error:g4}; against the matrices without q/k norms {fromUnnormed:g4}");
        Assert.That(error, Is.GreaterThan(0), "the premise: the format rounds");
        Assert.That(error, Is.LessThan(share * fromUnnormed));
    }

    /// <summary>A confidential Qwen3 (package, sealed prompt and tokens; the head norms in the measured graph) generates CC off's tokens.</summary>
    [TestCase(ExecutionMode.Graph)]
    [TestCase(ExecutionMode.Eager)]
    public void AConfidentialQwen3GeneratesThePlaintextTokens(ExecutionMode mode)
    {
        using var temp = new TempFolder();
        string folder = WriteFolder(temp.File("qwen3"), Config);
        var options = new TestbedOptions { Mode = mode, MaxContext = 128, MaxBatchTokens = 8 };
        int[] confidential;
        using (Testbed bed = Testbed.FromCheckpoint(folder, options))
        using (CausalLM model = bed.Load())
        {
            Assert.That(model.Layout.Program.Buffers.Count(b => b.Name.EndsWith("q_norm.weight", StringComparison.Ordinal)), Is.EqualTo(Config.NumHiddenLayers));
            confidential = bed.Generate(model, Prompt, 24);
        }
        using (Testbed bed = Testbed.FromCheckpoint(folder, options with { CcMode = CcMode.Off }))
        using (CausalLM model = bed.LoadPlaintext())
        {
            Assert.That(confidential, Is.EqualTo(model.Generate(Prompt, 24, stopTokens: []).ToArray()));
        }
    }

    /// <summary>
    /// Three Qwen3 sequences decoded together in one batched program (the head norms over every row of a
    /// pass, whichever sequence it belongs to) each give the single-sequence program's greedy tokens.
    /// </summary>
    [Test]
    public void Qwen3SequencesInOneBatchGiveTheSingleSequenceTokens()
    {
        using var temp = new TempFolder();
        using var checkpoint = ModelCheckpoint.Open(WriteFolder(temp.File("qwen3"), Config));
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        int[][] prompts = [Prompt, [1, 17, 400, 33], [.. Prompt.Reverse()]];
        int[][] expected;
        using (var single = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 96, WeightPrecision = WeightPrecision.F32 }))
        {
            expected = [.. prompts.Select(p => single.Generate(p, 32, stopTokens: []).ToArray())];
        }
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 96, WeightPrecision = WeightPrecision.F32, MaxSequences = 3, MaxBatchTokens = 16 });
        CausalLMBatch batch = model.CreateBatch();
        BatchSequence[] together = [.. prompts.Select(p => batch.Add(p, 32, stopTokens: []))];
        for (int steps = 0; batch.Count > 0; steps++)
        {
            batch.Step();
            Assert.That(steps, Is.LessThan(1000), "the batch does not finish");
        }
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.That(together[i].Tokens, Is.EqualTo(expected[i]), $"sequence {i}");
        }
    }

    /// <summary>
    /// Two data owners decoded together in one confidential batched Qwen3 program (each in its own KV-cache
    /// slot, the head norms over every row of a pass) each get, from records only they open, the tokens the
    /// plaintext single-sequence program gives their prompt.
    /// </summary>
    [Test]
    public void TwoDataOwnersInOneConfidentialQwen3BatchGetThePlaintextTokens()
    {
        using var temp = new TempFolder();
        string folder = WriteFolder(temp.File("qwen3"), Config);
        int[][] prompts = [Prompt, [1, 17, 400, 33]];
        var options = new TestbedOptions { MaxContext = 96, MaxBatchTokens = 8, MaxSequences = 2 };
        int[][] expected;
        using (Testbed plain = Testbed.FromCheckpoint(folder, options with { CcMode = CcMode.Off, MaxSequences = 1 }))
        using (CausalLM single = plain.LoadPlaintext())
        {
            expected = [.. prompts.Select(p => single.Generate(p, 16, stopTokens: []).ToArray())];
        }
        using Testbed bed = Testbed.FromCheckpoint(folder, options);
        using CausalLM model = bed.Load();
        SealedBatch batch = model.CreateSealedBatch();
        var owners = new List<(DataOwnerSession Owner, SealedSequence Sequence, List<int> Got)>();
        try
        {
            foreach (int[] prompt in prompts)
            {
                (DataOwnerSession owner, int session) = bed.OpenDataOwner();
                owners.Add((owner, batch.Add(session, owner.EncryptPrompt(prompt), prompt.Length, 16), []));
            }
            for (int steps = 0; batch.Count > 0; steps++)
            {
                foreach ((SealedSequence s, byte[] record) in batch.Step())
                {
                    var party = owners.Single(o => o.Sequence == s);
                    party.Got.Add(party.Owner.DecryptToken(record).TokenId);
                }
                Assert.That(steps, Is.LessThan(1000), "the batch does not finish");
            }
            for (int i = 0; i < prompts.Length; i++)
            {
                Assert.That(owners[i].Got, Is.EqualTo(expected[i]), $"data owner {i}");
            }
        }
        finally
        {
            foreach (var party in owners)
            {
                party.Owner.Dispose();
            }
        }
    }

    [Test]
    public void ConfigurationsThisRuntimeDoesNotRunAreRefused()
    {
        string qwen = Config.ToJson();
        Assert.That(qwen, Does.Contain("\"model_type\": \"qwen3\"").And.Contain("\"head_dim\": 96"), "the premise");
        var e = Assert.Throws<CheckpointFormatException>(() => LlamaConfig.Parse(qwen.Replace("\"use_sliding_window\": false", "\"use_sliding_window\": true", StringComparison.Ordinal)));
        Assert.That(e!.Message, Does.Contain("use_sliding_window"));
        // Qwen3 writes sliding_window (null or a number) beside use_sliding_window false: no window then.
        var parsed = LlamaConfig.Parse(qwen.Replace("\"use_sliding_window\": false", "\"use_sliding_window\": false, \"sliding_window\": 4096", StringComparison.Ordinal));
        Assert.That(parsed.SlidingWindow, Is.Null);
        Assert.That(parsed.QkNorm, Is.True);
        // Qwen3's attention_bias would bias o_proj as well as q, k and v: not added here, so refused.
        e = Assert.Throws<CheckpointFormatException>(() => LlamaConfig.Parse(qwen.Replace("\"model_type\": \"qwen3\"", "\"model_type\": \"qwen3\", \"attention_bias\": true", StringComparison.Ordinal)));
        Assert.That(e!.Message, Does.Contain("attention_bias"));
        e = Assert.Throws<CheckpointFormatException>(() => (Config with { QkNorm = false }).Validate());
        Assert.That(e!.Message, Does.Contain("q/k norms are off").And.Contain(LlamaConfig.Qwen3Architecture));
        e = Assert.Throws<CheckpointFormatException>(() => (WithoutNorms with { QkNorm = true }).Validate());
        Assert.That(e!.Message, Does.Contain("only Qwen3"));
    }

    /// <summary>A Qwen3 checkpoint that lacks its head norms is refused naming the tensor when it is opened, before anything reaches a device.</summary>
    [Test]
    public void AQwen3WithoutItsHeadNormsIsRefusedNamingTheTensor()
    {
        using var temp = new TempFolder();
        string folder = WriteFolder(temp.File("qwen3"), Config), plain = WriteFolder(temp.File("as-llama"), WithoutNorms);
        // The Llama folder's weights under the Qwen3 config: every matrix there, the head norms missing.
        File.Copy(Path.Combine(folder, "config.json"), Path.Combine(plain, "config.json"), overwrite: true);
        var e = Assert.Throws<CheckpointFormatException>(() => ModelCheckpoint.Open(plain).Dispose());
        Assert.That(e!.Message, Does.Contain("model.layers.0.self_attn.q_norm.weight").And.Contain("missing"));
    }
}
