using AscendCC.Device;

namespace AscendCC.TorchSharpBackend;

/// <summary>One operator launch of a lowered module chain, bound to device addresses: what eager mode sends alone and graph mode strings together.</summary>
/// <param name="Operator">Operator name in the device's catalog.</param>
/// <param name="Args">Buffer arguments.</param>
/// <param name="Scalars">Scalar arguments.</param>
internal sealed record DeviceOp(string Operator, KernelArgument[] Args, KernelScalar[] Scalars);
