using AscendCC.Device;

namespace AscendCC.Runtime.Llama;

/// <summary>One operator launch of a device program: what eager mode sends alone and graph mode strings together.</summary>
/// <param name="Operator">Operator name in the device's catalog.</param>
/// <param name="Args">Buffer arguments.</param>
/// <param name="Scalars">Scalar arguments.</param>
public sealed record DeviceOp(string Operator, KernelArgument[] Args, KernelScalar[] Scalars);

/// <summary>How a program reaches the device.</summary>
public enum ExecutionMode
{
    /// <summary>Each operator is a one-op graph sent on its own (compileAndExecute).</summary>
    Eager,
    /// <summary>The whole task list is loaded once and run with executeModel.</summary>
    Graph,
}
