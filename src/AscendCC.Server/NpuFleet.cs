using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using Microsoft.Extensions.Options;
using AscendCC.Runtime.Inference;

namespace AscendCC.Server;

/// <summary>One NPU the host owns: the device, the host runtime and mailbox relay, the loaded model and the sessions opened through this host.</summary>
public sealed class NpuSlot : IDisposable
{
    private readonly HashSet<int> _sessions = [];

    internal NpuSlot(int index, NpuDevice device)
    {
        Index = index;
        Device = device;
        Runtime = new NpuRuntime(device);
        Mailbox = new FirmwareMailbox(device);
    }

    /// <summary>The device's index on this host.</summary>
    public int Index { get; }

    /// <summary>The NPU (its raw hardware interface).</summary>
    public NpuDevice Device { get; }

    /// <summary>The host runtime on it.</summary>
    public NpuRuntime Runtime { get; }

    /// <summary>The firmware mailbox relay.</summary>
    public FirmwareMailbox Mailbox { get; }

    /// <summary>
    /// One request at a time per device. A generation holds it for its whole stream: the loaded
    /// model's context (KV cache) belongs to one session at a time, so sessions queue.
    /// </summary>
    internal SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>The loaded model, if any (guarded by <see cref="Gate"/>).</summary>
    internal CausalLM? Loaded { get; set; }

    /// <summary>The package the loaded model came from.</summary>
    internal string? LoadedPackage { get; set; }

    internal void AddSession(int session)
    {
        lock (_sessions)
        {
            _sessions.Add(session);
        }
    }

    internal bool RemoveSession(int session)
    {
        lock (_sessions)
        {
            return _sessions.Remove(session);
        }
    }

    internal int SessionCount
    {
        get
        {
            lock (_sessions)
            {
                return _sessions.Count;
            }
        }
    }

    internal void RequireSession(int session)
    {
        lock (_sessions)
        {
            if (!_sessions.Contains(session))
            {
                throw new UnknownResourceException($"NPU {Index} has no session {session} opened through this host; open one with POST /v1/devices/{Index}/sessions");
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Loaded?.Dispose();
        Runtime.Dispose();
        Device.Dispose();
        Gate.Dispose();
    }
}

/// <summary>The NPUs this host owns, booted (measured boot, CC on) from the manufacturer-signed firmware at startup.</summary>
public sealed class NpuFleet : IDisposable
{
    private readonly NpuSlot[] _slots;

    /// <summary>Boots <see cref="NpuServerOptions.DeviceCount"/> NPUs from <paramref name="hardware"/>.</summary>
    public NpuFleet(NpuHardware hardware, IOptions<NpuServerOptions> options, ILogger<NpuFleet> logger)
    {
        ArgumentNullException.ThrowIfNull(hardware);
        ArgumentNullException.ThrowIfNull(options);
        NpuServerOptions o = options.Value;
        if (o.DeviceCount < 1 || o.DeviceCount > hardware.Fuses.Count)
        {
            throw new InvalidOperationException($"Npu:DeviceCount is {o.DeviceCount}; the hardware has {hardware.Fuses.Count} fuse image(s)");
        }
        Options = o;
        Directory.CreateDirectory(o.ModelStore);
        var slots = new List<NpuSlot>();
        try
        {
            for (int i = 0; i < o.DeviceCount; i++)
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var device = new NpuDevice(new NpuDeviceOptions
                {
                    HbmCapacity = o.HbmCapacity,
                    Fuses = hardware.Fuses[i],
                    DeviceIndex = i,
                    Boot = new DeviceBootOptions(hardware.SignedFirmware, CcMode.On),
                });
                slots.Add(new NpuSlot(i, device));
                logger.LogInformation("NPU {Device} booted (CC on, HBM {HbmBytes} bytes) in {Milliseconds} ms", i, o.HbmCapacity, clock.ElapsedMilliseconds);
            }
        }
        catch
        {
            foreach (NpuSlot s in slots)
            {
                s.Dispose();
            }
            throw;
        }
        _slots = [.. slots];
    }

    /// <summary>The configuration.</summary>
    public NpuServerOptions Options { get; }

    /// <summary>Every NPU.</summary>
    public IReadOnlyList<NpuSlot> Devices => _slots;

    /// <summary>The NPU at <paramref name="index"/>.</summary>
    /// <exception cref="UnknownResourceException">No such device.</exception>
    public NpuSlot this[int index] => index >= 0 && index < _slots.Length
        ? _slots[index]
        : throw new UnknownResourceException($"there is no NPU {index} on this host; it has {_slots.Length} (GET /v1/devices lists them)");

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (NpuSlot s in _slots)
        {
            s.Dispose();
        }
    }
}
