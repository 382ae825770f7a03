using System.Globalization;
using AscendCC.Device;

namespace AscendCC.Runtime.Acl;

/// <summary>
/// The NPUs a host can open, by device id, as ACL exposes them: <see cref="Count"/> is
/// aclrtGetDeviceCount and <see cref="Open"/> is aclrtSetDevice's "initialise device N on first use,
/// reuse it after". Each device is powered on, with its <see cref="NpuRuntime"/>, the first time it is
/// opened; opening the same id again returns the same runtime. ACL's per-thread current device is left
/// to the caller (torch_npu keeps its own).
/// <para>
/// <see cref="Process"/> is the process-wide set, sized by <see cref="DeviceCountVariable"/>; tests and
/// hosts that want their own devices construct a set directly.
/// </para>
/// </summary>
public sealed class NpuDevices : IDisposable
{
    /// <summary>The environment variable that sets how many devices <see cref="Process"/> has (default 1).</summary>
    public const string DeviceCountVariable = "ASCENDCC_DEVICE_COUNT";

    /// <summary>Most devices a set may have (a host with more NPU slots than this is not simulated).</summary>
    public const int MaxDevices = 64;

    private static readonly Lazy<NpuDevices> s_process = new(() => new NpuDevices(ReadDeviceCount()));

    private readonly Func<int, NpuDeviceOptions> _options;
    private readonly NpuRuntime?[] _runtimes;
    private readonly object _gate = new();
    private bool _disposed;

    /// <summary>A set of <paramref name="count"/> devices, none powered on yet.</summary>
    /// <param name="count">Number of devices, 1 to <see cref="MaxDevices"/>.</param>
    /// <param name="options">
    /// The options device N is powered on with; by default the defaults with <see cref="NpuDeviceOptions.DeviceIndex"/> = N.
    /// </param>
    public NpuDevices(int count, Func<int, NpuDeviceOptions>? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, MaxDevices);
        _runtimes = new NpuRuntime?[count];
        _options = options ?? (id => new NpuDeviceOptions { DeviceIndex = id });
    }

    /// <summary>
    /// The process-wide devices: <see cref="DeviceCountVariable"/> of them, read once on first use.
    /// Never disposed; the devices live as long as the process.
    /// </summary>
    /// <exception cref="InvalidOperationException">The variable is set to something other than 1 to <see cref="MaxDevices"/>.</exception>
    public static NpuDevices Process => s_process.Value;

    /// <summary>Number of devices (aclrtGetDeviceCount).</summary>
    public int Count => _runtimes.Length;

    /// <summary>
    /// The runtime of device <paramref name="deviceId"/>, powering the device on the first time
    /// (aclrtSetDevice). The same id always returns the same runtime; the set owns it.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">No such device; the message names the valid ids.</exception>
    /// <exception cref="ObjectDisposedException">The set was disposed.</exception>
    public NpuRuntime Open(int deviceId)
    {
        CheckDeviceId(deviceId);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _runtimes[deviceId] ??= new NpuRuntime(new NpuDevice(_options(deviceId)), ownsDevice: true);
        }
    }

    /// <summary>True when device <paramref name="deviceId"/> has been opened (and is therefore powered on).</summary>
    public bool IsOpen(int deviceId)
    {
        CheckDeviceId(deviceId);
        lock (_gate)
        {
            return _runtimes[deviceId] is not null;
        }
    }

    /// <summary>Throws, naming the valid ids, when <paramref name="deviceId"/> is not a device of this set.</summary>
    /// <exception cref="ArgumentOutOfRangeException">No such device.</exception>
    public void CheckDeviceId(int deviceId)
    {
        if (deviceId < 0 || deviceId >= Count)
        {
            throw new ArgumentOutOfRangeException(nameof(deviceId), deviceId,
                $"device {deviceId} does not exist: there {(Count == 1 ? "is 1 device, id 0" : $"are {Count} devices, ids 0 to {Count - 1}")}.");
        }
    }

    /// <summary>Closes every opened device (aclrtResetDevice on each).</summary>
    public void Dispose()
    {
        NpuRuntime?[] opened;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            opened = (NpuRuntime?[])_runtimes.Clone();
            Array.Clear(_runtimes);
        }
        foreach (NpuRuntime? runtime in opened)
        {
            runtime?.Dispose();
        }
    }

    private static int ReadDeviceCount()
    {
        string? text = Environment.GetEnvironmentVariable(DeviceCountVariable);
        if (string.IsNullOrEmpty(text))
        {
            return 1;
        }
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count < 1 || count > MaxDevices)
        {
            throw new InvalidOperationException($"{DeviceCountVariable}='{text}' is not a device count; set it to an integer from 1 to {MaxDevices}, or unset it for one device.");
        }
        return count;
    }
}
