using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Programs;
using AscendCC.Tests.TorchLlama;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.Runtime.Tests.Llama;

/// <summary>
/// One Llama decoder block with attention, as a device program, run eagerly (one compileAndExecute per
/// operator through <see cref="NpuRuntime.Execute"/>) and as a loaded model (executeModel) on the same
/// device: a 5-token prefill, then a 1-token decode against the KV cache the prefill filled.
/// <para>
/// Eager and graph mode must agree bit for bit: both launch the same operators with the same
/// arguments on the same AI Core grid, and every kernel's reduction order depends only on the shapes
/// and the grid's core count, never on which cores pick up which blocks.
/// </para>
/// <para>
/// Against the TorchSharp block (tests/Shared/TorchLlama, Hugging Face's rotate_half RoPE) run in
/// float64 on the device's very f32 weights and inputs, the device's float32 arithmetic is the only
/// difference: rounding in dot products of length 64 and 96, exp and rsqrt, and RoPE angles formed in
/// float32 (≤ 1 ulp of positions ≤ 5). With N(0, 0.2²) weights the activations stay O(1), so a few
/// 1e-6 of error is expected; atol 2e-5 + rtol 1e-4 leaves margin, while a wrong position, head
/// mapping or missing residual moves outputs by 1e-2 or more.
/// </para>
/// </summary>
public class TransformerBlockModesTests
{
    private const int Dim = 64, Hidden = 96, Heads = 4, KvHeads = 2, HeadDim = Dim / Heads, MaxContext = 16, MaxTokens = 8;
    private const int QDim = Heads * HeadDim, KvDim = KvHeads * HeadDim;
    private const double Eps = 1e-5, Theta = 10000;
    private const int SlotSeq = 0, SlotStart = 1, SlotSeqDim = 2, SlotSeqHidden = 3, SlotCount = 4;

    private static LlamaConfig Config() => new()
    {
        Architecture = "LlamaForCausalLM",
        HiddenSize = Dim,
        IntermediateSize = Hidden,
        NumHiddenLayers = 1,
        NumAttentionHeads = Heads,
        NumKeyValueHeads = KvHeads,
        VocabSize = 8,
        MaxPositionEmbeddings = MaxContext,
        RmsNormEps = Eps,
        RopeTheta = Theta,
    };

    /// <summary>The block as a program; one program serves prefill and decode (lengths and position in the parameter block).</summary>
    private sealed class Block
    {
        public readonly DeviceProgram Program = new();
        public readonly ProgramBuffer X, Params;
        public readonly Dictionary<string, ProgramBuffer> Weights = new(StringComparer.Ordinal);

        public Block()
        {
            DeviceProgram p = Program;
            ProgramBuffer W(string name, long floats) => Weights[name] = p.Buffer(RegionTag.Weights, name, floats * 4);
            ProgramBuffer Act(string name, long floats, RegionTag tag = RegionTag.Activations) => p.Buffer(tag, name, floats * 4);
            ScalarRef P(int slot) => ScalarRef.Slot(Params, slot);
            ScalarRef I(long v) => ScalarRef.Of(v);
            ScalarRef F(double v) => ScalarRef.Of(v);
            ScalarRef f32 = I(0);

            X = Act("x", MaxTokens * Dim, RegionTag.InputStaging);
            Params = p.Buffer(RegionTag.InputStaging, "params", SlotCount * 8);
            ProgramBuffer attnNorm = W("input_layernorm.weight", Dim), ffnNorm = W("post_attention_layernorm.weight", Dim);
            ProgramBuffer wq = W("self_attn.q_proj.weight", QDim * Dim), wk = W("self_attn.k_proj.weight", KvDim * Dim);
            ProgramBuffer wv = W("self_attn.v_proj.weight", KvDim * Dim), wo = W("self_attn.o_proj.weight", Dim * QDim);
            ProgramBuffer w1 = W("mlp.gate_proj.weight", Hidden * Dim), w3 = W("mlp.up_proj.weight", Hidden * Dim), w2 = W("mlp.down_proj.weight", Dim * Hidden);
            ProgramBuffer xb = Act("xb", MaxTokens * Dim), xb2 = Act("xb2", MaxTokens * Dim);
            ProgramBuffer q = Act("q", MaxTokens * QDim), k = Act("k", MaxTokens * KvDim), v = Act("v", MaxTokens * KvDim), att = Act("att", MaxTokens * QDim);
            ProgramBuffer hb = Act("hb", MaxTokens * Hidden), hb2 = Act("hb2", MaxTokens * Hidden);
            ProgramBuffer kCache = Act("k_cache", KvHeads * MaxContext * HeadDim, RegionTag.KvCache);
            ProgramBuffer vCache = Act("v_cache", KvHeads * MaxContext * HeadDim, RegionTag.KvCache);
            ScalarRef[] noScaling = [I(0), F(0), F(0), F(0), I(0)];

            p.Launch("rms_norm", [X, attnNorm, xb], P(SlotSeq), I(Dim), F(Eps));
            p.Launch("linear", [xb, wq, BufferRef.None, q], P(SlotSeq), I(Dim), I(QDim), f32);
            p.Launch("linear", [xb, wk, BufferRef.None, k], P(SlotSeq), I(Dim), I(KvDim), f32);
            p.Launch("linear", [xb, wv, BufferRef.None, v], P(SlotSeq), I(Dim), I(KvDim), f32);
            p.Launch("rope_half", [q], [P(SlotSeq), I(Heads), I(HeadDim), P(SlotStart), F(Theta), .. noScaling]);
            p.Launch("rope_half", [k], [P(SlotSeq), I(KvHeads), I(HeadDim), P(SlotStart), F(Theta), .. noScaling]);
            p.Launch("kv_cache_write", [k, v, kCache, vCache], P(SlotSeq), P(SlotStart), I(KvHeads), I(HeadDim), I(MaxContext), I(0));
            p.Launch("attention", [q, kCache, vCache, att], P(SlotSeq), P(SlotStart), I(Heads), I(KvHeads), I(HeadDim), I(MaxContext), F(1.0 / Math.Sqrt(HeadDim)), I(0), I(0));
            p.Launch("linear", [att, wo, BufferRef.None, xb2], P(SlotSeq), I(QDim), I(Dim), f32);
            p.Launch("add", [X, xb2, X], P(SlotSeqDim));
            p.Launch("rms_norm", [X, ffnNorm, xb], P(SlotSeq), I(Dim), F(Eps));
            p.Launch("linear_fused", [xb, w1, w3, BufferRef.None, hb, hb2, BufferRef.None], P(SlotSeq), I(Dim), I(Hidden), I(Hidden), I(0), f32);
            p.Launch("silu_mul", [hb, hb2, hb], P(SlotSeqHidden));
            p.Launch("linear", [hb, w2, BufferRef.None, xb2], P(SlotSeq), I(Hidden), I(Dim), f32);
            p.Launch("add", [X, xb2, X], P(SlotSeqDim));
        }
    }

    [Test]
    public void EagerAndGraphModeGiveTheSameBlockOutputAsTorch()
    {
        manual_seed(11);
        LlamaConfig config = Config();
        using var rope = new RotaryEmbedding(HeadDim, MaxContext, Theta);
        using var layer = new LlamaDecoderLayer(config, rope);
        var weights = new Dictionary<string, float[]>(StringComparer.Ordinal);
        using (no_grad())
        {
            foreach (var (name, parameter) in layer.named_parameters())
            {
                // Norm weights away from 1 so a norm that ignored its weight would show.
                using Tensor values = name.EndsWith("layernorm.weight", StringComparison.Ordinal)
                    ? 1 + 0.3 * randn(parameter.shape)
                    : 0.2 * randn(parameter.shape);
                parameter.copy_(values);
                weights[name] = values.data<float>().ToArray();
            }
        }

        float[] prefill = [.. Enumerable.Range(0, 5 * Dim).Select(i => MathF.Sin(0.37f * i) * 1.5f)];
        float[] decode = [.. Enumerable.Range(0, Dim).Select(i => MathF.Cos(0.11f * i + 1))];
        float[][] steps = [prefill, decode];

        var block = new Block();
        Assert.That(weights.Keys, Is.EquivalentTo(block.Weights.Keys), "the program's weights are the module's parameters");
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 64L << 20 }), ownsDevice: true);
        using var eager = new ProgramBinding(runtime, block.Program);
        using var graph = new ProgramBinding(runtime, block.Program);
        foreach (ProgramBinding binding in new[] { eager, graph })
        {
            foreach (var (name, buffer) in block.Weights)
            {
                runtime.CopyToDevice<float>(weights[name], binding[buffer]);
            }
        }
        graph.LoadModel();

        layer.to(ScalarType.Float64);
        int start = 0;
        foreach (float[] input in steps)
        {
            int seq = input.Length / Dim;
            float[] fromEager = RunStep(runtime, eager, block, input, seq, start, eagerMode: true);
            float[] fromGraph = RunStep(runtime, graph, block, input, seq, start, eagerMode: false);
            string step = seq == 1 ? $"decode at {start}" : $"prefill of {seq}";
            Assert.That(fromGraph, Is.EqualTo(fromEager), $"{step}: graph mode differs from eager mode");

            float[] expected = Reference(layer, input, seq);
            AssertClose(fromEager, expected, 2e-5, 1e-4, step);
            start += seq;
        }
        Assert.That(layer.Attention.CachedPositions, Is.EqualTo(6), "the reference saw the prefill and the decode");
    }

    /// <summary>The float64 block on <paramref name="input"/>, continuing its KV cache.</summary>
    private static float[] Reference(LlamaDecoderLayer layer, float[] input, int seq)
    {
        // The reference's KV cache is made with the default dtype on its first call; float64 keeps
        // it from rounding the float64 keys and values (and sdpa needs one dtype throughout).
        ScalarType saved = get_default_dtype();
        set_default_dtype(ScalarType.Float64);
        try
        {
            using Tensor x = tensor(input, [1, seq, Dim]).to_type(ScalarType.Float64);
            using Tensor y = layer.call(x);
            return y.to_type(ScalarType.Float32).data<float>().ToArray();
        }
        finally
        {
            set_default_dtype(saved);
        }
    }

    private static float[] RunStep(NpuRuntime runtime, ProgramBinding binding, Block block, float[] input, int seq, int start, bool eagerMode)
    {
        long[] parameters = [seq, start, (long)seq * Dim, (long)seq * Hidden];
        runtime.CopyToDevice<long>(parameters, binding[block.Params]);
        runtime.CopyToDevice<float>(input, binding[block.X]);
        binding.Run(eager: eagerMode);
        runtime.Synchronize();
        var output = new float[seq * Dim];
        runtime.CopyToHost<float>(binding[block.X], 0, output);
        return output;
    }

    private static void AssertClose(float[] actual, float[] expected, double atol, double rtol, string what)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), what);
        double worst = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double error = Math.Abs(actual[i] - (double)expected[i]);
            worst = Math.Max(worst, error);
            Assert.That(error, Is.LessThanOrEqualTo(atol + rtol * Math.Abs(expected[i])),
                $"{what}: element {i} is {actual[i]:R}, torch gives {expected[i]:R}");
        }
        TestContext.Out.WriteLine($"{what}: max |device - torch float64| = {worst:E2}");
    }
}
