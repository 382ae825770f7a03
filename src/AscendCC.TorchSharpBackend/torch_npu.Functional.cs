using AscendCC.Device;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using static TorchSharp.torch;

namespace AscendCC.TorchSharpBackend;

/// <summary>Functional operators on <see cref="NpuTensor"/>: each is one eager launch of a device operator.</summary>
public static partial class torch_npu
{
    /// <summary>a + b, element-wise; same shape, float32 (no broadcasting).</summary>
    public static NpuTensor add(NpuTensor a, NpuTensor b) => Binary("add", a, b);

    /// <summary>a * b, element-wise; same shape, float32 (no broadcasting).</summary>
    public static NpuTensor mul(NpuTensor a, NpuTensor b) => Binary("mul", a, b);

    /// <summary>max(x, 0).</summary>
    public static NpuTensor relu(NpuTensor x) => Unary("relu", x);

    /// <summary>x * sigmoid(x).</summary>
    public static NpuTensor silu(NpuTensor x) => Unary("silu", x);

    /// <summary>GELU; <paramref name="approximate"/> is "none" (erf) or "tanh", as in torch.nn.functional.gelu.</summary>
    public static NpuTensor gelu(NpuTensor x, string approximate = "none") => approximate switch
    {
        "none" => Unary("gelu", x),
        "tanh" => Unary("gelu_tanh", x),
        _ => throw new ArgumentException($"gelu approximate='{approximate}' is not known; use \"none\" or \"tanh\"", nameof(approximate)),
    };

    /// <summary>Softmax over the last dimension (the only one the device kernel reduces over).</summary>
    public static NpuTensor softmax(NpuTensor x, long dim = -1)
    {
        Float32(x, "softmax", nameof(x));
        CheckLastDim(x, dim, "softmax");
        long cols = x.size(-1), rows = x.numel() / Math.Max(1, cols);
        NpuTensor y = NpuTensor.Empty(x.Context, x.shape, ScalarType.Float32);
        Launch(x.Context, "softmax", [x.Argument, y.Argument], [I(rows), I(cols)]);
        return y;
    }

    /// <summary>RMSNorm over the last dimension: x / sqrt(mean(x²) + eps) * weight.</summary>
    public static NpuTensor rms_norm(NpuTensor x, NpuTensor weight, double eps = 1e-6)
    {
        Float32(x, "rms_norm", nameof(x));
        Float32(weight, "rms_norm", nameof(weight));
        long dim = x.size(-1);
        CheckShape(weight, [dim], "rms_norm", nameof(weight));
        NpuTensor y = NpuTensor.Empty(x.Context, x.shape, ScalarType.Float32);
        Launch(x.Context, "rms_norm", [x.Argument, weight.Argument, y.Argument], [I(x.numel() / dim), I(dim), F(eps)]);
        return y;
    }

    /// <summary>LayerNorm over the last dimension with affine <paramref name="weight"/> and <paramref name="bias"/>.</summary>
    public static NpuTensor layer_norm(NpuTensor x, NpuTensor weight, NpuTensor bias, double eps = 1e-5)
    {
        Float32(x, "layer_norm", nameof(x));
        long dim = x.size(-1);
        CheckShape(weight, [dim], "layer_norm", nameof(weight));
        CheckShape(bias, [dim], "layer_norm", nameof(bias));
        Float32(weight, "layer_norm", nameof(weight));
        Float32(bias, "layer_norm", nameof(bias));
        NpuTensor y = NpuTensor.Empty(x.Context, x.shape, ScalarType.Float32);
        Launch(x.Context, "layer_norm", [x.Argument, weight.Argument, bias.Argument, y.Argument], [I(x.numel() / dim), I(dim), F(eps)]);
        return y;
    }

    /// <summary>
    /// Matrix product: [m,k]·[k,n] → [m,n], or batched [b,m,k]·[b,k,n] → [b,m,n]. Other ranks (and
    /// broadcasting) are not supported.
    /// </summary>
    public static NpuTensor matmul(NpuTensor a, NpuTensor b)
    {
        Float32(a, "matmul", nameof(a));
        Float32(b, "matmul", nameof(b));
        SameDevice(a, b, "matmul");
        long[] sa = a.shape, sb = b.shape;
        if (sa.Length == 2 && sb.Length == 2 && sa[1] == sb[0])
        {
            NpuTensor c = NpuTensor.Empty(a.Context, [sa[0], sb[1]], ScalarType.Float32);
            Launch(a.Context, "matmul", [a.Argument, b.Argument, c.Argument], [I(sa[0]), I(sa[1]), I(sb[1])]);
            return c;
        }
        if (sa.Length == 3 && sb.Length == 3 && sa[0] == sb[0] && sa[2] == sb[1])
        {
            NpuTensor c = NpuTensor.Empty(a.Context, [sa[0], sa[1], sb[2]], ScalarType.Float32);
            Launch(a.Context, "batch_matmul", [a.Argument, b.Argument, c.Argument], [I(sa[0]), I(sa[1]), I(sa[2]), I(sb[2]), I(0)]);
            return c;
        }
        throw new ArgumentException($"matmul takes [m,k]·[k,n] or [b,m,k]·[b,k,n]; got [{string.Join(", ", sa)}]·[{string.Join(", ", sb)}]. Reshape on the host or use linear()");
    }

    /// <summary>y = x·weightᵀ + bias over the last dimension of x (torch.nn.functional.linear).</summary>
    public static NpuTensor linear(NpuTensor x, NpuTensor weight, NpuTensor? bias = null)
    {
        Float32(x, "linear", nameof(x));
        SameDevice(x, weight, "linear");
        long[] w = weight.shape;
        long k = x.size(-1);
        if (w.Length != 2 || w[1] != k)
        {
            throw new ArgumentException($"linear: weight has shape [{string.Join(", ", w)}] but x has {k} features; weight must be [out_features, {k}]", nameof(weight));
        }
        long dtypeCode = weight.dtype switch
        {
            ScalarType.Float32 => (long)WeightPrecision.F32,
            ScalarType.Float16 => (long)WeightPrecision.F16,
            ScalarType.BFloat16 => (long)WeightPrecision.BF16,
            _ => throw new ArgumentException($"linear: weight dtype {weight.dtype} is not float32, float16 or bfloat16", nameof(weight)),
        };
        if (bias is not null)
        {
            Float32(bias, "linear", nameof(bias));
            CheckShape(bias, [w[0]], "linear", nameof(bias));
        }
        long[] outShape = x.shape;
        outShape[^1] = w[0];
        NpuTensor y = NpuTensor.Empty(x.Context, outShape, ScalarType.Float32);
        Launch(x.Context, "linear", [x.Argument, weight.Argument, bias?.Argument ?? KernelArgument.None, y.Argument], [I(x.numel() / k), I(k), I(w[0]), I(dtypeCode)]);
        return y;
    }

    private static NpuTensor Binary(string op, NpuTensor a, NpuTensor b)
    {
        Float32(a, op, nameof(a));
        Float32(b, op, nameof(b));
        SameDevice(a, b, op);
        if (!a.shape.SequenceEqual(b.shape))
        {
            throw new ArgumentException($"{op}: shapes [{string.Join(", ", a.shape)}] and [{string.Join(", ", b.shape)}] differ; NPU {op} does not broadcast, so expand on the host first");
        }
        NpuTensor y = NpuTensor.Empty(a.Context, a.shape, ScalarType.Float32);
        Launch(a.Context, op, [a.Argument, b.Argument, y.Argument], [I(a.numel())]);
        return y;
    }

    private static NpuTensor Unary(string op, NpuTensor x)
    {
        Float32(x, op, nameof(x));
        NpuTensor y = NpuTensor.Empty(x.Context, x.shape, ScalarType.Float32);
        Launch(x.Context, op, [x.Argument, y.Argument], [I(x.numel())]);
        return y;
    }

    private static void Launch(NpuDeviceContext context, string op, KernelArgument[] args, KernelScalar[] scalars) =>
        context.Runtime.Execute(op, args, scalars, npu.RuntimeStreamFor(context));

    private static KernelScalar I(long value) => KernelScalar.Of(value);

    private static KernelScalar F(double value) => KernelScalar.Of(value);

    private static void Float32(NpuTensor t, string op, string argument)
    {
        ArgumentNullException.ThrowIfNull(t, argument);
        if (t.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"{op}: {argument} is {t.dtype} but the NPU operator computes in float32; convert with .to(float32) before .npu()", argument);
        }
        if (t.numel() == 0)
        {
            throw new ArgumentException($"{op}: {argument} is empty", argument);
        }
    }

    private static void SameDevice(NpuTensor a, NpuTensor b, string op)
    {
        ArgumentNullException.ThrowIfNull(b);
        if (a.Context != b.Context)
        {
            throw new ArgumentException($"{op}: operands are on {a.device} and {b.device}; move them to one device");
        }
    }

    private static void CheckShape(NpuTensor t, long[] shape, string op, string argument)
    {
        ArgumentNullException.ThrowIfNull(t, argument);
        if (!t.shape.SequenceEqual(shape))
        {
            throw new ArgumentException($"{op}: {argument} has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", shape)}]", argument);
        }
    }

    private static void CheckLastDim(NpuTensor x, long dim, string op)
    {
        if (dim != -1 && dim != x.dim() - 1)
        {
            throw new ArgumentException($"{op}(dim={dim}) on a {x.dim()}-d tensor: the NPU kernel reduces over the last dimension only; transpose on the host so the dimension is last", nameof(dim));
        }
    }
}
