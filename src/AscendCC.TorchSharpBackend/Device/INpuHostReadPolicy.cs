namespace AscendCC.TorchSharpBackend;

/// <summary>
/// Decides whether data on an NPU may be copied back to the host in plaintext. Every readout the
/// backend performs — <see cref="NpuTensor.cpu"/>, a compiled module's output, a compiled model's
/// logits — asks the device's policy first. The default (no policy) allows everything; a
/// confidential-computing layer installs one with <see cref="torch_npu.npu.set_host_read_policy"/>
/// that refuses reads the model provider has not permitted.
/// </summary>
public interface INpuHostReadPolicy
{
    /// <summary>Throws (with a message saying why and what to do) when <paramref name="what"/> may not leave <paramref name="device"/>.</summary>
    /// <param name="device">The device string, e.g. "npu:0".</param>
    /// <param name="what">What is being read, e.g. "NpuTensor [2, 3] Float32".</param>
    void CheckHostRead(string device, string what);
}
