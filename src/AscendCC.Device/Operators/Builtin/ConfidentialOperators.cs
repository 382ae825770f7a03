using System.Runtime.CompilerServices;
using AscendCC.Device.Confidential;
using System.Security.Cryptography;
using AscendCC.Device.Hbm;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;

namespace AscendCC.Device.Operators.Builtin;

/// <summary>Shared checks of the firmware's AI CPU crypto operators.</summary>
internal static class ConfidentialOperators
{
    public static ConfidentialFirmware Firmware(ref KernelContext c, string name) =>
        c.Firmware is { Active: true } fw ? fw : throw new ConfidentialOperatorException($"{name} runs only on a device booted in confidential mode");

    /// <summary>
    /// The context that owns every listed argument, all locked (R2): the plaintext these operators
    /// handle never sits where the host can reach, and never in another party's context.
    /// </summary>
    public static ConfidentialContext ContextOf(ref KernelContext c, IOperator op, ReadOnlySpan<int> arguments)
    {
        ConfidentialContext? context = null;
        foreach (int i in arguments)
        {
            HbmRegion? r = c.RegionOf(i);
            if (r is not { Locked: true })
            {
                throw new ConfidentialOperatorException($"R2: '{op.ArgumentNames[i]}' must be locked device memory; plaintext tokens never sit where the host can reach");
            }
            if (r.Owner is null)
            {
                throw new ConfidentialOperatorException($"context: '{op.ArgumentNames[i]}' belongs to no confidential context; {op.Name} runs only as part of an attested task list");
            }
            if (context is not null && r.Owner != context)
            {
                throw new ConfidentialOperatorException($"context: '{op.ArgumentNames[i]}' belongs to package {r.Owner.Id}, the other arguments to package {context.Id}");
            }
            context = r.Owner;
        }
        return context!;
    }
}

/// <summary>
/// AES-GCM unlock of one package item into its HBM region (AI CPU). The region must be exactly the
/// item's size and is locked from the host (R2) here, before the first byte is decrypted. Two sources:
/// <list type="bullet">
/// <item>in place (<c>tags</c> given): the host wrote the item's chunk ciphertexts, tags taken out, into
/// the destination while it was still open for writing, and the tags into <c>tags</c>; the unlock
/// locks the region and decrypts it over itself — as ASCEND-CC does, the plaintext is born where it
/// lives, and HBM holds no second copy of the package;</item>
/// <item>staged (<c>tags</c> absent): the item is read from the whole package the host staged for
/// <c>OpenPackage</c>.</item>
/// </list>
/// A tampered, swapped or truncated ciphertext fails its chunk tag and leaves the region zeroed.
/// </summary>
internal sealed class PackageUnlockOperator() : OperatorBase("package_unlock", "destination:[item] tags:u8[chunks*16]? | package item", ["destination", "tags"], [0], 2, ExecutionUnit.AiCpu)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        ConfidentialFirmware fw = ConfidentialOperators.Firmware(ref c, Name);
        int handle = c.Int(0, "package", 1);
        ConfidentialContext context = fw.Context(handle) ?? throw new ConfidentialOperatorException("no model package is open under that handle");
        ModelPackageReader reader = context.Reader ?? throw new ConfidentialOperatorException($"package {handle} was closed; open it again to unlock more items");
        int index = c.Int(1, "item", 0, reader.Manifest.Items.Count - 1);
        PackageItem item = reader.Manifest.Items[index];
        HbmRegion region = c.RegionOf(0) ?? throw new KernelArgumentException($"{Name}: no destination");
        Span<byte> destination = c.Bytes(0);
        if (destination.Length != region.Size || region.Size != item.ByteLength)
        {
            throw new ConfidentialOperatorException($"item '{item.Name}' is {item.ByteLength} bytes and must fill a region of exactly that size; the destination is {destination.Length} bytes of a {region.Size}-byte region");
        }
        RegionTag wanted = item.Kind == PackageItemKind.Tensor ? RegionTag.Weights : RegionTag.OperatorBinary;
        if (region.Tag != wanted)
        {
            throw new ConfidentialOperatorException($"item '{item.Name}' ({item.Kind}) must be unlocked into a {wanted} region, not {region.Tag}");
        }
        if (region.ItemName is not null || region.Sealed)
        {
            throw new ConfidentialOperatorException($"the destination already holds '{region.ItemName ?? "a sealed operator"}'");
        }
        // R2: unmapped from host DMA before the first plaintext byte exists, and for good (freeing
        // scrubs it). The scheduler runs one task at a time, so no DMA can slip in between.
        region.Locked = true;
        region.HostAccess = DmaAccess.None;
        try
        {
            if (c.IsNone(1))
            {
                reader.DecryptItem(index, fw.StagedItem(handle, index), destination);
            }
            else
            {
                reader.DecryptItemInPlace(index, destination, c.Bytes(1));
            }
        }
        catch
        {
            // The reader zeroes what it wrote; a failed in-place unlock must not leave the host's
            // bytes either, or a locked region would hold data nobody attested.
            destination.Clear();
            throw;
        }
        region.ItemName = item.Name;
        // The plaintext belongs to this package's context: only task lists attested against this
        // package's own measurement may bind it.
        context.Claim(region);
    }
}

/// <summary>
/// Begins a pass (AI CPU): checks the host's request (the <see cref="StepBlock"/> it wrote: session,
/// mode, start, seq) against the session's state on the device, feeds the pass its tokens, and writes the
/// step block the rest of the program reads into locked memory, computing every slot itself. Modes:
/// <list type="bullet">
/// <item>open (1): decrypt the data owner's prompt record into the locked prompt buffer — its token ids,
/// its sampling settings and the model it requires — and feed tokens [0, seq). The session is bound to
/// this context for its lifetime. Only when every check has passed does the session become the one the
/// context holds; if another session held it, the context's activations, KV cache and workspace are
/// scrubbed first, so nothing of one session reaches the next;</item>
/// <item>continue (2): feed the next chunk of the opened prompt, exactly where the last pass ended;</item>
/// <item>decode (0): feed back the token the last pass sampled, at the next position.</item>
/// </list>
/// </summary>
internal sealed class PromptOpenOperator() : OperatorBase("prompt_open",
    "record:u8[*] prompt:i32[max_context] next:i32[1] request:i64[step] -> tokens:i32[seq] step:i64[step] rng:u64[1] | dim hidden",
    ["record", "prompt", "next", "request", "tokens", "step", "rng"], [1, 4, 5, 6], 2, ExecutionUnit.AiCpu)
{
    private const ulong DefaultSeed = 0x9E3779B97F4A7C15UL;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        ConfidentialFirmware fw = ConfidentialOperators.Firmware(ref c, Name);
        ConfidentialContext context = ConfidentialOperators.ContextOf(ref c, this, [1, 2, 4, 5, 6]);
        int dim = c.Int(0, "dim", 1), hidden = c.Int(1, "hidden", 1);
        Span<long> request = c.Buffer<long>(3, StepBlock.Count);
        long mode = request[StepBlock.Mode], requestedSession = request[StepBlock.Session], start = request[StepBlock.Start], seq = request[StepBlock.Seq];
        Span<int> prompt = c.Buffer<int>(1, c.Bytes(1).Length / 4);
        int capacity = prompt.Length;
        if (mode is < StepBlock.ModeDecode or > StepBlock.ModeContinuePrompt)
        {
            throw new ConfidentialOperatorException($"mode {mode} is not 0 (decode), 1 (open) or 2 (continue)");
        }
        if (seq < 1 || start < 0 || start + seq > capacity || seq > c.Bytes(4).Length / 4)
        {
            throw new ConfidentialOperatorException($"a pass of {seq} tokens from position {start} does not fit: the context holds {capacity} positions and a pass at most {c.Bytes(4).Length / 4} tokens");
        }
        if (requestedSession is < 1 or > int.MaxValue)
        {
            throw new ConfidentialOperatorException($"session {requestedSession} does not exist");
        }
        int session = (int)requestedSession;
        DataSessionState state = mode == StepBlock.ModeOpenPrompt
            ? Open(fw, context, ref c, session, (int)start, (int)seq, prompt)
            : Continue(context, session, (int)mode, (int)start, (int)seq);

        Span<int> tokens = c.Buffer<int>(4, seq);
        if (mode == StepBlock.ModeDecode)
        {
            tokens[0] = c.Buffer<int>(2, 1)[0];
        }
        else
        {
            prompt.Slice((int)start, (int)seq).CopyTo(tokens);
        }
        bool emit = mode == StepBlock.ModeDecode || start + seq == state.PromptLength;
        Span<long> step = c.Buffer<long>(5, StepBlock.Count);
        step.Clear();
        step[StepBlock.Seq] = seq;
        step[StepBlock.Start] = start;
        step[StepBlock.Last] = seq - 1;
        step[StepBlock.SeqDim] = seq * dim;
        step[StepBlock.SeqHidden] = seq * hidden;
        step[StepBlock.Temperature] = BitConverter.DoubleToInt64Bits(state.Sampling.Temperature);
        step[StepBlock.TopK] = state.Sampling.TopK;
        step[StepBlock.TopP] = BitConverter.DoubleToInt64Bits(state.Sampling.TopP);
        step[StepBlock.MinP] = BitConverter.DoubleToInt64Bits(state.Sampling.MinP);
        step[StepBlock.RepeatPenalty] = BitConverter.DoubleToInt64Bits(state.Sampling.RepeatPenalty);
        step[StepBlock.RepeatLastN] = state.Sampling.RepeatLastN;
        step[StepBlock.FrequencyPenalty] = BitConverter.DoubleToInt64Bits(state.Sampling.FrequencyPenalty);
        step[StepBlock.PresencePenalty] = BitConverter.DoubleToInt64Bits(state.Sampling.PresencePenalty);
        step[StepBlock.Session] = session;
        step[StepBlock.Mode] = mode;
        context.Pending = new PendingStep(state, (int)start, (int)seq, emit);
    }

    private static DataSessionState Open(ConfidentialFirmware fw, ConfidentialContext context, ref KernelContext c, int session, int start, int seq, Span<int> prompt)
    {
        if (start != 0)
        {
            throw new ConfidentialOperatorException($"position: a prompt is opened at position 0, not {start}");
        }
        PromptRequest request = OpenRecord(fw, context, c.Bytes(0), session, prompt.Length, seq);
        int[] ids = request.Tokens;
        try
        {
            // Every check has passed: only now does the session become the context's. If another
            // session holds it, that session's activations, KV cache and workspace are scrubbed first;
            // a context no session holds is already clean (new regions are zeroed, and closing the
            // last session scrubbed it), so the first prompt after a close pays no scrub.
            DataSessionState state = fw.Session(session);
            if (context.Active != state)
            {
                if (context.Active is not null)
                {
                    context.ScrubSessionState();
                }
                context.Active = state;
            }
            state.Context = context;
            state.PromptLength = ids.Length;
            state.Position = 0;
            state.Sampling = request.Sampling;
            prompt.Clear();
            ids.CopyTo(prompt);
            c.Buffer<ulong>(6, 1)[0] = Seed(request.Sampling);
            return state;
        }
        finally
        {
            Array.Clear(ids);
        }
    }

    /// <summary>The generator's first state for the data owner's seed (xorshift state must be nonzero).</summary>
    internal static ulong Seed(PromptSampling sampling) => sampling.Seed == 0 ? DefaultSeed : sampling.Seed;

    /// <summary>
    /// Opens data-owner session <paramref name="session"/>'s sealed prompt record staged in
    /// <paramref name="staged"/> for <paramref name="context"/>: the session must be open and bound to no
    /// other context, the record must decrypt to a well-formed prompt of 1..<paramref name="capacity"/>
    /// tokens that requires this context's model (if it requires one) and holds the
    /// <paramref name="seq"/> tokens the pass feeds first. Nothing is changed but the record consumed;
    /// the caller clears the returned token ids when done with them.
    /// </summary>
    internal static PromptRequest OpenRecord(ConfidentialFirmware fw, ConfidentialContext context, ReadOnlySpan<byte> staged, int session, int capacity, int seq)
    {
        if (!fw.Engine.IsDataOwnerSession(session))
        {
            throw new ConfidentialOperatorException($"session {session} is not an open data-owner session");
        }
        // Checked before the record is opened, so a host that offers a victim's record to its own
        // program does not even consume it.
        if (fw.FindSession(session)?.Context is { } bound && bound != context)
        {
            throw new ConfidentialOperatorException($"context: session {session} is bound to package {bound.Id} ('{bound.ModelName}') for its lifetime; package {context.Id} ('{context.ModelName}') may not open its prompts");
        }
        // The staging buffer is sized for the deployment's largest prompt bucket, and a shorter
        // prompt's record fills only its start: take the record's declared length from its header
        // (bytes 16..20, as SecureChannel writes it; authenticated by OpenPrompt) instead of
        // requiring the record to fill the buffer exactly.
        if (staged.Length < SecureChannel.Overhead)
        {
            throw new ConfidentialOperatorException("the staged prompt record is truncated");
        }
        long length = SecureChannel.Overhead + (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(staged.Slice(16, 4));
        if (length > staged.Length)
        {
            throw new ConfidentialOperatorException("the staged prompt record is truncated");
        }
        PromptRequest request;
        try
        {
            request = fw.Engine.OpenPrompt(session, staged[..(int)length]);
        }
        catch (Protocol.ProtocolFormatException ex)
        {
            // The field only: the problem text may quote the data owner's values.
            throw new ConfidentialOperatorException($"the prompt record of session {session} decrypted to a malformed message (field '{ex.Field}'); the data owner must send a well-formed prompt");
        }
        int[] ids = request.Tokens;
        try
        {
            if (!request.RequiredModel.IsEmpty && !CryptographicOperations.FixedTimeEquals(request.RequiredModel.Span, context.ExpectedMeasurement))
            {
                throw new ConfidentialOperatorException($"context: the data owner of session {session} requires another model than package {context.Id} ('{context.ModelName}') runs");
            }
            if (ids.Length == 0 || ids.Length > capacity)
            {
                throw new ConfidentialOperatorException($"the prompt has {ids.Length} tokens; the context holds 1..{capacity}");
            }
            if (seq > ids.Length)
            {
                throw new ConfidentialOperatorException($"tokens 0..{seq - 1} are not in the opened prompt of {ids.Length} tokens");
            }
            return request;
        }
        catch
        {
            Array.Clear(ids);
            throw;
        }
    }

    private static DataSessionState Continue(ConfidentialContext context, int session, int mode, int start, int seq)
    {
        DataSessionState? state = context.Active;
        if (state is null || state.Id != session)
        {
            throw new ConfidentialOperatorException($"context: package {context.Id} holds {(state is null ? "no session" : "another session")}, not session {session}; open the session's prompt first");
        }
        if (start != state.Position)
        {
            throw new ConfidentialOperatorException($"position: session {session} continues at position {state.Position}; a pass from {start} does not continue it");
        }
        if (mode == StepBlock.ModeContinuePrompt && start + seq > state.PromptLength)
        {
            throw new ConfidentialOperatorException($"tokens {start}..{start + seq - 1} are not in the opened prompt of {state.PromptLength} tokens");
        }
        if (mode == StepBlock.ModeDecode && (seq != 1 || start < state.PromptLength))
        {
            throw new ConfidentialOperatorException(seq != 1 ? $"a decode pass feeds one token, not {seq}" : $"position: the prompt of {state.PromptLength} tokens is fed up to {start} only; continue it before decoding");
        }
        return state;
    }
}

/// <summary>
/// Ends a pass (AI CPU): seals the token the pass sampled for the session the context holds, as one
/// fixed-size record naming the model, into an output staging region of exactly that size — the only
/// way any region becomes copyable to the host (R3) — and moves the session's position on. It runs only
/// after prompt_open began the pass; in eager mode the firmware's cursor has made every launch between
/// them run, in order.
/// </summary>
internal sealed class TokenSealOperator() : OperatorBase("token_seal", "next:i32[1] -> record:u8[record]", ["next", "record"], [1], 0, ExecutionUnit.AiCpu)
{
    /// <summary>Bytes of a sealed token record.</summary>
    public static int RecordBytes => SecureChannel.Overhead + TokenMessage.EncodedSize;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        ConfidentialFirmware fw = ConfidentialOperators.Firmware(ref c, Name);
        ConfidentialContext context = ConfidentialOperators.ContextOf(ref c, this, [0]);
        // The pending pass is always the active session's: prompt_open sets both together, and a session
        // switch or close scrubs the context, which drops the pending pass.
        PendingStep pending = context.Pending ?? throw new ConfidentialOperatorException($"no pass is in progress in package {context.Id}: token_seal ends a pass that prompt_open began");
        if (pending.Emit)
        {
            HbmRegion record = c.RegionOf(1) ?? throw new KernelArgumentException($"{Name}: no record buffer");
            if (record.Tag != RegionTag.OutputStaging || !c.IsWholeRegion(1) || record.Size != RecordBytes)
            {
                throw new ConfidentialOperatorException($"R3: a sealed record goes alone into an {RegionTag.OutputStaging} region of exactly {RecordBytes} bytes; the destination is {c.Bytes(1).Length} bytes of a {record.Size}-byte {record.Tag} region");
            }
            byte[] sealedToken = fw.Engine.SealToken(pending.Session.Id, new TokenMessage(pending.Start + pending.Seq, c.Buffer<int>(0, 1)[0], EndOfSequence: false) { Model = context.ExpectedMeasurement });
            sealedToken.CopyTo(c.Bytes(1));
            record.CiphertextOnly = true;
        }
        pending.Session.Position = pending.Start + pending.Seq;
        context.Pending = null;
    }
}
