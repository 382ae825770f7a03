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
    private readonly Dictionary<int, ConfidentialContext> _contexts = new();
    private readonly Dictionary<int, DataSessionState> _sessions = new();
    private int _nextPackage = 1;
    // The eager task Check just accepted, as (model, index in its list): the cursor moves when it succeeds.
    private ModelAttestation? _eagerModel;
    private int _eagerIndex;

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

    /// <summary>The context opened under package handle <paramref name="handle"/>, or null.</summary>
    public ConfidentialContext? Context(int handle) => _contexts.GetValueOrDefault(handle);

    /// <summary>The firmware's state of data-owner session <paramref name="id"/>, created on first use.</summary>
    public DataSessionState Session(int id)
    {
        if (!_sessions.TryGetValue(id, out DataSessionState? state))
        {
            state = new DataSessionState(id);
            _sessions.Add(id, state);
        }
        return state;
    }

    /// <summary>The firmware's state of data-owner session <paramref name="id"/>, or null if it never opened a prompt.</summary>
    public DataSessionState? FindSession(int id) => _sessions.GetValueOrDefault(id);

    /// <summary>
    /// The encrypted bytes of item <paramref name="index"/> of an opened package, where they lie staged in
    /// HBM (pinned while the package is open), so the unlock decrypts in place with no stream copy.
    /// </summary>
    public unsafe ReadOnlySpan<byte> StagedItem(int handle, int index)
    {
        ConfidentialContext c = _contexts[handle];
        UnmanagedMemoryStream stream = c.Stream!;
        (long offset, long length) = c.Reader!.GetEncryptedItemRange(index);
        if (offset < 0 || length < 0 || offset + length > stream.Length || length > int.MaxValue)
        {
            throw new ConfidentialOperatorException($"the staged package ends inside item {index}: the item needs bytes up to {offset + length}, {stream.Length} were staged; stage the complete package");
        }
        return new ReadOnlySpan<byte>(stream.PositionPointer - stream.Position + offset, (int)length);
    }

    /// <summary>
    /// Called for every new region. In CC mode, regions that will hold plaintext the device computes
    /// (activations, KV cache, workspace) are locked from birth. A weight region is born write-only
    /// for the host, to receive its tensor's ciphertext; package_unlock locks it before decrypting it
    /// in place, and nothing but package_unlock gives it the item name and the context an attested
    /// model binds it by.
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

    /// <summary>Called before a region is freed (and scrubbed): its context forgets it.</summary>
    public static void OnFreed(HbmRegion region) => region.Owner?.Forget(region);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public TaskOutcome? Check(ref DecodedTask t, int stream, bool inModel)
    {
        if (!Active)
        {
            return null;
        }
        _eagerModel = null;
        switch (t.Kind)
        {
            case TaskKind.MemcpyDeviceToHost:
            {
                // Egress at record granularity: exactly the bytes token_seal wrote, from a region that
                // holds nothing else, and only while no other write has touched it since.
                HbmRegion? r = _hbm.Find(t.C, (long)t.D);
                if (r is null || r.Tag != RegionTag.OutputStaging || !r.CiphertextOnly || t.C != r.Address || (long)t.D != r.Size)
                {
                    return TaskOutcome.Fail(CompletionStatus.AccessDenied,
                        $"R3: in confidential mode only a whole sealed record may be copied to the host; 0x{t.C:x}+{t.D} is {EgressProblem(r, t.C, (long)t.D)}", t.C);
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
                    return _contexts.Values.Any(c => c.Staging == r)
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

    private static string EgressProblem(HbmRegion? r, ulong address, long bytes) =>
        r is null ? "not inside one allocated region"
        : r.Tag != RegionTag.OutputStaging ? $"in a {r.Tag} region"
        : !r.CiphertextOnly ? "in an output staging region that holds no sealed record (nothing sealed it, or something wrote it since)"
        : $"not the whole sealed record (0x{r.Address:x}+{r.Size})";

    /// <summary>
    /// Called after every eager task Check let through: the attested list's cursor advances past a task
    /// only when it succeeded; a failed task abandons the pass (the next one starts again at prompt_open).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void EagerTaskDone(bool succeeded)
    {
        if (_eagerModel is { } a)
        {
            a.Cursor = succeeded && _eagerIndex + 1 < a.TaskDigests.Length ? _eagerIndex + 1 : 0;
            _eagerModel = null;
        }
    }

    /// <summary>CC-mode eager rule: a launch must be the next launch of an attested model's list, bound to the same regions.</summary>
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
            $"R4: in confidential mode eager launches must follow an attested model's list in order, one whole pass at a time; {(op?.Name ?? "this operator")} with these bindings is not the next task of any ({NextTasks()})");
    }

    /// <summary>CC-mode eager rule for copies and memsets that write locked memory: only as the next task of an attested list.</summary>
    private TaskOutcome? CheckEagerTask(ref DecodedTask t, string what) =>
        MatchesAttestedTask(ref t) ? null : TaskOutcome.Fail(CompletionStatus.AccessDenied,
            $"R4: in confidential mode {what} must be the next task of an attested model's list; this {t.Kind} is not", t.Kind == TaskKind.Memset ? t.A : t.B);

    private string NextTasks() => string.Join(", ", Scheduler!.Models.Values
        .Where(m => m.Attestation is { Verified: true })
        .Select(m => $"model {m.Id} expects task {m.Attestation!.Cursor} of {m.Attestation.TaskDigests.Length}"));

    /// <summary>
    /// True when <paramref name="t"/> measures like the task at an attested list's cursor (same kind,
    /// operator, region roles and bindings), or like its first task, which abandons the pass in progress
    /// and starts a new one. Eager launches thus replay the attested list in order, as executeModel would.
    /// </summary>
    private bool MatchesAttestedTask(ref DecodedTask t)
    {
        Scheduler.TaskScheduler scheduler = Scheduler!;
        foreach (LoadedModel model in scheduler.Models.Values)
        {
            // Not a pattern variable: stryker's mutants of a negated pattern leave it unassigned, and the
            // compile error takes every mutant of this method out of the run.
            ModelAttestation? a = model.Attestation;
            if (a is not { Verified: true })
            {
                continue;
            }
            if (Matches(a, a.Cursor, ref t))
            {
                (_eagerModel, _eagerIndex) = (a, a.Cursor);
                return true;
            }
            if (a.Cursor != 0 && Matches(a, 0, ref t))
            {
                (_eagerModel, _eagerIndex) = (a, 0);
                return true;
            }
        }
        return false;
    }

    private bool Matches(ModelAttestation a, int index, ref DecodedTask t)
    {
        if (a.Accepted.Matches(index, ref t))
        {
            return true;
        }
        using var m = new GraphMeasurement(a.Ordinals);
        if (TaskListMeasurer.Measure(ref t, m, _hbm, Scheduler!.OperatorDigest) is null
            && CryptographicOperations.FixedTimeEquals(m.EndTask(), a.TaskDigests[index]))
        {
            a.Accepted.Remember(index, ref t);
            return true;
        }
        return false;
    }

    /// <summary>
    /// Measures a model's task list at load. It is verified only when its measurement equals the signed
    /// expected measurement of an open context and every region it binds belongs to that context (or to
    /// none yet, when it is locked memory the context then claims); then its regions are pinned.
    /// </summary>
    public void Attest(LoadedModel model)
    {
        if (!Active)
        {
            return;
        }
        Scheduler.TaskScheduler scheduler = Scheduler!;
        using var m = new GraphMeasurement();
        var digests = new List<byte[]>(model.Tasks.Length);
        string? problem = null;
        for (int i = 0; i < model.Tasks.Length && problem is null; i++)
        {
            problem = TaskListMeasurer.Measure(ref model.Tasks[i], m, _hbm, scheduler.OperatorDigest);
            if (problem is null)
            {
                digests.Add(m.EndTask());
            }
            else
            {
                problem = $"task {i}: {problem}";
            }
        }
        byte[] measurement = m.Finish();
        HashSet<HbmRegion> regions = RegionsBoundBy(model);
        ConfidentialContext? context = null;
        if (problem is null)
        {
            (context, problem) = ContextFor(measurement, regions);
        }
        if (context is not null)
        {
            // Attestation reports from now on say which models this device runs.
            _engine.ExtendModelMeasurement(measurement);
            foreach (HbmRegion r in regions)
            {
                if (r.Owner is null && r.Locked)
                {
                    context.Claim(r);
                }
                r.PinCount++;
            }
        }
        model.Attestation = new ModelAttestation(context is not null, measurement, problem, m.Ordinals.ToDictionary(), digests.ToArray(), [.. regions], context);
    }

    /// <summary>
    /// The context whose provider signed <paramref name="measurement"/> as its expected measurement and
    /// which may run a list binding <paramref name="regions"/>; else null and why not (every signed
    /// measurement it was compared with, or why a context that signed it may not bind these regions).
    /// </summary>
    private (ConfidentialContext? Context, string? Problem) ContextFor(byte[] measurement, HashSet<HbmRegion> regions)
    {
        string measured = Convert.ToHexString(measurement);
        if (_contexts.Count == 0)
        {
            return (null, $"no model package was opened since the device booted, so there is no signed measurement to compare with; measured {measured}");
        }
        string? ownership = null;
        foreach (ConfidentialContext c in _contexts.Values)
        {
            if (CryptographicOperations.FixedTimeEquals(c.ExpectedMeasurement, measurement))
            {
                ownership = OwnershipProblem(c, regions);
                if (ownership is null)
                {
                    return (c, null);
                }
            }
        }
        return (null, ownership ?? $"expected {string.Join(" or ", _contexts.Values.Select(c => $"{Convert.ToHexString(c.ExpectedMeasurement)} (package {c.Id})"))}, measured {measured}");
    }

    /// <summary>
    /// Why <paramref name="context"/> may not run a list binding <paramref name="regions"/>, or null.
    /// Found by the attack Context_HostPackageBindsVictimWeights: with weights measured by item name
    /// alone, a host that signed its own package could attest a list over another provider's unlocked
    /// weights and copy them out.
    /// </summary>
    private static string? OwnershipProblem(ConfidentialContext context, HashSet<HbmRegion> regions)
    {
        foreach (HbmRegion r in regions)
        {
            if (r.Tag == RegionTag.Weights && r.Owner != context)
            {
                return $"context: the list binds weights '{r.ItemName ?? "(never unlocked)"}' at 0x{r.Address:x}, which {(r.Owner is null ? "no package unlocked" : $"were unlocked from package {r.Owner.Id} ('{r.Owner.ModelName}')")}; a list attested against package {context.Id} ('{context.ModelName}') may bind only that package's weights and its own regions";
            }
            if (r.Owner is not null && r.Owner != context)
            {
                return $"context: the list binds a {r.Tag} region at 0x{r.Address:x} that belongs to package {r.Owner.Id} ('{r.Owner.ModelName}'), not to package {context.Id} ('{context.ModelName}') this list was attested against";
            }
        }
        return null;
    }

    /// <summary>Every region a list names: operator binaries, buffers and scalar sources.</summary>
    private HashSet<HbmRegion> RegionsBoundBy(LoadedModel model)
    {
        var regions = new HashSet<HbmRegion>();
        foreach (DecodedTask task in model.Tasks)
        {
            switch (task.Kind)
            {
                case TaskKind.KernelLaunch:
                    // Found by the attack R4_OperatorSwappedAfterAttestation: the measurement holds the
                    // digest of the binary loaded at each launch's handle when the list was attested, but
                    // the launch runs whatever is loaded at that handle when executed. Pinning the
                    // operator's region keeps the host from freeing it and loading another binary there.
                    Add(task.A, 0);
                    for (int i = 0; i < task.ArgCount; i++)
                    {
                        if (!task.Args![i].IsNone)
                        {
                            Add(task.Args[i].Address, 0);
                        }
                    }
                    for (int i = 0; i < task.ScalarCount; i++)
                    {
                        if (task.Scalars![i].Source != ScalarSource.Immediate)
                        {
                            Add(task.Scalars[i].Value, 0);
                        }
                    }
                    break;
                case TaskKind.MemcpyDeviceToDevice:
                    Add(task.A, 0);
                    Add(task.B, 0);
                    break;
                case TaskKind.Memset:
                    Add(task.A, 0);
                    break;
            }
        }
        return regions;

        void Add(ulong address, long bytes)
        {
            if (_hbm.Find(address, bytes) is { } r)
            {
                regions.Add(r);
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
            // A whole pass starts here: any eager pass in progress in this context is abandoned.
            foreach (LoadedModel other in Scheduler!.Models.Values)
            {
                if (other.Attestation is { } o && o.Context == a.Context)
                {
                    o.Cursor = 0;
                }
            }
            return null;
        }
        // A model is measured when it is loaded; one with no measurement was loaded while the rules did not
        // apply, which a device reset (the only way into CC mode) makes impossible.
        return TaskOutcome.Fail(CompletionStatus.AccessDenied, $"R4: the task list of model {model.Id} is not the one the model provider attested: {a?.Problem ?? "it was never measured"}");
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
                    if (p.Length != 4 || !_contexts.TryGetValue(BinaryPrimitives.ReadInt32LittleEndian(p), out ConfidentialContext? closed) || closed.Reader is null)
                    {
                        return MailboxMessage.Error(MailboxStatus.BadRequest, "ClosePackage needs the u32 handle of an open package");
                    }
                    // The context outlives the package: its weights stay unlocked (and its own) until freed.
                    closed.ClosePackage();
                    return MailboxMessage.Ok([]);
                case MailboxCommand.CloseSession:
                    if (p.Length != 4)
                    {
                        return MailboxMessage.Error(MailboxStatus.BadRequest, "CloseSession needs a u32 session");
                    }
                    CloseSession(BinaryPrimitives.ReadInt32LittleEndian(p));
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
        byte[] identity;
        try
        {
            reader = _engine.OpenModelPackage(stream, p[16..], out identity);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        int handle = _nextPackage++;
        // The reader reads the staged bytes in place: the staging region may not be freed while open.
        region.PinCount++;
        _contexts.Add(handle, new ConfidentialContext(handle, identity, reader.Manifest.ExpectedGraphMeasurement.ToArray(), reader.Manifest.ModelName)
        {
            Reader = reader,
            Stream = stream,
            Staging = region,
        });
        var r = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(r, handle);
        BinaryPrimitives.WriteInt32LittleEndian(r.AsSpan(4), reader.Manifest.Items.Count);
        return MailboxMessage.Ok(r);
    }

    /// <summary>Closes a session: its keys are destroyed, and the context holding its data is scrubbed.</summary>
    private void CloseSession(int id)
    {
        _engine.CloseSession(id);
        if (_sessions.Remove(id, out DataSessionState? state) && state.Context is { } c)
        {
            if (c.Active == state)
            {
                c.ScrubSessionState();
                c.Active = null;
            }
            // A batched context: only the session's slot is scrubbed and freed; the other slots'
            // sessions go on. A pass in progress that feeds the session is abandoned.
            if (c.Slots is { } slots && state.Slot >= 0 && slots[state.Slot] == state)
            {
                if (c.PendingSegments is { } pending && Array.Exists(pending, p => p.Session == state))
                {
                    c.PendingSegments = null;
                }
                c.ScrubSlot(state.Slot);
                slots[state.Slot] = null;
                state.Slot = -1;
            }
        }
    }

    /// <summary>Forgets contexts and sessions (device reset; HBM is scrubbed by the caller).</summary>
    public void Clear()
    {
        foreach (ConfidentialContext c in _contexts.Values)
        {
            c.ClosePackage();
        }
        _contexts.Clear();
        _sessions.Clear();
        _eagerModel = null;
    }

    public void Dispose()
    {
        Clear();
        _engine.Dispose();
    }
}

/// <summary>What the firmware concluded about a loaded model's task list.</summary>
internal sealed record ModelAttestation(
    bool Verified,
    byte[] Measurement,
    string? Problem,
    Dictionary<ulong, int> Ordinals,
    byte[][] TaskDigests,
    HbmRegion[] Regions,
    ConfidentialContext? Context)
{
    /// <summary>Eager tasks already matched, by list index; valid while the model is loaded, its regions pinned.</summary>
    public AcceptedTaskCache Accepted { get; } = new(TaskDigests.Length);

    /// <summary>Eager mode: the index of the list's task the next eager task must be (0 between passes).</summary>
    public int Cursor { get; set; }
}
