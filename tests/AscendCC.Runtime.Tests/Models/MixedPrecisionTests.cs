using AscendCC.Attacks;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Programs;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// Mixed deployments (<see cref="CausalLMOptions.MatrixPrecisions"/>, <see cref="ModelDeployment.MatrixPrecisions"/>):
/// some matrices kept in another precision than the deployment's, as llama.cpp's Q4_K_M files keep
/// attn_v and ffn_down of some layers in Q6_K. The program launches each matrix with its own element
/// type; the map is in the measurement, the descriptor and the package. (The Q4_K_M file itself:
/// <see cref="Q4_KLlamaCppTests"/>.)
/// </summary>
public class MixedPrecisionTests
{
    private const string V1 = "model.layers.1.self_attn.v_proj.weight", Down1 = "model.layers.1.mlp.down_proj.weight", K1 = "model.layers.1.self_attn.k_proj.weight";

    /// <summary>Layer 1's v in F16 and its down projection in BF16, everything else Q8_0 (every width of the tiny model is whole blocks of 32).</summary>
    private static readonly IReadOnlyDictionary<string, WeightPrecision> Mixed = new Dictionary<string, WeightPrecision> { [V1] = WeightPrecision.F16, [Down1] = WeightPrecision.BF16 };

    private static NpuRuntime NewRuntime() => new(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);

    [Test]
    public void EachMatrixIsLaunchedWithItsOwnElementType()
    {
        LlamaConfig config = TinyLlama.Config();
        CausalLMProgram program = CausalLMProgram.Build(config, RopeConvention.Half, 32, 4, WeightPrecision.Q8_0, matrixPrecisions: Mixed);
        Assert.That(program.WeightPrecisions[V1], Is.EqualTo(WeightPrecision.F16));
        Assert.That(program.WeightPrecisions[Down1], Is.EqualTo(WeightPrecision.BF16));
        Assert.That(program.WeightPrecisions[K1], Is.EqualTo(WeightPrecision.Q8_0));
        Assert.That(program.Weights[V1].Bytes, Is.EqualTo(16L * 32 * 2), "v_proj [16 × 32] in f16");
        Assert.That(program.Weights[K1].Bytes, Is.EqualTo(16L * 32 / 32 * 34), "k_proj in Q8_0");

        // The op reading a matrix carries that matrix's type as its dtype scalar (the last one of linear and linear_fused).
        long TypeOf(string weight) => (long)program.Program.Ops.Single(o => o.Args.Any(a => a.Buffer?.Name == weight)).Scalars[^1].Value;
        Assert.That(TypeOf(V1), Is.EqualTo((long)WeightPrecision.F16));
        Assert.That(TypeOf(Down1), Is.EqualTo((long)WeightPrecision.BF16));
        Assert.That(TypeOf(K1), Is.EqualTo((long)WeightPrecision.Q8_0));
        // Layer 0's q, k and v share one launch; layer 1's v leaves it, q and k still share theirs.
        ProgramOp Reading(string weight) => program.Program.Ops.Single(o => o.Args.Any(a => a.Buffer?.Name == weight));
        Assert.That(Reading("model.layers.0.self_attn.q_proj.weight"), Is.SameAs(Reading("model.layers.0.self_attn.v_proj.weight")));
        Assert.That(Reading("model.layers.1.self_attn.q_proj.weight"), Is.SameAs(Reading(K1)));
        Assert.That(Reading(V1).Operator, Is.EqualTo("linear"));

        // Without the map, the same program as before mixed deployments existed: the map changes only what it names.
        byte[] plain = CausalLMProgram.Build(config, RopeConvention.Half, 32, 4, WeightPrecision.Q8_0).Program.Measure();
        Assert.That(CausalLMProgram.Build(config, RopeConvention.Half, 32, 4, WeightPrecision.Q8_0, matrixPrecisions: new Dictionary<string, WeightPrecision>()).Program.Measure(),
            Is.EqualTo(plain));
        Assert.That(program.Program.Measure(), Is.Not.EqualTo(plain));
    }

    /// <summary>
    /// F16 and BF16 matrices have the same size, so only the launches' element type tells them apart:
    /// two maps that differ only there measure differently.
    /// </summary>
    [Test]
    public void SwappingTwoTypesOfTheSameSizeChangesTheMeasurement()
    {
        LlamaConfig config = TinyLlama.Config();
        byte[] Measure(WeightPrecision v) => new ModelDeployment(config, RopeConvention.Half, 32, 4, WeightPrecision.Q8_0,
            MatrixPrecisions: new Dictionary<string, WeightPrecision> { [V1] = v }).Measure(new byte[] { 1, 2, 3 }, "tiny");
        Assert.That(Measure(WeightPrecision.F16), Is.Not.EqualTo(Measure(WeightPrecision.BF16)));
        Assert.That(Measure(WeightPrecision.F16), Is.EqualTo(Measure(WeightPrecision.F16)), "deterministic");
    }

    /// <summary>
    /// The device reads each matrix as its own type: the mixed model's greedy tokens are those of an F32
    /// model holding the values each type keeps (the only other difference, the Q8_0 matrices' int8
    /// activations, moves this tiny model's logits far less than its top-two margins). Reading the F16
    /// v projection as BF16 (same size) changes them: see the hand check in docs/mutation-testing.md.
    /// </summary>
    [Test]
    public void AMixedDeploymentGeneratesWhatItsMatricesDequantizedGive()
    {
        LlamaConfig config = TinyLlama.Config();
        Func<string, TensorData> weights = TinyLlama.Weights(config, 7);
        int[] prompt = [1, 5, 9, 13];
        int[] Generate(CausalLMOptions options, Func<string, TensorData> w)
        {
            using NpuRuntime runtime = NewRuntime();
            using CausalLM model = CausalLM.Load(runtime, config, RopeConvention.Half, w, options with { MaxContext = 32 });
            return [.. model.Generate(prompt, 12, stopTokens: [])];
        }
        // The mixed model on the device against an F32 model whose matrices are the mixed model's
        // values: the F16 and BF16 matrices rounded to those types, the rest Q8_0-rounded.
        Func<string, TensorData> rounded = name =>
        {
            TensorData t = weights(name);
            WeightPrecision kept = Mixed.GetValueOrDefault(name, t.Shape.Count == 2 ? WeightPrecision.Q8_0 : WeightPrecision.F32);
            return TensorData.FromFloat32(name, t.Shape, RoundTrip(t, kept));
        };
        int[] mixed = Generate(new CausalLMOptions { WeightPrecision = WeightPrecision.Q8_0, MatrixPrecisions = Mixed }, weights);
        int[] exact = Generate(new CausalLMOptions { WeightPrecision = WeightPrecision.F32 }, rounded);
        Assert.That(mixed, Is.EqualTo(exact));
    }

    /// <summary>Values of <paramref name="t"/> as a matrix kept in <paramref name="precision"/> holds them.</summary>
    private static float[] RoundTrip(TensorData t, WeightPrecision precision)
    {
        float[] values = t.ToFloat32();
        switch (precision)
        {
            case WeightPrecision.F16:
                return [.. values.Select(v => (float)(Half)v)];
            case WeightPrecision.BF16:
                byte[] bf16 = WeightConversion.Convert(t, WeightPrecision.BF16);
                return [.. Enumerable.Range(0, values.Length).Select(i => BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(bf16, 2 * i) << 16))];
            case WeightPrecision.Q8_0:
                var blocks = new byte[values.Length / 32 * 34];
                GgufQuantization.QuantizeQ8_0(values, blocks);
                var q = new float[values.Length];
                GgufQuantization.Dequantize(GgufTensorType.Q8_0, blocks, q);
                return q;
            default:
                return values;
        }
    }

    [Test]
    public void ANameThatIsNotAMatrixIsRefusedNamingIt()
    {
        LlamaConfig config = TinyLlama.Config();
        foreach (string name in new[] { "model.layers.9.mlp.down_proj.weight", "model.norm.weight" })
        {
            var ex = Assert.Throws<ArgumentException>(() => CausalLMProgram.Build(config, RopeConvention.Half, 32, 4, WeightPrecision.Q8_0,
                matrixPrecisions: new Dictionary<string, WeightPrecision> { [name] = WeightPrecision.F16 }));
            Assert.That(ex!.Message, Does.Contain(name).And.Contain("not a weight matrix"));
        }
        var bad = Assert.Throws<ArgumentOutOfRangeException>(() => CausalLMProgram.Build(config, RopeConvention.Half, 32, 4, WeightPrecision.Q8_0,
            matrixPrecisions: new Dictionary<string, WeightPrecision> { [V1] = (WeightPrecision)9 }));
        Assert.That(bad!.Message, Does.Contain(V1).And.Contain("Q4_K"));
        // A type the matrix's width cannot be blocked in is refused by the tensor's name (k = 32 is not whole 256-blocks).
        var width = Assert.Throws<ArgumentException>(() => CausalLMProgram.Build(config, RopeConvention.Half, 32, 4, WeightPrecision.Q8_0,
            matrixPrecisions: new Dictionary<string, WeightPrecision> { [V1] = WeightPrecision.Q4_K }));
        Assert.That(width!.Message, Does.Contain(V1).And.Contain("256"));
    }

    [Test]
    public void TheDescriptorCarriesTheMapAndComparesItByContent()
    {
        var deployment = new ModelDeployment(TinyLlama.Config(), RopeConvention.Half, 32, 4, WeightPrecision.Q8_0, MatrixPrecisions: Mixed);
        ModelDeployment read = ModelDeployment.FromJson(deployment.ToJson());
        Assert.That(read.MatrixPrecisions, Is.EquivalentTo(Mixed));
        Assert.That(read, Is.EqualTo(deployment));
        Assert.That(read.GetHashCode(), Is.EqualTo(deployment.GetHashCode()));
        Assert.That(read.Measure(new byte[] { 1 }, "tiny"), Is.EqualTo(deployment.Measure(new byte[] { 1 }, "tiny")));
        Assert.That(deployment with { MatrixPrecisions = null }, Is.Not.EqualTo(deployment));
        Assert.That(deployment with { MatrixPrecisions = new Dictionary<string, WeightPrecision> { [V1] = WeightPrecision.BF16, [Down1] = WeightPrecision.BF16 } },
            Is.Not.EqualTo(deployment));
        Assert.That((deployment with { MatrixPrecisions = null }).ToJson(), Does.Not.Contain("MatrixPrecisions"), "a plain deployment's descriptor is as before");
        Assert.That((deployment with { MatrixPrecisions = new Dictionary<string, WeightPrecision>() }).MatrixPrecisions, Is.Null, "an empty map is no map");

        // The deployment keeps its own copy of the map.
        var mine = new Dictionary<string, WeightPrecision>(Mixed);
        var copied = deployment with { MatrixPrecisions = mine };
        mine[V1] = WeightPrecision.BF16;
        Assert.That(copied.MatrixPrecisions![V1], Is.EqualTo(WeightPrecision.F16));
        Assert.That(copied, Is.EqualTo(deployment));

        string bad = deployment.ToJson().Replace("\"BF16\"", "\"Q5_K\"", StringComparison.Ordinal);
        var ex = Assert.Throws<FormatException>(() => ModelDeployment.FromJson(bad));
        Assert.That(ex!.Message, Does.Contain(Down1).And.Contain("Q5_K").And.Contain("Q4_K"));
    }

    /// <summary>
    /// The provider's package carries each matrix in its own type, and a confidential model of a
    /// mixed deployment generates the plaintext mixed model's tokens.
    /// </summary>
    [Test]
    public void AConfidentialMixedDeploymentRunsAsThePlaintextOne()
    {
        using Testbed bed = Testbed.CreateTiny(new TestbedOptions { Precision = WeightPrecision.Q8_0, MatrixPrecisions = Mixed });
        Assert.That(bed.Model.Manifest.Tensors.Single(t => t.Name == V1).ElementType, Is.EqualTo("F16"));
        Assert.That(bed.Model.Manifest.Tensors.Single(t => t.Name == Down1).ElementType, Is.EqualTo("BF16"));
        Assert.That(bed.Model.Manifest.Tensors.Single(t => t.Name == K1).ElementType, Is.EqualTo("Q8_0"));
        int[] prompt = [1, 5, 9];
        int[] confidential;
        using (CausalLM model = bed.Load())
        {
            confidential = bed.Generate(model, prompt, 8);
        }
        using NpuRuntime runtime = NewRuntime();
        using CausalLM plain = CausalLM.Load(runtime, bed.Config, bed.Rope, bed.Weights,
            new CausalLMOptions { MaxContext = 32, MaxBatchTokens = 4, WeightPrecision = WeightPrecision.Q8_0, MatrixPrecisions = Mixed });
        Assert.That(confidential, Is.EqualTo(plain.Generate(prompt, 8, stopTokens: []).ToArray()));
    }

    /// <summary>
    /// Attack: the host keeps the provider's package and relabels a matrix in the clear descriptor —
    /// the F16 v projection as BF16 (same size, so every buffer still fits; the bytes would be read as
    /// another number format), or drops the map altogether. The program it builds is not the one the
    /// provider signed, and the device refuses it (R4).
    /// </summary>
    [Test]
    public void AHostThatRelabelsAMatrixIsRefused()
    {
        using Testbed bed = Testbed.CreateTiny(new TestbedOptions { Precision = WeightPrecision.Q8_0, MatrixPrecisions = Mixed });
        ModelDeployment relabelled = bed.Deployment with { MatrixPrecisions = new Dictionary<string, WeightPrecision> { [V1] = WeightPrecision.BF16, [Down1] = WeightPrecision.BF16 } };
        var ex = Assert.Catch<Exception>(() =>
        {
            using CausalLM model = CausalLM.LoadConfidential(bed.Runtime, relabelled, bed.Package, bed.ReleaseKey());
            bed.Generate(model, [1, 5, 9], 4);
        });
        Assert.That(ex!.Message, Does.Contain("R4").And.Contain("not the one the model provider attested"));
        // Dropping the map changes buffer sizes as well; refused one way or another, never run.
        Assert.Catch<Exception>(() =>
        {
            using CausalLM model = CausalLM.LoadConfidential(bed.Runtime, bed.Deployment with { MatrixPrecisions = null }, bed.Package, bed.ReleaseKey());
            bed.Generate(model, [1, 5, 9], 4);
        });
        using CausalLM honest = bed.Load();
        Assert.That(bed.Generate(honest, [1, 5, 9], 4), Has.Length.EqualTo(4));
    }
}
