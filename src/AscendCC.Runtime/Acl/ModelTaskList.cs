using AscendCC.Device;

namespace AscendCC.Runtime.Acl;

/// <summary>
/// A model's task list under construction (graph mode): kernel launches and device-side copies that
/// <see cref="NpuRuntime.LoadModel"/> places in HBM and the device then runs as a whole with each
/// <see cref="NpuRuntime.ExecuteModel"/>.
/// </summary>
public sealed class ModelTaskList
{
    private readonly TaskWriter _writer = new(1 << 16);
    private readonly NpuRuntime _runtime;

    internal ModelTaskList(NpuRuntime runtime) => _runtime = runtime;

    /// <summary>Number of tasks so far.</summary>
    public int Count { get; private set; }

    /// <summary>The encoded task list.</summary>
    public ReadOnlySpan<byte> Bytes => _writer.Written;

    /// <summary>Appends a launch of operator <paramref name="op"/>.</summary>
    public void Launch(string op, ReadOnlySpan<KernelArgument> args, ReadOnlySpan<KernelScalar> scalars)
    {
        _writer.KernelLaunch((ulong)Count, _runtime.LoadOperator(op), args, scalars);
        Count++;
    }

    /// <summary>Appends a device-to-device copy.</summary>
    public void Copy(ulong source, ulong destination, long bytes)
    {
        _writer.CopyDeviceToDevice((ulong)Count, source, destination, bytes);
        Count++;
    }

    /// <summary>Appends a memset.</summary>
    public void Memset(ulong address, long bytes, byte value)
    {
        _writer.Memset((ulong)Count, address, bytes, value);
        Count++;
    }
}

/// <summary>A model loaded on the device.</summary>
/// <param name="Id">The device's model id.</param>
/// <param name="TaskList">The HBM region that holds its task list.</param>
/// <param name="TaskCount">Number of tasks.</param>
public sealed record LoadedModelHandle(int Id, DeviceBuffer TaskList, int TaskCount);
