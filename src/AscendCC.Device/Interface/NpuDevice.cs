using System.Runtime.Intrinsics;
using AscendCC.Device.AiCore;
using AscendCC.Device.Hbm;
using AscendCC.Device.Scheduler;
using TaskScheduler = AscendCC.Device.Scheduler.TaskScheduler;

namespace AscendCC.Device;

/// <summary>
/// An NPU as the host sees it across PCIe: the hardware interface, and the only way in. The host
/// writes task bytes into a stream's task buffer, rings the stream's doorbell, reads the completion
/// queue, registers host memory the DMA engine may reach, and reads a few registers. Everything else
/// — HBM contents, SMMU tables, keys, measurements — stays inside this assembly, so a test can play a
/// fully malicious host by calling these members with any bytes it likes.
/// </summary>
public sealed class NpuDevice : IDisposable
{
    private readonly HbmMemory _hbm;
    private readonly Smmu.Smmu _smmu;
    private readonly HostBuffers _hostBuffers = new();
    private readonly CompletionQueue _completions = new();
    private readonly TaskScheduler _scheduler;
    private bool _disposed;

    /// <summary>Powers on a device.</summary>
    public NpuDevice(NpuDeviceOptions? options = null)
    {
        options ??= new NpuDeviceOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.StreamCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.EventCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.TaskBufferBytes, 4096);
        _hbm = new HbmMemory(options.HbmCapacity);
        _smmu = new Smmu.Smmu(_hbm);
        AiCoreGrid grid = options.AiCoreCount <= 0 || options.AiCoreCount == AiCoreGrid.Shared.CoreCount
            ? AiCoreGrid.Shared
            : new AiCoreGrid(options.AiCoreCount);
        _scheduler = new TaskScheduler(_hbm, _smmu, grid, _hostBuffers, _completions, options.StreamCount, options.EventCount, options.TaskBufferBytes);
        Properties = new DeviceProperties(
            $"AscendCC simulated NPU {options.DeviceIndex}",
            options.HbmCapacity,
            grid.CoreCount,
            AiCpuCount: 4,
            options.StreamCount,
            options.EventCount,
            options.TaskBufferBytes,
            Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : 128);
    }

    /// <summary>The device's identification and capacity registers.</summary>
    public DeviceProperties Properties { get; }

    /// <summary>Reads the HBM usage registers.</summary>
    public DeviceMemoryInfo QueryMemoryInfo() => _hbm.Info;

    /// <summary>Resets the peak-usage register to the current usage.</summary>
    public void ResetPeakMemory() => _hbm.ResetPeak();

    /// <summary>
    /// Registers host memory the device's DMA engine may read and write (pinned and IOMMU-mapped on
    /// real hardware). Copy tasks name the returned handle.
    /// </summary>
    public int RegisterHostBuffer(Memory<byte> buffer) => _hostBuffers.Register(buffer);

    /// <summary>Removes a host buffer registration; false if the handle is unknown.</summary>
    public bool UnregisterHostBuffer(int handle) => _hostBuffers.Unregister(handle);

    /// <summary>
    /// Writes task bytes (see <see cref="TaskWriter"/>) into stream <paramref name="stream"/>'s task
    /// buffer. They run after <see cref="RingDoorbell"/>. Returns false, writing nothing, when the
    /// task buffer lacks room: ring the doorbell and drain completions, then submit again.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">No such stream.</exception>
    public bool Submit(int stream, ReadOnlySpan<byte> tasks)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _scheduler.Stream(stream).Submit(tasks);
    }

    /// <summary>Makes everything submitted to <paramref name="stream"/> so far visible to the task scheduler.</summary>
    public void RingDoorbell(int stream)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _scheduler.Doorbell(stream);
    }

    /// <summary>Takes the next completion queue entry, if any.</summary>
    public bool TryReadCompletion(out CompletionEntry entry) => _completions.TryRead(out entry);

    /// <summary>Waits up to <paramref name="timeout"/> for a completion queue entry.</summary>
    public bool WaitForCompletion(TimeSpan timeout, out CompletionEntry entry) => _completions.Read(timeout, out entry);

    /// <summary>
    /// Resets the device: stops accepting tasks in flight, forgets streams, events, operators and
    /// models, and scrubs (zeroes) and frees all of HBM before anything can be mapped again.
    /// </summary>
    public void Reset()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _scheduler.Quiesce(() =>
        {
            _scheduler.ClearState();
            _hbm.Clear();
        });
    }

    /// <summary>Powers the device off, scrubbing HBM.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _scheduler.Dispose();
        _hbm.Dispose();
        _completions.Dispose();
    }
}
