using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using AscendCC.Device.Graph;
using AscendCC.Device.Hbm;
using AscendCC.Device.Scheduler;
using AscendCC.Device.Security;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Measurements;
using AscendCC.Protocol.Packaging;
using AscendCC.Protocol;

namespace AscendCC.Device.Confidential;

/// <summary>
/// The NPU firmware's confidential-computing rules, applied to every task and mailbox request:
/// R2 memory lock (sensitive regions are born unmapped from the host and stay so until scrubbed),
/// R3 memory invariant (only sealed ciphertext leaves for the host), R4 execution integrity
/// (a model runs only if its task list measures as the provider signed; eager launches only as the
/// attested list allows), R6 debug lockdown, and the firmware mailbox for attestation, channels,
/// key release and package unlock.
/// </summary>
internal sealed class ConfidentialFirmware : ITaskGuard, IDisposable
{
    private readonly DeviceSecurityEngine _engine;
    private readonly HbmMemory _hbm;
    private readonly Dictionary<int, OpenedPackage> _packages = new();
    private int _nextPackage = 1;

    public ConfidentialFirmware(DeviceSecurityEngine engine, HbmMemory hbm)
    {
        _engine = engine;
        _hbm = hbm;
    }

    /// <summary>The scheduler, for operator digests and loaded models (set once by the device).</summary>
    public Scheduler.TaskScheduler? Scheduler { get; set; }

    /// <summary>True when the booted firmware runs in CC mode On or DevTools: the R2–R4 rules apply.</summary>
    public bool Active => _engine.State == DeviceSecurityState.Booted && _engine.Mode != CcMode.Off;

    /// <summary>True when debug paths that reveal data must be refused (R6).</summary>
    public bool DebugLocked => _engine.State == DeviceSecurityState.Booted && _engine.Mode == CcMode.On;

    /// <summary>The security engine.</summary>
    public DeviceSecurityEngine Engine => _engine;

    /// <summary>The data-owner session whose prompt the current generation decrypted; outputs are sealed only for it.</summary>
    public int? ActiveDataSession { get; set; }

    /// <summary>Tokens in the prompt opened last.</summary>
    public int PromptLength { get; set; }

    /// <summary>An opened package, for the unlock operator.</summary>
    public ModelPackageReader? Package(int handle) => _packages.TryGetValue(handle, out OpenedPackage? p) ? p.Reader : null;

    /// <summary>
    /// The encrypted bytes of item <paramref name="index"/> of an opened package, where they lie staged in
    /// HBM (pinned while the package is open), so the unlock decrypts in place with no stream copy.
    /// </summary>
    public unsafe ReadOnlySpan<byte> StagedItem(int handle, int index)
    {
        OpenedPackage p = _packages[handle];
        (long offset, long length) = p.Reader.GetEncryptedItemRange(index);
        if (offset < 0 || length < 0 || offset + length > p.Stream.Length || length > int.MaxValue)
        {
            throw new ConfidentialOperatorException($"the staged package ends inside item {index}: the item needs bytes up to {offset + length}, {p.Stream.Length} were staged; stage the complete package");
        }
        return new ReadOnlySpan<byte>(p.Stream.PositionPointer - p.Stream.Position + offset, (int)length);
    }

    /// <summary>
    /// Called for every new region. In CC mode, regions that will hold plaintext the device computes
    /// (activations, KV cache, workspace) are locked from birth. A weight region is born write-only
    /// for the host, to receive its tensor's ciphertext; package_unlock locks it before decrypting it
    /// in place, and nothing but package_unlock gives it the item name an attested model binds by.
    /// </summary>
    public void OnAllocated(HbmRegion region)
    {
        if (!Active)
        {
            return;
        }
        if (region.Tag is RegionTag.Activations or RegionTag.KvCache or RegionTag.Workspace)
        {
            region.Locked = true;
            region.HostAccess = DmaAccess.None;
        }
        else if (region.Tag == RegionTag.Weights)
        {
            region.HostAccess = DmaAccess.Write;
        }
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public TaskOutcome? Check(ref DecodedTask t, int stream, bool inModel)
    {
        if (!Active)
        {
            return null;
        }
        switch (t.Kind)
        {
            case TaskKind.MemcpyDeviceToHost:
            {
                HbmRegion? r = _hbm.Find(t.C, (long)t.D);
                if (r is null || r.Tag != RegionTag.OutputStaging || !r.CiphertextOnly)
                {
                    return TaskOutcome.Fail(CompletionStatus.AccessDenied,
                        $"R3: in confidential mode only sealed ciphertext in an output staging region may be copied to the host; 0x{t.C:x} is {(r is null ? "not allocated" : $"a {r.Tag} region{(r.Tag == RegionTag.OutputStaging ? " holding no sealed record" : "")}")}", t.C);
                }
                return null;
            }
            case TaskKind.SetDmaAccess:
            {
                HbmRegion? r = _hbm.Find(t.A, 0);
                if (r is not null && r.Locked)
                {
                    return TaskOutcome.Fail(CompletionStatus.AccessDenied, $"R2: region 0x{t.A:x} ({r.Tag}) is locked away from the host until it is freed and scrubbed", t.A);
                }
                return null;
            }
            case TaskKind.MemcpyDeviceToDevice when !inModel:
            {
                HbmRegion? from = _hbm.Find(t.A, (long)t.C), to = _hbm.Find(t.B, (long)t.C);
                if (from is not null && from.Locked && (to is null || !to.Locked))
                {
                    return TaskOutcome.Fail(CompletionStatus.AccessDenied, $"R3: a copy from locked {from.Tag} memory may only go to locked memory", t.B);
                }
                // Found by the attack R4_EagerCopyIntoLockedRegion: without this, the host could
                // overwrite locked weights, KV cache or activations with its own bytes (through a
                // general region) or with another locked tensor, and the attested model would run
                // on them. Writes into locked memory are the attested model's alone.
                return to is { Locked: true } ? CheckEagerTask(ref t, "a copy into locked memory") : null;
            }
            case TaskKind.Memset when !inModel:
            {
                // Found by the attack R4_EagerMemsetOverwritesWeights: same reasoning as above.
                HbmRegion? r = _hbm.Find(t.A, 0);
                return r is { Locked: true } ? CheckEagerTask(ref t, "a memset of locked memory") : null;
            }
            case TaskKind.Free:
            {
                HbmRegion? r = _hbm.Find(t.A, 0);
                if (r is not null && r.PinCount > 0)
                {
                    return _packages.Values.Any(p => p.Staging == r)
                        ? TaskOutcome.Fail(CompletionStatus.AccessDenied, $"region 0x{t.A:x} holds an open model package the device reads in place; close the package (mailbox ClosePackage) first", t.A)
                        : TaskOutcome.Fail(CompletionStatus.AccessDenied, $"R4: region 0x{t.A:x} is bound by a loaded confidential model; unload the model first", t.A);
                }
                return null;
            }
            case TaskKind.KernelLaunch when !inModel:
                return CheckEagerLaunch(ref t);
            default:
                return null;
        }
    }

    /// <summary>CC-mode eager rule: a launch must be one the attested model's task list contains, bound to the same regions.</summary>
    private TaskOutcome? CheckEagerLaunch(ref DecodedTask t)
    {
        Scheduler.TaskScheduler scheduler = Scheduler!;
        Operators.IOperator? op = scheduler.LoadedOperator(t.A);
        if (op is { Unit: Operators.ExecutionUnit.AiCpu } && op.Name == "package_unlock")
        {
            // The firmware's own unlock operator: its arguments are checked by the operator itself.
            return null;
        }
        return MatchesAttestedTask(ref t) ? null : TaskOutcome.Fail(CompletionStatus.AccessDenied,
            $"R4: in confidential mode an eager launch must match a launch of the attested model; {(op?.Name ?? "this operator")} with these bindings is not one");
    }

    /// <summary>CC-mode eager rule for copies and memsets that write locked memory: only as a task of the attested list.</summary>
    private TaskOutcome? CheckEagerTask(ref DecodedTask t, string what) =>
        MatchesAttestedTask(ref t) ? null : TaskOutcome.Fail(CompletionStatus.AccessDenied,
            $"R4: in confidential mode {what} must match a task of the attested model; this {t.Kind} is not one", t.Kind == TaskKind.Memset ? t.A : t.B);

    /// <summary>True when <paramref name="t"/> measures like one task of a verified model's list (same kind, operator, region roles and bindings).</summary>
    private bool MatchesAttestedTask(ref DecodedTask t)
    {
        Scheduler.TaskScheduler scheduler = Scheduler!;
        foreach (LoadedModel model in scheduler.Models.Values)
        {
            if (model.Attestation is not { Verified: true } attestation)
            {
                continue;
            }
            if (attestation.Accepted.Contains(ref t))
            {
                return true;
            }
            using var m = new GraphMeasurement(attestation.Ordinals);
            if (TaskListMeasurer.Measure(ref t, m, _hbm, scheduler.OperatorDigest) is null && attestation.TaskDigests.Contains(Convert.ToHexString(m.EndTask())))
            {
                attestation.Accepted.Add(ref t);
                return true;
            }
        }
        return false;
    }

    /// <summary>Measures a model's task list at load; pins its regions when it matches a released package's expected measurement.</summary>
    public void Attest(LoadedModel model)
    {
        if (!Active)
        {
            return;
        }
        Scheduler.TaskScheduler scheduler = Scheduler!;
        using var m = new GraphMeasurement();
        var digests = new HashSet<string>(StringComparer.Ordinal);
        var regions = new HashSet<HbmRegion>();
        string? problem = null;
        for (int i = 0; i < model.Tasks.Length && problem is null; i++)
        {
            problem = TaskListMeasurer.Measure(ref model.Tasks[i], m, _hbm, scheduler.OperatorDigest);
            if (problem is null)
            {
                digests.Add(Convert.ToHexString(m.EndTask()));
            }
            else
            {
                problem = $"task {i}: {problem}";
            }
        }
        byte[] measurement = m.Finish();
        string? expected = null;
        bool verified = false;
        if (problem is null)
        {
            foreach (OpenedPackage p in _packages.Values)
            {
                ReadOnlySpan<byte> e = p.Reader.Manifest.ExpectedGraphMeasurement.Span;
                expected ??= Convert.ToHexString(e);
                if (CryptographicOperations.FixedTimeEquals(e, measurement))
                {
                    verified = true;
                    expected = Convert.ToHexString(e);
                    break;
                }
            }
            problem = verified ? null : expected is null ? "no model package is open, so there is no signed measurement to compare with" : null;
        }
        if (verified)
        {
            // Attestation reports from now on say which model this device runs.
            _engine.ExtendModelMeasurement(measurement);
            foreach (ulong key in m.Ordinals.Keys)
            {
                HbmRegion? r = _hbm.Find(key, 0);
                if (r is not null && regions.Add(r))
                {
                    r.PinCount++;
                }
            }
            foreach (DecodedTask task in model.Tasks)
            {
                // Found by the attack R4_OperatorSwappedAfterAttestation: the measurement holds the
                // digest of the binary loaded at each launch's handle when the list was attested, but
                // the launch runs whatever is loaded at that handle when executed. Pinning the
                // operator's region keeps the host from freeing it and loading another binary there.
                if (task.Kind == TaskKind.KernelLaunch && _hbm.Find(task.A, 0) is { } opRegion && regions.Add(opRegion))
                {
                    opRegion.PinCount++;
                }
                foreach (HbmRegion r in RegionsOf(task))
                {
                    if (regions.Add(r))
                    {
                        r.PinCount++;
                    }
                }
            }
        }
        model.Attestation = new ModelAttestation(verified, measurement, expected, problem, m.Ordinals.ToDictionary(), digests, regions.ToArray());
    }

    private IEnumerable<HbmRegion> RegionsOf(DecodedTask task)
    {
        for (int i = 0; i < task.ArgCount; i++)
        {
            if (!task.Args![i].IsNone && _hbm.Find(task.Args[i].Address, 0) is { } r)
            {
                yield return r;
            }
        }
    }

    /// <summary>Unpins a model's regions when it is unloaded.</summary>
    public static void Release(LoadedModel model)
    {
        if (model.Attestation is { Verified: true } a)
        {
            foreach (HbmRegion r in a.Regions)
            {
                r.PinCount--;
            }
        }
    }

    /// <summary>R4 at executeModel: null to run, else the refusal with expected and actual measurements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public TaskOutcome? CheckExecute(LoadedModel model)
    {
        if (!Active)
        {
            return null;
        }
        ModelAttestation? a = model.Attestation;
        if (a is { Verified: true })
        {
            return null;
        }
        string actual = a is null ? "(not measured)" : Convert.ToHexString(a.Measurement);
        string why = a?.Problem ?? $"expected {a?.Expected ?? "(none)"}, measured {actual}";
        return TaskOutcome.Fail(CompletionStatus.AccessDenied, $"R4: the task list of model {model.Id} is not the one the model provider attested: {why}");
    }

    /// <summary>Handles one mailbox request; never throws for bad input.</summary>
    public byte[] Mailbox(ReadOnlySpan<byte> request)
    {
        if (request.Length < 4)
        {
            return MailboxMessage.Error(MailboxStatus.BadRequest, "a mailbox request has a 4-byte header");
        }
        var command = (MailboxCommand)BinaryPrimitives.ReadUInt16LittleEndian(request);
        ReadOnlySpan<byte> p = request[4..];
        try
        {
            switch (command)
            {
                case MailboxCommand.GetStatus:
                {
                    var s = new byte[11];
                    s[0] = (byte)_engine.State;
                    s[1] = (byte)_engine.Mode;
                    s[2] = (byte)_engine.DebugState;
                    BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(3), _engine.Firmware?.Version ?? 0);
                    BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(7), _engine.Firmware?.SecurityVersion ?? 0);
                    return MailboxMessage.Ok(s);
                }
                case MailboxCommand.GetHello:
                    return MailboxMessage.Ok(_engine.CreateHello(p));
                case MailboxCommand.AcceptChannel:
                {
                    ChannelAcceptance acc = _engine.AcceptChannel(p);
                    var r = new byte[4 + acc.AcceptRecord.Length];
                    BinaryPrimitives.WriteInt32LittleEndian(r, acc.SessionId);
                    acc.AcceptRecord.CopyTo(r, 4);
                    return MailboxMessage.Ok(r);
                }
                case MailboxCommand.ReleaseModelKey:
                    if (p.Length < 4)
                    {
                        return MailboxMessage.Error(MailboxStatus.BadRequest, "ReleaseModelKey needs a u32 session before the record");
                    }
                    return MailboxMessage.Ok(_engine.UnwrapModelKey(BinaryPrimitives.ReadInt32LittleEndian(p), p[4..]));
                case MailboxCommand.OpenPackage:
                    return OpenPackage(p);
                case MailboxCommand.ClosePackage:
                    if (p.Length != 4 || !_packages.Remove(BinaryPrimitives.ReadInt32LittleEndian(p), out OpenedPackage? closed))
                    {
                        return MailboxMessage.Error(MailboxStatus.BadRequest, "ClosePackage needs the u32 handle of an open package");
                    }
                    closed.Dispose();
                    return MailboxMessage.Ok([]);
                case MailboxCommand.CloseSession:
                    if (p.Length != 4)
                    {
                        return MailboxMessage.Error(MailboxStatus.BadRequest, "CloseSession needs a u32 session");
                    }
                    _engine.CloseSession(BinaryPrimitives.ReadInt32LittleEndian(p));
                    return MailboxMessage.Ok([]);
                case MailboxCommand.SetCcMode:
                    if (p.Length != 1 || !Enum.IsDefined((CcMode)p[0]))
                    {
                        return MailboxMessage.Error(MailboxStatus.BadRequest, "SetCcMode needs one mode byte (0 off, 1 on, 2 devtools)");
                    }
                    if (_engine.State != DeviceSecurityState.Booted || (CcMode)p[0] != _engine.Mode)
                    {
                        return MailboxMessage.Error(MailboxStatus.Refused, $"R5: changing CC mode from {_engine.Mode} to {(CcMode)p[0]} requires a device reset, which scrubs all device memory; reset with the new mode instead");
                    }
                    return MailboxMessage.Ok([]);
                default:
                    return MailboxMessage.Error(MailboxStatus.BadRequest, $"unknown mailbox command {(ushort)command}");
            }
        }
        catch (DeviceSecurityException ex)
        {
            return MailboxMessage.Error(_engine.State == DeviceSecurityState.Booted ? MailboxStatus.Refused : MailboxStatus.NotBooted, ex.Message);
        }
        catch (CryptographicException ex)
        {
            return MailboxMessage.Error(MailboxStatus.AuthenticationFailed, ex.Message);
        }
        catch (Exception ex) when (ex is ProtocolFormatException or ArgumentException or InvalidOperationException or FormatException)
        {
            return MailboxMessage.Error(MailboxStatus.BadRequest, ex.Message);
        }
    }

    private unsafe byte[] OpenPackage(ReadOnlySpan<byte> p)
    {
        if (p.Length < 16 + 1)
        {
            return MailboxMessage.Error(MailboxStatus.BadRequest, "OpenPackage needs u64 address, u64 length and the manifest digest");
        }
        ulong address = BinaryPrimitives.ReadUInt64LittleEndian(p);
        long length = BinaryPrimitives.ReadInt64LittleEndian(p[8..]);
        HbmRegion? region = length > 0 ? _hbm.Find(address, length) : null;
        if (region is null || region.Tag != RegionTag.InputStaging)
        {
            return MailboxMessage.Error(MailboxStatus.BadRequest, $"the package must be staged inside one {RegionTag.InputStaging} region; 0x{address:x}+{length} is not");
        }
        var stream = new UnmanagedMemoryStream(region.Data + (long)(address - region.Address), length);
        ModelPackageReader reader;
        try
        {
            reader = _engine.OpenModelPackage(stream, p[16..]);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        int handle = _nextPackage++;
        // The reader reads the staged bytes in place: the staging region may not be freed while open.
        region.PinCount++;
        _packages.Add(handle, new OpenedPackage(reader, stream, region));
        var r = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(r, handle);
        BinaryPrimitives.WriteInt32LittleEndian(r.AsSpan(4), reader.Manifest.Items.Count);
        return MailboxMessage.Ok(r);
    }

    /// <summary>Forgets packages and sessions (device reset).</summary>
    public void Clear()
    {
        foreach (OpenedPackage p in _packages.Values)
        {
            p.Dispose();
        }
        _packages.Clear();
        ActiveDataSession = null;
        PromptLength = 0;
    }

    public void Dispose()
    {
        Clear();
        _engine.Dispose();
    }

    private sealed record OpenedPackage(ModelPackageReader Reader, UnmanagedMemoryStream Stream, HbmRegion Staging) : IDisposable
    {
        public void Dispose()
        {
            Reader.Dispose();
            Stream.Dispose();
            Staging.PinCount--;
        }
    }
}

/// <summary>What the firmware concluded about a loaded model's task list.</summary>
internal sealed record ModelAttestation(
    bool Verified,
    byte[] Measurement,
    string? Expected,
    string? Problem,
    Dictionary<ulong, int> Ordinals,
    HashSet<string> TaskDigests,
    HbmRegion[] Regions)
{
    /// <summary>Eager tasks already matched against <see cref="TaskDigests"/>; valid while the model is loaded, its regions pinned.</summary>
    public AcceptedTaskCache Accepted { get; } = new();
}
