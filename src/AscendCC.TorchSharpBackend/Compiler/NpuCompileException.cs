namespace AscendCC.TorchSharpBackend;

/// <summary>A module could not be compiled for the NPU; the message says which part and what to do.</summary>
public class NpuCompileException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NpuCompileException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public NpuCompileException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public NpuCompileException(string message, Exception inner) : base(message, inner)
    {
    }

    /// <summary>Creates the exception for the module at <paramref name="modulePath"/>.</summary>
    public NpuCompileException(string modulePath, string moduleType, string message) : base(message)
    {
        ModulePath = modulePath;
        ModuleType = moduleType;
    }

    /// <summary>Path of the offending module in the tree ("" is the root), when one is to blame.</summary>
    public string? ModulePath { get; }

    /// <summary>Type name of the offending module.</summary>
    public string? ModuleType { get; }
}

/// <summary>The compiled program does not compute what the module's own forward computes on the probe inputs.</summary>
public sealed class NpuSelfCheckException : NpuCompileException
{
    /// <summary>Creates the exception.</summary>
    public NpuSelfCheckException(string message, double maxDifference, double tolerance) : base(message)
    {
        MaxDifference = maxDifference;
        Tolerance = tolerance;
    }

    /// <summary>Largest absolute difference measured.</summary>
    public double MaxDifference { get; }

    /// <summary>The tolerance it exceeded.</summary>
    public double Tolerance { get; }
}
