using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.TorchSharpBackend;
using NUnit.Framework;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AscendCC.Runtime.Tests.Backend;

/// <summary>Standard TorchSharp module chains compiled eager and graph, against their own CPU forward.</summary>
public class ModuleCompilerTests
{
    // float32 on both sides; only summation order differs.
    private const double Tolerance = 1e-5;

    private static readonly ExecutionMode[] Modes = [ExecutionMode.Eager, ExecutionMode.Graph];

    [SetUp]
    public void Seed() => manual_seed(11);

    [TestCaseSource(nameof(Modes))]
    public void MlpWithSoftmaxMatchesItsCpuForward(ExecutionMode mode)
    {
        using var net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 5), nn.Softmax(-1));
        net.eval();
        // 21 rows with 8 per device pass: the chunking path runs too.
        using var compiled = (NpuSequentialModule)net.npu(new NpuCompileOptions { JitCompile = mode == ExecutionMode.Graph, MaxBatchRows = 8 });
        Assert.That(compiled.Mode, Is.EqualTo(mode));
        Assert.That(string.Join(" ", compiled.Operators), Is.EqualTo("linear relu linear softmax"));
        Assert.That(compiled.SelfCheckMaxDifference, Is.LessThan(Tolerance));
        using Tensor x = randn(3, 7, 8);
        using Tensor expected = net.call(x);
        using Tensor actual = compiled.forward(x);
        AssertClose(actual, expected);
    }

    [TestCaseSource(nameof(Modes))]
    public void EmbeddingLayerNormGeluStackMatchesItsCpuForward(ExecutionMode mode)
    {
        using var net = nn.Sequential(
            ("embed", nn.Embedding(50, 12)),
            ("norm", nn.LayerNorm(12)),
            ("act", nn.GELU()),
            ("proj", nn.Linear(12, 6, hasBias: false)),
            ("gate", nn.SiLU()),
            ("drop", nn.Dropout(0.1)),
            ("id", nn.Identity()),
            ("tanh_gelu", nn.GELU(GELU.Approximate.tanh)));
        net.eval();
        using (no_grad())
        {
            // LayerNorm starts as the identity affine map; make it matter.
            var norm = (LayerNorm)net[1];
            norm.weight!.copy_(randn(12) + 1);
            norm.bias!.copy_(randn(12));
        }
        using var compiled = (NpuSequentialModule)torch_npu.compile(net, new NpuCompileOptions { JitCompile = mode == ExecutionMode.Graph });
        Assert.That(string.Join(" ", compiled.Operators), Is.EqualTo("embedding layer_norm gelu linear silu gelu_tanh"));
        using Tensor ids = randint(0, 50, [2, 5], dtype: ScalarType.Int64);
        using Tensor expected = net.call(ids);
        using Tensor actual = compiled.forward(ids);
        Assert.That(actual.shape, Is.EqualTo(new long[] { 2, 5, 6 }));
        AssertClose(actual, expected);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => compiled.forward(tensor(new long[] { 3, 50 })));
        Assert.That(ex!.Message, Does.Contain("token id 50").And.Contain("50 rows"));
    }

    [Test]
    public void EagerAndGraphAgreeExactlyAndTakeDeviceTensors()
    {
        using var net = nn.Sequential(nn.LayerNorm(16), nn.Linear(16, 32), nn.SiLU(), nn.Linear(32, 16));
        using var eager = torch_npu.compile_sequential(net, new NpuCompileOptions { JitCompile = false });
        using var graph = torch_npu.compile_sequential(net, new NpuCompileOptions { JitCompile = true });
        using Tensor x = randn(5, 16);
        using Tensor e = eager.forward(x), g = graph.forward(x);
        Assert.That(e.equal(g).all().item<bool>(), Is.True, "the same launches must give the same bits");
        using NpuTensor onDevice = x.npu();
        using NpuTensor y = graph.forward(onDevice);
        using Tensor back = y.cpu();
        Assert.That(back.equal(g).all().item<bool>(), Is.True);
    }

    [Test]
    public void CompileModeFollowsSetCompileMode()
    {
        using var net = nn.Sequential(nn.Linear(4, 4));
        torch_npu.npu.set_compile_mode(jit_compile: true);
        try
        {
            using var graph = net.npu();
            Assert.That(graph.jit_compile, Is.True);
            Assert.That(torch_npu.npu.is_jit_compile_false(), Is.False);
        }
        finally
        {
            torch_npu.npu.set_compile_mode(jit_compile: false);
        }
        using var eager = net.npu();
        Assert.That(eager.Mode, Is.EqualTo(ExecutionMode.Eager));
    }

    [Test]
    public void AnUnsupportedModuleIsNamedWithItsPathAndTheSupportedList()
    {
        using var net = nn.Sequential(("fc", nn.Linear(4, 4)), ("conv", nn.Conv2d(1, 1, 3)));
        var ex = Assert.Throws<NpuCompileException>(() => net.npu());
        Assert.That(ex!.ModulePath, Is.EqualTo("conv"));
        Assert.That(ex.ModuleType, Is.EqualTo("Conv2d"));
        Assert.That(ex.Message, Does.Contain("'conv'").And.Contain("Conv2d").And.Contain("Supported: Sequential").And.Contain("LayerNorm"));

        using var custom = new Wrapper();
        var wrapped = Assert.Throws<NpuCompileException>(() => custom.npu());
        Assert.That(wrapped!.Message, Does.Contain("<root>").And.Contain(nameof(Wrapper)));
    }

    [Test]
    public void DropoutInTrainingModeIsRefused()
    {
        using var net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5));
        net.train();
        var ex = Assert.Throws<NpuCompileException>(() => net.npu());
        Assert.That(ex!.Message, Does.Contain("training mode").And.Contain("eval()").And.Contain("'1'"));
        net.eval();
        using var compiled = net.npu();
        Assert.That(string.Join(" ", compiled.Operators), Is.EqualTo("linear"));
    }

    [Test]
    public void WrongInputIsRefusedWithTheExpectedShape()
    {
        using var net = nn.Sequential(nn.Linear(8, 2));
        using var compiled = (NpuSequentialModule)net.npu();
        Assert.That(Assert.Throws<ArgumentException>(() => compiled.forward(randn(3, 7)))!.Message, Does.Contain("[..., 8]").And.Contain("[3, 7]"));
        Assert.That(Assert.Throws<ArgumentException>(() => compiled.forward(randn(3, 8).to_type(ScalarType.Float64)))!.Message, Does.Contain("Float64"));
    }

    private static void AssertClose(Tensor actual, Tensor expected)
    {
        Assert.That(actual.shape, Is.EqualTo(expected.shape));
        double diff = (actual - expected).abs().max().item<float>();
        Assert.That(diff, Is.LessThan(Tolerance), $"max difference {diff:g3}");
    }

    private sealed class Wrapper : nn.Module<Tensor, Tensor>
    {
        private readonly Linear fc = nn.Linear(4, 4);

        public Wrapper() : base(nameof(Wrapper)) => RegisterComponents();

        public override Tensor forward(Tensor input) => fc.call(input) * 2;
    }
}
