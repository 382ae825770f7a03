using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;

namespace AscendCC.TorchSharpBackend;

/// <summary>A TorchSharp module compiled onto an NPU. Disposing it frees its device memory.</summary>
public abstract class NpuModule : IDisposable
{
    private protected NpuModule(NpuDeviceContext context, ExecutionMode mode)
    {
        Context = context;
        Mode = mode;
    }

    internal NpuDeviceContext Context { get; }

    /// <summary>The device string.</summary>
    public string device => Context.Name;

    /// <summary>Eager (op by op) or graph (one task list).</summary>
    public ExecutionMode Mode { get; }

    /// <summary>True in graph mode (torch_npu's jit_compile).</summary>
    public bool jit_compile => Mode == ExecutionMode.Graph;

    /// <summary>Largest difference the compile-time self-check measured against the module's CPU forward; null when it was skipped.</summary>
    public double? SelfCheckMaxDifference { get; internal set; }

    /// <summary>The device operators the module runs, in launch order.</summary>
    public abstract IReadOnlyList<string> Operators { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees device memory.</summary>
    protected abstract void Dispose(bool disposing);

    internal static double MaxAbsDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double worst = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d))
            {
                return double.PositiveInfinity;
            }
            worst = Math.Max(worst, d);
        }
        return worst;
    }
}
