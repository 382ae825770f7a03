using System.Runtime.CompilerServices;
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
    private readonly Confidential.ConfidentialFirmware? _firmware;
    private DeviceBootOptions? _boot;
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
        if (options.Fuses is not null)
        {
            _firmware = new Confidential.ConfidentialFirmware(new Security.DeviceSecurityEngine(options.Fuses.ToFuses()), _hbm) { Scheduler = _scheduler };
            _scheduler.Firmware = _firmware;
            if (options.Boot is not null)
            {
                BootFirmware(options.Boot);
            }
        }
        else if (options.Boot is not null)
        {
            throw new ArgumentException("A device without fuses has no boot ROM to verify firmware; provision fuses first.", nameof(options));
        }
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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool Submit(int stream, ReadOnlySpan<byte> tasks)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _scheduler.Stream(stream).Submit(tasks);
    }

    /// <summary>Makes everything submitted to <paramref name="stream"/> so far visible to the task scheduler.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
    /// Resets the device: forgets streams, events, operators and models, scrubs (zeroes) and frees all
    /// of HBM before anything can be mapped again, destroys every key and session, and boots again —
    /// with <paramref name="boot"/> when given (the only way to change firmware or CC mode), else with
    /// what was booted before.
    /// </summary>
    /// <returns>The boot outcome: <see cref="MailboxStatus.Ok"/>, or why the boot ROM refused the firmware (then the device stays unbooted).</returns>
    public (MailboxStatus Status, string? Message) Reset(DeviceBootOptions? boot = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        (MailboxStatus, string?) outcome = (MailboxStatus.Ok, null);
        _scheduler.Quiesce(() =>
        {
            _scheduler.ClearState();
            _firmware?.Clear();
            if (_firmware is not null)
            {
                _firmware.Engine.Reset(_hbm.Clear);
            }
            else
            {
                _hbm.Clear();
            }
            DeviceBootOptions? next = boot ?? _boot;
            if (_firmware is not null && next is not null)
            {
                outcome = BootFirmware(next);
            }
        });
        return outcome;
    }

    private (MailboxStatus, string?) BootFirmware(DeviceBootOptions boot)
    {
        _boot = boot;
        try
        {
            _firmware!.Engine.Boot(boot.SignedFirmware.Span, new Security.BootConfiguration(boot.Mode, boot.DebugRequested), boot.CommitSecurityVersion);
            return (MailboxStatus.Ok, null);
        }
        catch (Security.FirmwareRejectedException ex)
        {
            return (MailboxStatus.Refused, ex.Message);
        }
    }

    /// <summary>
    /// The firmware mailbox (see <see cref="MailboxCommand"/>): attestation, secure channels, key
    /// release, package unlock. Any bytes are accepted; a bad request gets an error response.
    /// </summary>
    public byte[] Mailbox(ReadOnlySpan<byte> request)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_firmware is null)
        {
            return MailboxMessage.Error(MailboxStatus.NotBooted, "this device has no root of trust (no fuses); confidential computing is unavailable");
        }
        byte[] copy = request.ToArray();
        byte[] response = [];
        _scheduler.Quiesce(() => response = _firmware.Mailbox(copy));
        return response;
    }

    /// <summary>The CC mode the device booted in (Off without fuses or before boot).</summary>
    public Protocol.Attestation.CcMode CcMode => _firmware is { Engine.State: Security.DeviceSecurityState.Booted } fw ? fw.Engine.Mode : Protocol.Attestation.CcMode.Off;

    /// <summary>
    /// Debug port: reads device memory. Refused in CC mode On (R6); open with CC off or in DevTools
    /// mode, which attestation reports and the default verifier policy rejects.
    /// </summary>
    public DebugStatus DebugReadMemory(ulong address, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_firmware is { DebugLocked: true })
        {
            return DebugStatus.Locked;
        }
        Hbm.HbmRegion? region = _hbm.Find(address, destination.Length);
        if (region is null)
        {
            return DebugStatus.InvalidAddress;
        }
        region.Slice(address, destination.Length).CopyTo(destination);
        return DebugStatus.Ok;
    }

    /// <summary>Debug port: a snapshot of every live region (address, tag, bytes). Refused in CC mode On (R6).</summary>
    public DebugStatus DebugSnapshot(out IReadOnlyList<(ulong Address, RegionTag Tag, byte[] Bytes)> snapshot)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        snapshot = [];
        if (_firmware is { DebugLocked: true })
        {
            return DebugStatus.Locked;
        }
        var list = new List<(ulong, RegionTag, byte[])>();
        _scheduler.Quiesce(() =>
        {
            foreach (Hbm.HbmRegion r in _hbm.Regions())
            {
                list.Add((r.Address, r.Tag, r.Slice(r.Address, r.Size).ToArray()));
            }
        });
        snapshot = list;
        return DebugStatus.Ok;
    }

    /// <summary>
    /// Debug port: data-bearing profiling — the first bytes of every kernel's first output as it
    /// completes. Refused in CC mode On (R6).
    /// </summary>
    public DebugStatus EnableDataProfiling(bool enabled)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_firmware is { DebugLocked: true })
        {
            return DebugStatus.Locked;
        }
        _scheduler.DataProfiling = enabled;
        return DebugStatus.Ok;
    }

    /// <summary>Device time per operator (internal: for benchmarks, not part of the hardware interface).</summary>
    internal Scheduler.OperatorClock OperatorClock => _scheduler.Clock;

    /// <summary>Profiling records collected while data profiling was on (operator name, first output bytes).</summary>
    public IReadOnlyList<(string Operator, byte[] OutputHead)> ReadProfile() => _scheduler.ProfileRecords();

    /// <summary>Powers the device off, scrubbing HBM.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _scheduler.Dispose();
        _firmware?.Dispose();
        _hbm.Dispose();
        _completions.Dispose();
    }
}
