using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using Microsoft.Extensions.Options;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Server.Plain;

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
    /// One request at a time per device. With a single-session model a generation holds it for its
    /// whole stream: the loaded model's context (KV cache) belongs to one session at a time, so
    /// sessions queue. A batched model's loop takes it for one step at a time (<see cref="BatchLoop"/>).
    /// </summary>
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>The loaded model, if any (guarded by the device gate).</summary>
    internal CausalLM? Loaded { get; set; }

    /// <summary>The package the loaded model came from.</summary>
    internal string? LoadedPackage { get; set; }

    /// <summary>A batched model's loop (its deployment answers several sessions at once), or null.</summary>
    internal BatchLoop? Batch { get; set; }

    /// <summary>CC off, a model of several sequences: the loop that batches the OpenAI requests' replies, or null.</summary>
    internal PlainBatchLoop? PlainBatch { get; set; }

    private int _queued;

    /// <summary>Requests waiting for or holding the device gate (a CC-off request goes to the NPU with the fewest).</summary>
    internal int Queued => Volatile.Read(ref _queued);

    /// <summary>Waits for the device (first come, first served: the gate's waiters are released in order).</summary>
    internal async Task EnterAsync(CancellationToken cancel)
    {
        Interlocked.Increment(ref _queued);
        try
        {
            await _gate.WaitAsync(cancel).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _queued);
            throw;
        }
    }

    /// <summary>Gives the device to the next waiter.</summary>
    internal void Leave()
    {
        _gate.Release();
        Interlocked.Decrement(ref _queued);
    }

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

    internal bool HasSession(int session)
    {
        lock (_sessions)
        {
            return _sessions.Contains(session);
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
        Batch?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        PlainBatch?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Loaded?.Dispose();
        Runtime.Dispose();
        Device.Dispose();
        _gate.Dispose();
    }
}

/// <summary>
/// The NPUs this host owns, booted (measured boot) from the manufacturer-signed firmware at startup:
/// with CC on, empty until a model provider has a package loaded; with CC off, each with the
/// configured plaintext model.
/// </summary>
public sealed class NpuFleet : IDisposable
{
    private readonly NpuSlot[] _slots;

    /// <summary>Boots <see cref="NpuServerOptions.DeviceCount"/> NPUs from <paramref name="hardware"/> (and with CC off loads <see cref="NpuServerOptions.Model"/> on each).</summary>
    public NpuFleet(NpuHardware hardware, IOptions<NpuServerOptions> options, ILogger<NpuFleet> logger)
    {
        ArgumentNullException.ThrowIfNull(hardware);
        ArgumentNullException.ThrowIfNull(options);
        NpuServerOptions o = options.Value;
        if (o.DeviceCount < 1 || o.DeviceCount > hardware.Fuses.Count)
        {
            throw new InvalidOperationException($"Npu:DeviceCount is {o.DeviceCount}; the hardware has {hardware.Fuses.Count} fuse image(s)");
        }
        if (o.Confidential && o.Model is not null)
        {
            throw new InvalidOperationException($"Npu:Model is set ({o.Model}) but CC is on: a confidential host never loads plaintext weights; model providers upload encrypted packages (docs/server.md). Set Npu:Confidential=false to serve that folder in plaintext");
        }
        if (!o.Confidential && string.IsNullOrEmpty(o.Model))
        {
            throw new InvalidOperationException("Npu:Confidential is false but Npu:Model is not set: a CC-off host serves one plaintext model; set Npu:Model to a Hugging Face model folder");
        }
        if (!o.Confidential && o.MaxSequences < 1)
        {
            throw new InvalidOperationException($"Npu:MaxSequences is {o.MaxSequences}; it is how many replies each NPU decodes together: 1 or more (1 answers one request at a time)");
        }
        Options = o;
        Directory.CreateDirectory(o.ModelStore);
        CcMode mode = o.Confidential ? CcMode.On : CcMode.Off;
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
                    Boot = new DeviceBootOptions(hardware.SignedFirmware, mode),
                });
                slots.Add(new NpuSlot(i, device));
                logger.LogInformation("NPU {Device} booted (CC {Mode}, HBM {HbmBytes} bytes) in {Milliseconds} ms", i, mode, o.HbmCapacity, clock.ElapsedMilliseconds);
            }
            if (!o.Confidential)
            {
                LoadPlainModel(slots, o, logger);
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

    /// <summary>CC off: the model id reported to OpenAI clients; null with CC on.</summary>
    public string? PlainModelId { get; private set; }

    private void LoadPlainModel(List<NpuSlot> slots, NpuServerOptions o, ILogger logger)
    {
        string folder = o.Model!;
        using ModelCheckpoint checkpoint = ModelCheckpoint.Open(folder);
        WeightPrecision precision = o.Weights ?? CheckpointPrecisions.Stored(checkpoint);
        if (CheckpointPrecisions.Refusal(checkpoint, precision) is { } refusal)
        {
            throw new InvalidOperationException($"Npu:Weights {precision}: {folder}'s {refusal} (set Npu:Weights to one)");
        }
        foreach (NpuSlot slot in slots)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            slot.Loaded = CausalLM.Load(slot.Runtime, checkpoint, new CausalLMOptions
            {
                Mode = o.Mode, MaxContext = o.MaxContext > 0 ? o.MaxContext : 2048, MaxSequences = o.MaxSequences, WeightPrecision = precision,
                KvCachePrecision = o.KvCache,
            });
            slot.LoadedPackage = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
            if (slot.Loaded.MaxSequences > 1)
            {
                slot.PlainBatch = new PlainBatchLoop(slot, slot.Loaded, logger);
            }
            logger.LogInformation("NPU {Device} loaded {Model} in plaintext (CC off, weights {Precision}, KV cache {KvCache}, context {Context}, {Sequences} sequences at once) in {Milliseconds} ms",
                slot.Index, folder, precision, o.KvCache, slot.Loaded.MaxContext, slot.Loaded.MaxSequences, clock.ElapsedMilliseconds);
        }
        PlainModelId = o.ModelId ?? slots[0].LoadedPackage;
    }

    /// <summary>Every NPU.</summary>
    public IReadOnlyList<NpuSlot> Devices => _slots;

    /// <summary>The NPU at <paramref name="index"/>.</summary>
    /// <exception cref="UnknownResourceException">No such device.</exception>
    public NpuSlot this[int index] => index >= 0 && index < _slots.Length
        ? _slots[index]
        : throw new UnknownResourceException($"there is no NPU {index} on this host; it has {_slots.Length} (GET /v1/devices lists them)");

    /// <summary>
    /// Where a new data owner of <paramref name="package"/> should go: among the NPUs with it loaded,
    /// the one with the fewest requests queued (then the fewest open sessions, then the lowest index).
    /// Only a hint: the data owner attests whichever device answers, and the device binds the session
    /// to the model the data owner requires.
    /// </summary>
    /// <exception cref="UnknownResourceException">No NPU has the package loaded.</exception>
    public NpuSlot Place(string package)
    {
        NpuSlot? best = _slots.Where(s => s.LoadedPackage == package)
            .OrderBy(s => s.Queued).ThenBy(s => s.SessionCount).ThenBy(s => s.Index).FirstOrDefault();
        if (best is not null)
        {
            return best;
        }
        string[] loaded = [.. _slots.Select(s => s.LoadedPackage).OfType<string>().Distinct()];
        throw new UnknownResourceException(loaded.Length == 0
            ? $"no NPU of this host has package '{package}' loaded; none has a model loaded yet (its model provider deploys it)"
            : $"no NPU of this host has package '{package}' loaded; loaded: {string.Join(", ", loaded)}");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (NpuSlot s in _slots)
        {
            s.Dispose();
        }
    }
}
