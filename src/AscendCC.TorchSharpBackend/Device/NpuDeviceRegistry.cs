using System.Globalization;
using AscendCC.Runtime.Acl;

namespace AscendCC.TorchSharpBackend;

/// <summary>
/// torch_npu's view of the process-wide NPUs (<see cref="NpuDevices.Process"/>, sized by
/// <c>ASCENDCC_DEVICE_COUNT</c>): each device's backend context (allocator, host-read policy) is made
/// the first time something addresses it, over the runtime the host runtime opens for that id, as
/// torch_npu initialises a device lazily on first use.
/// </summary>
internal static class NpuDeviceRegistry
{
    /// <summary>The environment variable that sets how many devices the process sees.</summary>
    public const string DeviceCountVariable = NpuDevices.DeviceCountVariable;

    private static readonly object s_gate = new();
    private static NpuDeviceContext?[]? s_devices;

    /// <summary>Number of devices (read once from <see cref="DeviceCountVariable"/>).</summary>
    public static int Count => NpuDevices.Process.Count;

    /// <summary>Device <paramref name="index"/>, created on first use.</summary>
    public static NpuDeviceContext Get(int index)
    {
        CheckIndex(index);
        lock (s_gate)
        {
            s_devices ??= new NpuDeviceContext?[Count];
            return s_devices[index] ??= new NpuDeviceContext(index, NpuDevices.Process.Open(index));
        }
    }

    /// <summary>Devices powered on so far.</summary>
    public static IEnumerable<NpuDeviceContext> Started()
    {
        lock (s_gate)
        {
            return s_devices is null ? [] : s_devices.OfType<NpuDeviceContext>().ToArray();
        }
    }

    /// <summary>Throws, naming the valid range and how to change it, when <paramref name="index"/> is not a device.</summary>
    public static void CheckIndex(int index)
    {
        if (index < 0 || index >= Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index,
                $"npu:{index} does not exist: this process has {Count} NPU(s), npu:0..npu:{Count - 1}. Set {DeviceCountVariable} before the first torch_npu call to simulate more.");
        }
    }

    /// <summary>
    /// Parses a device string strictly: "npu" (the current device) or "npu:N" with N a decimal index
    /// without sign or leading zeros. Anything else is refused rather than guessed at.
    /// </summary>
    public static int Parse(string device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device == "npu")
        {
            return torch_npu.npu.current_device();
        }
        const string prefix = "npu:";
        string digits = device.StartsWith(prefix, StringComparison.Ordinal) ? device[prefix.Length..] : "";
        bool wellFormed = digits.Length is > 0 and <= 9
            && digits.All(char.IsAsciiDigit)
            && (digits.Length == 1 || digits[0] != '0');
        if (!wellFormed)
        {
            throw new ArgumentException($"'{device}' is not an NPU device string; write \"npu\" or \"npu:N\" with N a device index such as \"npu:0\".", nameof(device));
        }
        int index = int.Parse(digits, NumberStyles.None, CultureInfo.InvariantCulture);
        CheckIndex(index);
        return index;
    }
}

/// <summary>One simulated NPU as the backend uses it: its runtime, tensor allocator and host-read policy.</summary>
internal sealed class NpuDeviceContext
{
    public NpuDeviceContext(int index, NpuRuntime runtime)
    {
        Index = index;
        Runtime = runtime;
        Allocator = new NpuCachingAllocator(runtime);
    }

    /// <summary>Device index N of "npu:N".</summary>
    public int Index { get; }

    /// <summary>The device string.</summary>
    public string Name => $"npu:{Index}";

    /// <summary>The ACL-style runtime over the device.</summary>
    public NpuRuntime Runtime { get; }

    /// <summary>The caching allocator behind tensors and compiled modules.</summary>
    public NpuCachingAllocator Allocator { get; }

    /// <summary>Decides whether device data may be copied back to the host; null allows everything.</summary>
    public INpuHostReadPolicy? HostReadPolicy { get; set; }

    /// <summary>Applies <see cref="HostReadPolicy"/> to a read of <paramref name="what"/>; throws when refused.</summary>
    public void CheckHostRead(string what) => HostReadPolicy?.CheckHostRead(Name, what);
}
