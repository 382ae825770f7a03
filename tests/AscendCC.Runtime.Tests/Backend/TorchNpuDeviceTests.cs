using AscendCC.Device;
using AscendCC.TorchSharpBackend;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.Runtime.Tests.Backend;

/// <summary>The torch_npu device surface and NpuTensor operators, checked against TorchSharp on the CPU.</summary>
public class TorchNpuDeviceTests
{
    // Device kernels accumulate in a different order than libtorch; both are float32.
    private const double Tolerance = 1e-5;

    [SetUp]
    public void Seed() => manual_seed(7);

    [Test]
    public void DeviceStringsAreParsedStrictly()
    {
        Assert.That(torch_npu.npu.is_available(), Is.True);
        Assert.That(torch_npu.npu.device_count(), Is.GreaterThanOrEqualTo(1));
        torch_npu.npu.set_device("npu:0");
        Assert.That(torch_npu.npu.current_device(), Is.EqualTo(0));
        torch_npu.npu.set_device("npu");
        Assert.That(torch_npu.npu.current_device(), Is.EqualTo(0));
        foreach (string bad in new[] { "NPU:0", "npu:", "npu:-1", "npu:01", "npu:0 ", " npu:0", "npu:1x", "cuda:0", "npu0", "" })
        {
            var ex = Assert.Throws<ArgumentException>(() => torch_npu.npu.set_device(bad), bad);
            Assert.That(ex!.Message, Does.Contain($"'{bad}'").And.Contain("npu:N"), bad);
        }
    }

    [Test]
    public void SetDeviceBeyondTheDeviceCountNamesTheRangeAndTheVariable()
    {
        int count = torch_npu.npu.device_count();
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => torch_npu.npu.set_device($"npu:{count}"));
        Assert.That(ex!.Message, Does.Contain($"npu:{count} does not exist").And.Contain("ASCENDCC_DEVICE_COUNT"));
        Assert.Throws<ArgumentOutOfRangeException>(() => torch_npu.npu.set_device(-1));
        Assert.That(torch_npu.npu.get_device_name(), Does.Contain("NPU 0"));
    }

    [Test]
    public void MemoryStatisticsFollowTensorAllocations()
    {
        torch_npu.npu.synchronize();
        torch_npu.npu.empty_cache();
        torch_npu.npu.reset_peak_memory_stats();
        long before = torch_npu.npu.memory_allocated();
        long reservedBefore = torch_npu.npu.memory_reserved();
        using (Tensor host = randn(256, 256))
        {
            NpuTensor a = host.npu();
            Assert.That(torch_npu.npu.memory_allocated(), Is.GreaterThanOrEqualTo(before + 256 * 256 * 4));
            Assert.That(torch_npu.npu.memory_reserved(), Is.GreaterThanOrEqualTo(reservedBefore + 256 * 256 * 4));
            a.Dispose();
        }
        Assert.That(torch_npu.npu.memory_allocated(), Is.EqualTo(before));
        Assert.That(torch_npu.npu.max_memory_allocated(), Is.GreaterThanOrEqualTo(before + 256 * 256 * 4));
        long cachedReserved = torch_npu.npu.memory_reserved();
        // The freed block stays cached until empty_cache gives it back to the device.
        Assert.That(cachedReserved, Is.GreaterThanOrEqualTo(reservedBefore + 256 * 256 * 4));
        torch_npu.npu.empty_cache();
        Assert.That(torch_npu.npu.memory_reserved(), Is.LessThan(cachedReserved));
        torch_npu.npu.reset_peak_memory_stats();
        Assert.That(torch_npu.npu.max_memory_allocated(), Is.EqualTo(before));
        var (free, total) = torch_npu.npu.mem_get_info();
        Assert.That(free, Is.LessThan(total).And.GreaterThan(0));
    }

    [Test]
    public void TensorsRoundTripExactlyInEveryStorableDtype()
    {
        foreach (ScalarType dtype in new[] { ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Int32, ScalarType.Int64 })
        {
            using Tensor host = (randn(3, 5, 7) * 100).to_type(dtype);
            using NpuTensor device = host.npu();
            Assert.That(device.shape, Is.EqualTo(new long[] { 3, 5, 7 }));
            Assert.That(device.dtype, Is.EqualTo(dtype));
            Assert.That(device.device, Is.EqualTo("npu:0"));
            using Tensor back = device.to("cpu");
            Assert.That(back.dtype, Is.EqualTo(dtype));
            Assert.That(back.equal(host).all().item<bool>(), Is.True, dtype.ToString());
        }
        using NpuTensor x = ones(2).npu();
        Assert.That(Assert.Throws<ArgumentException>(() => x.to("npu:1"))!.Message, Does.Contain("cpu"));
        using Tensor complex = ones(2, dtype: ScalarType.ComplexFloat32);
        Assert.That(Assert.Throws<NotSupportedException>(() => complex.npu())!.Message, Does.Contain("float32"));
    }

    [Test]
    public void FunctionalOperatorsMatchTorchSharp()
    {
        using var scope = NewDisposeScope();
        Tensor a = randn(4, 6), b = randn(4, 6), m = randn(6, 5), w = randn(6) + 1, bias = randn(6);
        using NpuTensor na = a.npu(), nb = b.npu(), nm = m.npu(), nw = w.npu(), nbias = bias.npu();
        Check(na + nb, a + b, "add");
        Check(na * nb, a * b, "mul");
        Check(torch_npu.relu(na), nn.functional.relu(a), "relu");
        Check(torch_npu.silu(na), nn.functional.silu(a), "silu");
        Check(torch_npu.gelu(na), nn.functional.gelu(a), "gelu");
        Check(torch_npu.softmax(na), nn.functional.softmax(a, -1), "softmax");
        Check(torch_npu.matmul(na, nm), a.matmul(m), "matmul");
        Check(torch_npu.rms_norm(na, nw, 1e-6), a * rsqrt(a.pow(2).mean([-1L], keepdim: true) + 1e-6) * w, "rms_norm");
        Check(torch_npu.layer_norm(na, nw, nbias, 1e-5), nn.functional.layer_norm(a, [6], w, bias, 1e-5), "layer_norm");
        Tensor lw = randn(3, 6), lb = randn(3);
        using NpuTensor nlw = lw.npu(), nlb = lb.npu();
        Check(torch_npu.linear(na, nlw, nlb), nn.functional.linear(a, lw, lb), "linear");
        Tensor ba = randn(2, 3, 4), bb = randn(2, 4, 5);
        using NpuTensor nba = ba.npu(), nbb = bb.npu();
        Check(torch_npu.matmul(nba, nbb), ba.matmul(bb), "batch matmul");
    }

    /// <summary>
    /// The device's rms_norm_heads (Qwen3's q_norm/k_norm): RMSNorm over each head_dim-wide head of
    /// [seq, heads, head_dim] with one shared weight, as torch computes x.view(seq, heads, head_dim)'s
    /// RMSNorm; out of place and in place, a launch small enough to run on one core and one spread over
    /// the cores; a buffer too small for seq·heads·head_dim is refused naming it.
    /// </summary>
    [TestCase(3, 4, 96)]
    [TestCase(64, 16, 128)]
    public void RmsNormOverEachHeadMatchesTorchSharp(int seq, int heads, int headDim)
    {
        using var scope = NewDisposeScope();
        Tensor x = randn(seq, heads, headDim) * 3, w = randn(headDim) + 1;
        Tensor expected = x * rsqrt(x.pow(2).mean([-1L], keepdim: true) + 1e-6) * w;
        using NpuTensor nx = x.npu(), nw = w.npu(), ny = zeros(seq, heads, headDim).npu(), inPlace = x.npu();
        KernelScalar[] scalars = [KernelScalar.Of(seq), KernelScalar.Of(heads), KernelScalar.Of(headDim), KernelScalar.Of(1e-6)];
        nx.Context.Runtime.Execute("rms_norm_heads", [nx.Argument, nw.Argument, ny.Argument], scalars);
        nx.Context.Runtime.Execute("rms_norm_heads", [inPlace.Argument, nw.Argument, inPlace.Argument], scalars);
        using (Tensor outOfPlace = ny.cpu(), overwritten = inPlace.cpu())
        {
            Assert.That((outOfPlace - expected).abs().max().item<float>(), Is.LessThan(Tolerance * 10));
            Assert.That(overwritten.equal(outOfPlace).all().item<bool>(), Is.True, "in place, the same bits");
        }
        KernelScalar[] oneHeadMore = [KernelScalar.Of(seq), KernelScalar.Of(heads + 1), KernelScalar.Of(headDim), KernelScalar.Of(1e-6)];
        // A launch's error surfaces when its stream is next waited on: here, the read back.
        var ex = Assert.Catch(() =>
        {
            nx.Context.Runtime.Execute("rms_norm_heads", [nx.Argument, nw.Argument, ny.Argument], oneHeadMore);
            ny.cpu().Dispose();
        });
        Assert.That(ex!.ToString(), Does.Contain("rms_norm_heads").And.Contain("'x'"));
        // seq·heads past int's range (2^32 rows) is refused, not wrapped into a small row count.
        KernelScalar[] wrapping = [KernelScalar.Of(1 << 20), KernelScalar.Of(1 << 12), KernelScalar.Of(headDim), KernelScalar.Of(1e-6)];
        ex = Assert.Catch(() =>
        {
            nx.Context.Runtime.Execute("rms_norm_heads", [nx.Argument, nw.Argument, ny.Argument], wrapping);
            ny.cpu().Dispose();
        });
        Assert.That(ex!.ToString(), Does.Contain("rms_norm_heads").And.Contain("'x'"));
    }

    [Test]
    public void OperatorMisuseIsRefusedWithTheReason()
    {
        using NpuTensor a = ones(2, 3).npu(), b = ones(3, 2).npu(), ids = ones(2, 3, dtype: ScalarType.Int64).npu();
        Assert.That(Assert.Throws<ArgumentException>(() => torch_npu.add(a, b))!.Message, Does.Contain("[2, 3]").And.Contain("broadcast"));
        Assert.That(Assert.Throws<ArgumentException>(() => torch_npu.relu(ids))!.Message, Does.Contain("Int64").And.Contain("float32"));
        Assert.That(Assert.Throws<ArgumentException>(() => torch_npu.softmax(a, 0))!.Message, Does.Contain("last dimension"));
        Assert.That(Assert.Throws<ArgumentException>(() => torch_npu.matmul(a, a))!.Message, Does.Contain("[2, 3]·[2, 3]"));
        NpuTensor gone = ones(2).npu();
        gone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => gone.cpu());
    }

    [Test]
    public void OperatorsOnASideStreamAreOrderedByEvents()
    {
        using Tensor a = randn(64, 64), b = randn(64, 64);
        var side = new torch_npu.npu.Stream();
        Assert.That(side.stream_id, Is.Not.EqualTo(torch_npu.npu.current_stream().stream_id));
        using NpuTensor na = a.npu(), nb = b.npu();
        NpuTensor product;
        using (torch_npu.npu.stream(side))
        {
            Assert.That(torch_npu.npu.current_stream().stream_id, Is.EqualTo(side.stream_id));
            product = torch_npu.matmul(na, nb);
        }
        var done = side.record_event();
        torch_npu.npu.current_stream().wait_event(done);
        done.synchronize();
        using (product)
        {
            Check(product, a.matmul(b), "matmul on a side stream");
        }
    }

    [Test]
    public void AHostReadPolicyCanRefuseCopiesBack()
    {
        using NpuTensor secret = ones(4).npu();
        torch_npu.npu.set_host_read_policy(new RefuseAll());
        try
        {
            var ex = Assert.Throws<UnauthorizedAccessException>(() => secret.cpu());
            Assert.That(ex!.Message, Does.Contain("npu:0").And.Contain("NpuTensor [4] Float32"));
        }
        finally
        {
            torch_npu.npu.set_host_read_policy(null);
        }
        using Tensor back = secret.cpu();
        Assert.That(back.sum().item<float>(), Is.EqualTo(4f));
    }

    private static void Check(NpuTensor actual, Tensor expected, string what)
    {
        using (actual)
        using (Tensor host = actual.cpu())
        {
            Assert.That(host.shape, Is.EqualTo(expected.shape), what);
            double diff = (host - expected).abs().max().item<float>();
            Assert.That(diff, Is.LessThan(Tolerance), $"{what}: max difference {diff:g3}");
        }
    }

    private sealed class RefuseAll : INpuHostReadPolicy
    {
        public void CheckHostRead(string device, string what) =>
            throw new UnauthorizedAccessException($"{what} may not leave {device}");
    }
}
