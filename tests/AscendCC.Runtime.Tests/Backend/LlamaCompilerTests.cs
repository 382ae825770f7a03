using System.Buffers.Binary;
using System.Text.Json;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Tests.Models;
using AscendCC.Tests;
using AscendCC.Tests.TorchLlama;
using AscendCC.TorchSharpBackend;
using NUnit.Framework;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Runtime.Tests.Backend;

/// <summary>
/// Llama-family modules compiled through torch_npu: an independently written TorchSharp Llama with
/// random weights, the shared reference Llama on stories260K, generation, and export.
/// </summary>
public class LlamaCompilerTests
{
    private static readonly ExecutionMode[] Modes = [ExecutionMode.Eager, ExecutionMode.Graph];

    internal static LlamaConfig TinyConfig(bool tied = false) => new()
    {
        Architecture = "LlamaForCausalLM",
        HiddenSize = 64,
        IntermediateSize = 96,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        VocabSize = 100,
        MaxPositionEmbeddings = 64,
        RmsNormEps = 1e-5,
        RopeTheta = 10000,
        TieWordEmbeddings = tied,
        BosTokenId = 1,
    };

    [TestCaseSource(nameof(Modes))]
    public void AnIndependentTorchSharpLlamaGeneratesWhatItsCpuForwardGenerates(ExecutionMode mode)
    {
        manual_seed(3);
        LlamaConfig config = TinyConfig();
        using var model = new TinyCausalLM(config);
        int[] prompt = [1, 17, 42, 5, 88];
        int[] expected = model.GreedyOnCpu(prompt, 20);

        using var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions { Config = config, JitCompile = mode == ExecutionMode.Graph, MaxContext = 64 });
        Assert.That(compiled.SelfCheckMaxDifference, Is.LessThan(1e-3));
        int[] generated = compiled.generate(prompt, 20).ToArray();
        Assert.That(generated, Is.EqualTo(expected));

        // Prefill logits through the Tensor entry point match the module's last position.
        using Tensor ids = tensor(prompt.Select(i => (long)i).ToArray(), [1, prompt.Length]);
        using Tensor cpu = model.call(ids);
        using Tensor device = compiled.forward(ids);
        double diff = (device[0, -1] - cpu[0, -1]).abs().max().item<float>();
        Assert.That(diff, Is.LessThan(1e-3));
    }

    /// <summary>
    /// The compiled model's cache is f32 unless asked; an f16 or bf16 cache passes the self-check with
    /// its widened tolerance, and the device's KV precision is the one asked for.
    /// </summary>
    [TestCase(null, KvCachePrecision.F32)]
    [TestCase(KvCachePrecision.F16, KvCachePrecision.F16)]
    [TestCase(KvCachePrecision.BF16, KvCachePrecision.BF16)]
    public void TheCompiledModelKeepsTheKvCachePrecisionItIsAskedFor(KvCachePrecision? asked, KvCachePrecision expected)
    {
        manual_seed(3);
        LlamaConfig config = TinyConfig();
        using var model = new TinyCausalLM(config);
        using var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions { Config = config, MaxContext = 64, KvCachePrecision = asked });
        Assert.That(compiled.KvCachePrecision, Is.EqualTo(expected));
        Assert.That(compiled.SelfCheckMaxDifference, Is.LessThan(expected == KvCachePrecision.F32 ? 1e-3 : expected == KvCachePrecision.F16 ? 5e-2 : 0.5));
    }

    /// <summary>
    /// The quantized caches on heads of 32 (whole blocks): each passes the self-check with its default
    /// tolerance, and the self-check's difference grows with the cache's step (q8_0 below q4_0).
    /// </summary>
    [Test]
    public void TheQuantizedCachesPassTheSelfCheckWithTheirTolerances()
    {
        LlamaConfig config = TinyConfig() with { NumAttentionHeads = 2, NumKeyValueHeads = 1 };
        double Check(KvCachePrecision kv)
        {
            manual_seed(3);
            using var model = new TinyCausalLM(config);
            using var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions { Config = config, MaxContext = 64, KvCachePrecision = kv });
            Assert.That(compiled.KvCachePrecision, Is.EqualTo(kv));
            return compiled.SelfCheckMaxDifference!.Value;
        }
        double q8 = Check(KvCachePrecision.Q8_0), q4 = Check(KvCachePrecision.Q4_0), f16 = Check(KvCachePrecision.F16);
        Assert.That(f16, Is.LessThan(q8));
        Assert.That(q8, Is.LessThan(q4));
    }

    [TestCaseSource(nameof(Modes))]
    public void ForwardOnTokenIdsReturnsEveryPositionsLogitsLikeTheModule(ExecutionMode mode)
    {
        manual_seed(17);
        LlamaConfig config = TinyConfig();
        using var model = new TinyCausalLM(config);
        // MaxBatchTokens 8: the 5-token prompt is one pass, the 21-token one three (8 + 8 + 5).
        using var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions
        {
            Config = config,
            JitCompile = mode == ExecutionMode.Graph,
            MaxContext = 64,
            MaxBatchTokens = 8,
        });
        var random = new Random(4);
        int[] shortPrompt = [1, 17, 42, 5, 88];
        int[] longPrompt = [1, .. Enumerable.Range(0, 20).Select(_ => random.Next(config.VocabSize))];
        using var noGrad = no_grad();
        foreach (int[] prompt in new[] { shortPrompt, longPrompt })
        {
            using Tensor ids = tensor(prompt.Select(i => (long)i).ToArray(), [1, prompt.Length]);
            using Tensor cpu = model.call(ids);
            using Tensor device = compiled.forward(ids);
            Assert.That(device.shape, Is.EqualTo(new long[] { 1, prompt.Length, config.VocabSize }));
            Assert.That(device.dtype, Is.EqualTo(ScalarType.Float32));
            // Every row must match, not only the last: the rows genuinely differ from one another.
            Assert.That((cpu[0] - cpu[0, -1]).abs().max().item<float>(), Is.GreaterThan(1e-1), "the positions' logits should differ");
            using Tensor perRow = (device - cpu).abs().amax([0L, 2L]);
            float[] rows = perRow.data<float>().ToArray();
            for (int t = 0; t < prompt.Length; t++)
            {
                Assert.That(rows[t], Is.LessThan(1e-4), $"{prompt.Length} tokens, position {t}");
            }
            // The last row also stays what logits() reports.
            using Tensor last = compiled.logits();
            Assert.That((last - cpu[0, -1]).abs().max().item<float>(), Is.LessThan(1e-4));
        }

        // Scoring shares the KV cache and leaves the generation program intact.
        Assert.That(compiled.generate(shortPrompt, 12).ToArray(), Is.EqualTo(model.GreedyOnCpu(shortPrompt, 12)));
    }

    [Test]
    public void EagerAndGraphAgreeOnSampledGeneration()
    {
        manual_seed(5);
        // Untied: a tied random embedding makes the last token dominate its own logit, so every sample repeats it.
        LlamaConfig config = TinyConfig();
        using var model = new TinyCausalLM(config);
        var sampling = new SamplingOptions(Temperature: 1f, TopK: 50, TopP: 0.95f, Seed: 77);
        using var eager = (NpuCausalLM)model.npu(new NpuCompileOptions { Config = config, JitCompile = false });
        using var graph = (NpuCausalLM)model.npu(new NpuCompileOptions { Config = config, JitCompile = true });
        int[] a = eager.generate([1, 2, 3], 24, sampling).ToArray();
        int[] b = graph.generate([1, 2, 3], 24, sampling).ToArray();
        int[] c = graph.generate([1, 2, 3], 24, sampling with { Seed = 78 }).ToArray();
        Assert.That(b, Is.EqualTo(a));
        Assert.That(c, Is.Not.EqualTo(a), "another seed should draw another 24-token sample");
    }

    [Test]
    public void TheSelfCheckRefusesAWrongRopeConvention()
    {
        manual_seed(9);
        LlamaConfig config = TinyConfig();
        using var model = new TinyCausalLM(config);
        var ex = Assert.Throws<NpuSelfCheckException>(() => torch_npu.compile(model, new NpuCompileOptions { Config = config, Rope = RopeConvention.Interleaved }));
        Assert.That(ex!.MaxDifference, Is.GreaterThan(ex.Tolerance));
        Assert.That(ex.Message, Does.Contain("differ").And.Contain("RoPE"));
        using var unchecked_ = torch_npu.compile(model, new NpuCompileOptions { Config = config, Rope = RopeConvention.Interleaved, SelfCheck = false });
        Assert.That(unchecked_.SelfCheckMaxDifference, Is.Null);
    }

    [Test]
    public void AConfigurationThatDoesNotDescribeTheModuleIsRefused()
    {
        LlamaConfig config = TinyConfig();
        using var model = new TinyCausalLM(config);
        Assert.That(Assert.Throws<NpuCompileException>(() => model.npu())!.Message, Does.Contain("NpuCompileOptions.Config"));
        var wrongLayers = Assert.Throws<NpuCompileException>(() => model.npu(new NpuCompileOptions { Config = config with { NumHiddenLayers = 3 } }));
        Assert.That(wrongLayers!.Message, Does.Contain("model.layers.2."));
        var wrongKv = Assert.Throws<NpuCompileException>(() => model.npu(new NpuCompileOptions { Config = config with { NumKeyValueHeads = 4 } }));
        Assert.That(wrongKv!.Message, Does.Contain("k_proj").And.Contain("[32, 64]"));
        var tied = Assert.Throws<NpuCompileException>(() => model.npu(new NpuCompileOptions { Config = config with { TieWordEmbeddings = true } }));
        Assert.That(tied!.Message, Does.Contain("tie_word_embeddings"));
    }

    [Test]
    public void AGenerationSteppedFromManyThreadsReleasesTheModelForTheNextCaller()
    {
        // generate_async resumes the generator on whatever pool thread is free; the model's gate
        // must not belong to the thread that entered it, or the next caller waits forever.
        manual_seed(21);
        LlamaConfig config = TinyConfig();
        using var model = new TinyCausalLM(config);
        // Not `using`: with a thread-owned gate, disposing on this thread would wait forever.
        var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions { Config = config, MaxContext = 64 });
        int[] prompt = [1, 5, 9];
        int[] expected = compiled.generate(prompt, 6).ToArray();

        var steps = compiled.generate(prompt, 6).GetEnumerator();
        var streamed = new List<int>();
        Exception? failure = null;
        void OnOwnThread(Action step)
        {
            var thread = new Thread(() =>
            {
                try { step(); }
                catch (Exception ex) { failure ??= ex; }
            }) { IsBackground = true };
            thread.Start();
            Assert.That(thread.Join(TimeSpan.FromSeconds(30)), Is.True, "a generation step is still waiting for the model after 30 s: the gate is held by a thread that left it");
        }
        for (int i = 0; i < expected.Length + 1; i++)
        {
            OnOwnThread(() =>
            {
                if (steps.MoveNext())
                {
                    streamed.Add(steps.Current);
                }
            });
        }
        OnOwnThread(steps.Dispose);
        Assert.That(failure, Is.Null);
        Assert.That(streamed, Is.EqualTo(expected));

        int[] again = [];
        OnOwnThread(() => again = compiled.generate(prompt, 6).ToArray());
        OnOwnThread(compiled.Dispose);
        Assert.That(failure, Is.Null);
        Assert.That(again, Is.EqualTo(expected));
    }

    [TestCaseSource(nameof(Modes))]
    public void TheReferenceTorchLlamaOnStories260KReproducesLlama2cTokens(ExecutionMode mode)
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs reference = ReferenceOutputs.Load(folder, "once_upon_a_time");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using LlamaForCausalLM model = TorchLlamaLoader.Load(checkpoint);
        using var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions
        {
            ConfigPath = Path.Combine(folder, "config.json"),
            JitCompile = mode == ExecutionMode.Graph,
            MaxContext = 128,
            ResetState = m => ((LlamaForCausalLM)m).ResetCache(),
        });
        Assert.That(compiled.SelfCheckMaxDifference, Is.LessThan(1e-3));
        int[] generated = compiled.generate(reference.PromptTokens, reference.GeneratedTokens.Length).ToArray();
        Assert.That(generated, Is.EqualTo(reference.GeneratedTokens));
    }

    [TestCaseSource(nameof(Modes))]
    public void ForwardOnStories260KReturnsLlama2cLogitsAtEveryPosition(ExecutionMode mode)
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs reference = ReferenceOutputs.Load(folder, "once_upon_a_time");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using LlamaForCausalLM model = TorchLlamaLoader.Load(checkpoint);
        // MaxBatchTokens 24: the prompt and its generated tokens run in three chunks.
        using var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions
        {
            ConfigPath = Path.Combine(folder, "config.json"),
            JitCompile = mode == ExecutionMode.Graph,
            MaxContext = 128,
            MaxBatchTokens = 24,
            ResetState = m => ((LlamaForCausalLM)m).ResetCache(),
        });
        int[] tokens = reference.Steps.Select(s => s.Token).ToArray();
        Assert.That(reference.Steps.Select(s => s.Pos), Is.EqualTo(Enumerable.Range(0, tokens.Length)));
        Assert.That(tokens, Has.Length.GreaterThan(compiled.MaxBatchTokens));
        using Tensor ids = tensor(tokens.Select(i => (long)i).ToArray(), [1, tokens.Length]);
        using Tensor logits = compiled.forward(ids);
        int vocab = compiled.Config.VocabSize;
        Assert.That(logits.shape, Is.EqualTo(new long[] { 1, tokens.Length, vocab }));
        float[] all = logits.data<float>().ToArray();
        for (int t = 0; t < tokens.Length; t++)
        {
            float[] expected = reference.Steps[t].Logits;
            double worst = 0;
            for (int i = 0; i < vocab; i++)
            {
                worst = Math.Max(worst, Math.Abs(all[((long)t * vocab) + i] - expected[i]));
            }
            Assert.That(worst, Is.LessThanOrEqualTo(1e-4), $"{mode} position {t}");
        }
    }

    [Test]
    public async Task TextAndAsyncStreamingAgreeWithTokenGeneration()
    {
        string folder = TestData.RequireModel("stories260K");
        using var checkpoint = ModelCheckpoint.Open(folder);
        using LlamaForCausalLM model = TorchLlamaLoader.Load(checkpoint);
        TextTokenizer tokenizer = TextTokenizer.Load(Path.Combine(folder, "tok512.bin"));
        using var compiled = torch_npu.compile_causal_lm(model, new NpuCompileOptions
        {
            Config = checkpoint.Config,
            MaxContext = 96,
            ResetState = m => ((LlamaForCausalLM)m).ResetCache(),
        });
        IReadOnlyList<int> prompt = tokenizer.Encode("Once upon a time");
        int[] ids = compiled.generate(prompt, 40).ToArray();
        var streamed = new List<int>();
        await foreach (int id in compiled.generate_async(prompt, 40))
        {
            streamed.Add(id);
        }
        Assert.That(streamed, Is.EqualTo(ids));

        string[] pieces = compiled.stream_text(tokenizer, "Once upon a time", 40).ToArray();
        Assert.That(pieces, Has.Length.GreaterThan(1), "text should stream in pieces");
        string text = string.Concat(pieces);
        Assert.That(text, Is.EqualTo(tokenizer.Decode(ids.TakeWhile(i => i != tokenizer.EosId))));
        Assert.That(compiled.generate_text(tokenizer, "Once upon a time", 40), Is.EqualTo(text));
        Assert.That(text, Is.Not.Empty);
    }

    [Test]
    public void ExportWritesAHuggingFaceFolderThatLlamaCheckpointReadsBack()
    {
        manual_seed(13);
        LlamaConfig config = TinyConfig() with { EosTokenIds = [2], TorchDtype = "float32" };
        using var model = new TinyCausalLM(config);
        string folder = Path.Combine(Path.GetTempPath(), "ascendcc-export-" + Guid.NewGuid().ToString("N"));
        try
        {
            ExportedModel exported = torch_npu.save_pretrained(model, folder, config);
            Assert.That(exported.Tensors.Select(t => t.Name), Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal));

            // The file itself: 8-byte little-endian header length, JSON header with sorted names and contiguous offsets.
            byte[] file = File.ReadAllBytes(Path.Combine(folder, "model.safetensors"));
            long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(file);
            using var header = JsonDocument.Parse(file.AsMemory(8, (int)headerLength));
            var entries = header.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__").ToList();
            Assert.That(entries.Select(e => e.Name), Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal));
            long offset = 0;
            foreach (var e in entries)
            {
                long[] span = e.Value.GetProperty("data_offsets").EnumerateArray().Select(v => v.GetInt64()).ToArray();
                Assert.That(span[0], Is.EqualTo(offset), e.Name);
                offset = span[1];
            }
            Assert.That(8 + headerLength + offset, Is.EqualTo(file.Length));

            using var checkpoint = ModelCheckpoint.Open(folder);
            Assert.That(checkpoint.Config with { }, Is.EqualTo(config with { ModelType = "llama", EosTokenIds = checkpoint.Config.EosTokenIds }));
            Assert.That(string.Join(",", checkpoint.Config.EosTokenIds), Is.EqualTo("2"));
            Assert.That(checkpoint.RopeConvention, Is.EqualTo(RopeConvention.Half));
            foreach (var (name, parameter) in model.named_parameters())
            {
                float[] expected = parameter.detach().contiguous().data<float>().ToArray();
                Assert.That(checkpoint.GetTensor(name).ReadFloat32(), Is.EqualTo(expected), name);
            }
            Assert.That(checkpoint.TensorNames, Has.Count.EqualTo(model.named_parameters().Count()));
        }
        finally
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }

    /// <summary>
    /// A Llama written for these tests alone: stateless (each forward recomputes the whole sequence),
    /// rotary angles computed per call, attention spelled out with an explicit causal mask, grouped
    /// key/value heads widened with expand. Only the parameter names follow Hugging Face.
    /// </summary>
    internal sealed class TinyCausalLM : nn.Module<Tensor, Tensor>
    {
        private readonly TinyBackbone model;
        private readonly Linear? lm_head;

        public TinyCausalLM(LlamaConfig config) : base(nameof(TinyCausalLM))
        {
            model = new TinyBackbone(config);
            lm_head = config.TieWordEmbeddings ? null : nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            Tensor h = model.call(input);
            Tensor logits = lm_head is null ? h.matmul(model.Table.t()) : lm_head.call(h);
            return logits.MoveToOuterDisposeScope();
        }

        public int[] GreedyOnCpu(int[] prompt, int count)
        {
            using var noGrad = no_grad();
            var ids = prompt.Select(i => (long)i).ToList();
            for (int i = 0; i < count; i++)
            {
                using var scope = NewDisposeScope();
                Tensor logits = call(tensor(ids.ToArray(), [1, ids.Count]));
                ids.Add(logits.select(1, -1).argmax(-1).item<long>());
            }
            return ids.Skip(prompt.Length).Select(i => (int)i).ToArray();
        }
    }

    private sealed class TinyBackbone : nn.Module<Tensor, Tensor>
    {
        private readonly Embedding embed_tokens;
        private readonly ModuleList<TinyBlock> layers = new();
        private readonly TinyRmsNorm norm;

        public TinyBackbone(LlamaConfig c) : base(nameof(TinyBackbone))
        {
            embed_tokens = nn.Embedding(c.VocabSize, c.HiddenSize);
            for (int i = 0; i < c.NumHiddenLayers; i++)
            {
                layers.Add(new TinyBlock(c));
            }
            norm = new TinyRmsNorm(c.HiddenSize, c.RmsNormEps);
            RegisterComponents();
        }

        public Tensor Table => embed_tokens.weight!;

        public override Tensor forward(Tensor input)
        {
            Tensor x = embed_tokens.call(input);
            for (int i = 0; i < layers.Count; i++)
            {
                x = layers[i].call(x);
            }
            return norm.call(x);
        }
    }

    private sealed class TinyBlock : nn.Module<Tensor, Tensor>
    {
        private readonly TinyAttention self_attn;
        private readonly TinyFeedForward mlp;
        private readonly TinyRmsNorm input_layernorm;
        private readonly TinyRmsNorm post_attention_layernorm;

        public TinyBlock(LlamaConfig c) : base(nameof(TinyBlock))
        {
            self_attn = new TinyAttention(c);
            mlp = new TinyFeedForward(c);
            input_layernorm = new TinyRmsNorm(c.HiddenSize, c.RmsNormEps);
            post_attention_layernorm = new TinyRmsNorm(c.HiddenSize, c.RmsNormEps);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            Tensor afterAttention = self_attn.call(input_layernorm.call(input)).add(input);
            return mlp.call(post_attention_layernorm.call(afterAttention)).add(afterAttention);
        }
    }

    private sealed class TinyRmsNorm : nn.Module<Tensor, Tensor>
    {
        private readonly Parameter weight;
        private readonly double _eps;

        public TinyRmsNorm(int size, double eps) : base(nameof(TinyRmsNorm))
        {
            // Random gains so a dropped or misplaced norm weight changes the logits.
            weight = new Parameter(rand(size) + 0.5);
            _eps = eps;
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) =>
            input.div(input.square().mean([-1L], keepdim: true).add(_eps).sqrt()).mul(weight);
    }

    private sealed class TinyFeedForward : nn.Module<Tensor, Tensor>
    {
        private readonly Linear gate_proj, up_proj, down_proj;

        public TinyFeedForward(LlamaConfig c) : base(nameof(TinyFeedForward))
        {
            gate_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
            up_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
            down_proj = nn.Linear(c.IntermediateSize, c.HiddenSize, hasBias: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            Tensor gate = gate_proj.call(input);
            return down_proj.call(gate.mul(gate.sigmoid()).mul(up_proj.call(input)));
        }
    }

    private sealed class TinyAttention : nn.Module<Tensor, Tensor>
    {
        private readonly Linear q_proj, k_proj, v_proj, o_proj;
        private readonly int _heads, _kvHeads, _headDim;
        private readonly double _theta;

        public TinyAttention(LlamaConfig c) : base(nameof(TinyAttention))
        {
            _heads = c.NumAttentionHeads;
            _kvHeads = c.NumKeyValueHeads;
            _headDim = c.HeadDim;
            _theta = c.RopeTheta;
            q_proj = nn.Linear(c.HiddenSize, _heads * _headDim, hasBias: false);
            k_proj = nn.Linear(c.HiddenSize, _kvHeads * _headDim, hasBias: false);
            v_proj = nn.Linear(c.HiddenSize, _kvHeads * _headDim, hasBias: false);
            o_proj = nn.Linear(_heads * _headDim, c.HiddenSize, hasBias: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            long batch = input.shape[0], seq = input.shape[1];
            // [B, T, H, D] layout throughout; positions are 0..T-1 because the module keeps no cache.
            Tensor q = Rotate(q_proj.call(input).reshape(batch, seq, _heads, _headDim));
            Tensor k = Rotate(k_proj.call(input).reshape(batch, seq, _kvHeads, _headDim));
            Tensor v = v_proj.call(input).reshape(batch, seq, _kvHeads, _headDim);
            int group = _heads / _kvHeads;
            k = k.unsqueeze(3).expand(batch, seq, _kvHeads, group, _headDim).reshape(batch, seq, _heads, _headDim);
            v = v.unsqueeze(3).expand(batch, seq, _kvHeads, group, _headDim).reshape(batch, seq, _heads, _headDim);
            Tensor scores = einsum("bqhd,bkhd->bhqk", q, k).div(Math.Sqrt(_headDim));
            Tensor future = ones(seq, seq, dtype: ScalarType.Bool).triu(1);
            Tensor weights = scores.masked_fill(future, double.NegativeInfinity).softmax(-1);
            Tensor mixed = einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, seq, _heads * _headDim);
            return o_proj.call(mixed);
        }

        private Tensor Rotate(Tensor x)
        {
            long seq = x.shape[1];
            int half = _headDim / 2;
            Tensor exponent = arange(half, dtype: ScalarType.Float64).mul(2.0 / _headDim);
            Tensor frequency = pow(_theta, exponent).reciprocal();
            Tensor angle = arange(seq, dtype: ScalarType.Float64).unsqueeze(1).mul(frequency.unsqueeze(0));
            Tensor cos = angle.cos().to_type(ScalarType.Float32).unsqueeze(0).unsqueeze(2);
            Tensor sin = angle.sin().to_type(ScalarType.Float32).unsqueeze(0).unsqueeze(2);
            Tensor first = x.narrow(-1, 0, half), second = x.narrow(-1, half, half);
            return cat([first.mul(cos).sub(second.mul(sin)), second.mul(cos).add(first.mul(sin))], -1);
        }
    }
}
