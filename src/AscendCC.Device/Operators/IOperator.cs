namespace AscendCC.Device.Operators;

/// <summary>
/// A kernel the AI Cores (or AI CPUs) can execute: the device-side half of an operator binary.
/// Implementations bind launch arguments to one of the span kernels in <c>Kernels/</c>.
/// </summary>
internal interface IOperator
{
    /// <summary>The operator's name, as in its binary.</summary>
    string Name { get; }

    /// <summary>Kernel ABI version; bumped whenever the argument contract changes.</summary>
    uint Abi { get; }

    /// <summary>Where it runs.</summary>
    ExecutionUnit Unit { get; }

    /// <summary>Human-readable argument contract, e.g. "x:f32[m,k] w:[n,k] b?:f32[n] -> y:f32[m,n] | m k n wtype". Part of the binary.</summary>
    string Signature { get; }

    /// <summary>Names of the buffer arguments, in order.</summary>
    IReadOnlyList<string> ArgumentNames { get; }

    /// <summary>Indices of buffer arguments the kernel writes.</summary>
    IReadOnlyList<int> Outputs { get; }

    /// <summary>Number of scalar arguments.</summary>
    int ScalarCount { get; }

    /// <summary>Runs the kernel. Throws <see cref="KernelArgumentException"/> when arguments do not fit.</summary>
    void Execute(ref KernelContext context);
}

/// <summary>A kernel rejected its launch arguments; the message names the argument and the sizes.</summary>
internal sealed class KernelArgumentException : Exception
{
    public KernelArgumentException(string message) : base(message)
    {
    }
}
