using System.Runtime.CompilerServices;
using AscendCC.Device.Confidential;
using AscendCC.Device.Hbm;
using AscendCC.Device.Kernels;
using AscendCC.Protocol.Messages;

namespace AscendCC.Device.Operators.Builtin;

/// <summary>
/// Begins a confidential batched pass (AI CPU): several data owners' sequences in one pass, each in
/// its own KV-cache slot. The host's request table (<see cref="SegmentRequest"/>, as many rows as its
/// step block's <see cref="StepBlock.Segments"/>) asks for a session, a mode, a slot and positions per
/// segment; the device checks each against the session's own state — a session at most once per pass,
/// a slot at most once, an open at position 0 of a record staged for that segment, a continue or
/// decode only in the slot the session holds and exactly where it stopped — and only then writes, into
/// locked memory, the segment table, the tokens and the step block the program reads. An open puts the
/// session in the slot the host names after scrubbing the slot's slice of every per-slot region and
/// KV cache; a session that held the slot is evicted (its next pass must open a prompt again), and a
/// session that held another slot leaves it scrubbed. Per-slot regions are laid out one slice per slot:
/// prompt [slots, max_context], history [slots, max_context], generator [slots], settings
/// [slots, <see cref="SamplingRow.Count"/>], last token [slots].
/// </summary>
internal sealed class PromptOpenSegmentsOperator() : OperatorBase("prompt_open_segments",
    "records:u8[slots,record] prompt:i32[slots,max_context] next:i32[slots] requests:i64[slots,request] request:i64[step] history:i32[slots,max_context] -> tokens:i32[seq] step:i64[step] segments:i32[slots,3] rng:u64[slots] sampling:i64[slots,8] | dim hidden slots",
    ["records", "prompt", "next", "requests", "request", "history", "tokens", "step", "segments", "rng", "sampling"], [6, 7, 8, 9, 10], 3, ExecutionUnit.AiCpu)
{
    private const int Records = 0, Prompt = 1, Next = 2, Requests = 3, HostStep = 4, History = 5, Tokens = 6, Step = 7, Segments = 8, Rng = 9, Sampling = 10;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        ConfidentialFirmware fw = ConfidentialOperators.Firmware(ref c, Name);
        ConfidentialContext context = ConfidentialOperators.ContextOf(ref c, this, [Prompt, Next, History, Tokens, Step, Segments, Rng, Sampling]);
        int dim = c.Int(0, "dim", 1), hidden = c.Int(1, "hidden", 1), slots = c.Int(2, "slots", 1, 1024);
        long maxContext = c.Bytes(Prompt).Length / 4 / slots;
        int capacity = c.Bytes(Tokens).Length / 4;
        long recordBytes = c.Bytes(Records).Length / slots;
        foreach (int i in (ReadOnlySpan<int>)[Prompt, Next, History, Rng, Sampling])
        {
            // The slices are found by position in the region: each per-slot buffer must be its region.
            if (!c.IsWholeRegion(i))
            {
                throw new ConfidentialOperatorException($"'{ArgumentNames[i]}' must be a whole region laid out one slice per slot");
            }
        }
        Span<int> prompt = c.Buffer<int>(Prompt, slots * maxContext), next = c.Buffer<int>(Next, slots);
        _ = c.Buffer<int>(History, slots * maxContext);
        Span<ulong> rng = c.Buffer<ulong>(Rng, slots);
        Span<long> sampling = c.Buffer<long>(Sampling, (long)slots * SamplingRow.Count);
        if (context.Slots is null)
        {
            context.Slots = new DataSessionState?[slots];
            context.SlotRegions.Add((c.RegionOf(Prompt)!, maxContext * 4));
            context.SlotRegions.Add((c.RegionOf(History)!, maxContext * 4));
            context.SlotRegions.Add((c.RegionOf(Next)!, c.RegionOf(Next)!.Size / slots));
            context.SlotRegions.Add((c.RegionOf(Rng)!, c.RegionOf(Rng)!.Size / slots));
            context.SlotRegions.Add((c.RegionOf(Sampling)!, c.RegionOf(Sampling)!.Size / slots));
        }
        else if (context.Slots.Length != slots)
        {
            throw new ConfidentialOperatorException($"context: package {context.Id} runs a program of {context.Slots.Length} slots, not {slots}");
        }

        long count = c.Buffer<long>(HostStep, StepBlock.Count)[StepBlock.Segments];
        if (count < 1 || count > slots)
        {
            throw new ConfidentialOperatorException($"a batched pass feeds 1..{slots} segments, not {count}");
        }
        Span<long> requests = c.Buffer<long>(Requests, count * SegmentRequest.Count);
        // Every check that needs no record first: a bad request leaves every session as it was.
        var states = new DataSessionState?[count];
        Span<bool> slotTaken = stackalloc bool[slots];
        long rows = 0;
        for (int i = 0; i < count; i++)
        {
            Span<long> r = requests.Slice(i * SegmentRequest.Count, SegmentRequest.Count);
            long session = r[SegmentRequest.Session], mode = r[SegmentRequest.Mode], slot = r[SegmentRequest.Slot], start = r[SegmentRequest.Start], seq = r[SegmentRequest.Seq];
            if (session is < 1 or > int.MaxValue)
            {
                throw new ConfidentialOperatorException($"segment {i}: session {session} does not exist");
            }
            if (mode is < StepBlock.ModeDecode or > StepBlock.ModeContinuePrompt)
            {
                throw new ConfidentialOperatorException($"segment {i}: mode {mode} is not 0 (decode), 1 (open) or 2 (continue)");
            }
            if (slot < 0 || slot >= slots || slotTaken[(int)slot])
            {
                throw new ConfidentialOperatorException($"segment {i}: slot {slot} is {(slot < 0 || slot >= slots ? $"not one of the program's {slots} slots" : "fed twice in one pass")}");
            }
            slotTaken[(int)slot] = true;
            for (int j = 0; j < i; j++)
            {
                if (requests[j * SegmentRequest.Count + SegmentRequest.Session] == session)
                {
                    throw new ConfidentialOperatorException($"segment {i}: session {session} is fed twice in one pass");
                }
            }
            if (seq < 1 || start < 0 || start + seq > maxContext)
            {
                throw new ConfidentialOperatorException($"segment {i}: {seq} tokens from position {start} do not fit the context of {maxContext} positions");
            }
            rows += seq;
            if (rows > capacity)
            {
                throw new ConfidentialOperatorException($"the pass feeds more than the {capacity} tokens a pass holds");
            }
            if (mode == StepBlock.ModeOpenPrompt)
            {
                if (start != 0)
                {
                    throw new ConfidentialOperatorException($"segment {i}: position: a prompt is opened at position 0, not {start}");
                }
                continue;
            }
            DataSessionState? state = fw.FindSession((int)session);
            // The slot table is the context's own: a session holds a slot of it only if the table says so.
            if (state is null || context.Slots[slot] != state)
            {
                throw new ConfidentialOperatorException($"segment {i}: context: session {session} holds {(state?.Context != context ? "no slot of package " + context.Id : state.Slot < 0 ? "no slot (it was evicted or never opened)" : $"slot {state.Slot}")}, not slot {slot}; open its prompt first");
            }
            if (start != state.Position)
            {
                throw new ConfidentialOperatorException($"segment {i}: position: session {session} continues at position {state.Position}; a segment from {start} does not continue it");
            }
            if (mode == StepBlock.ModeContinuePrompt && start + seq > state.PromptLength)
            {
                throw new ConfidentialOperatorException($"segment {i}: tokens {start}..{start + seq - 1} are not in the opened prompt of {state.PromptLength} tokens");
            }
            if (mode == StepBlock.ModeDecode && (seq != 1 || start < state.PromptLength))
            {
                throw new ConfidentialOperatorException(seq != 1 ? $"segment {i}: a decode feeds one token, not {seq}" : $"segment {i}: position: the prompt of {state.PromptLength} tokens is fed up to {start} only; continue it before decoding");
            }
            states[i] = state;
        }

        // Then the opens, each from the record staged at its segment's index.
        for (int i = 0; i < count; i++)
        {
            Span<long> r = requests.Slice(i * SegmentRequest.Count, SegmentRequest.Count);
            if (r[SegmentRequest.Mode] != StepBlock.ModeOpenPrompt)
            {
                continue;
            }
            int session = (int)r[SegmentRequest.Session], slot = (int)r[SegmentRequest.Slot];
            PromptRequest request = PromptOpenOperator.OpenRecord(fw, context, c.Bytes(Records).Slice((int)(i * recordBytes), (int)recordBytes), session, (int)maxContext,
                (int)r[SegmentRequest.Seq]);
            int[] ids = request.Tokens;
            try
            {
                DataSessionState state = fw.Session(session);
                if (state.Slot >= 0 && state.Slot != slot && context.Slots[state.Slot] == state)
                {
                    // It moves: its old slot is left clean.
                    context.ScrubSlot(state.Slot);
                    context.Slots[state.Slot] = null;
                }
                if (context.Slots[slot] is { } evicted && evicted != state)
                {
                    evicted.Slot = -1;
                }
                // Nothing of the slot's last session (or of this session's last prompt) stays.
                context.ScrubSlot(slot);
                context.Slots[slot] = state;
                state.Slot = slot;
                state.Context = context;
                state.PromptLength = ids.Length;
                state.Position = 0;
                state.Sampling = request.Sampling;
                ids.CopyTo(prompt.Slice((int)(slot * maxContext), ids.Length));
                rng[slot] = PromptOpenOperator.Seed(request.Sampling);
                SamplingRow.Write(sampling.Slice(slot * SamplingRow.Count, SamplingRow.Count), request.Sampling);
                states[i] = state;
            }
            finally
            {
                Array.Clear(ids);
            }
        }

        // The pass: tokens, segment table and step block, all computed here.
        Span<int> tokens = c.Buffer<int>(Tokens, rows), table = c.Buffer<int>(Segments, count * SequenceSegment.Ints);
        var pending = new PendingStep[count];
        int row = 0;
        for (int i = 0; i < count; i++)
        {
            Span<long> r = requests.Slice(i * SegmentRequest.Count, SegmentRequest.Count);
            DataSessionState state = states[i]!;
            int slot = state.Slot, start = (int)r[SegmentRequest.Start], seq = (int)r[SegmentRequest.Seq];
            if (r[SegmentRequest.Mode] == StepBlock.ModeDecode)
            {
                tokens[row] = next[slot];
            }
            else
            {
                prompt.Slice((int)(slot * maxContext) + start, seq).CopyTo(tokens.Slice(row, seq));
            }
            table[i * 3] = slot;
            table[i * 3 + 1] = start;
            table[i * 3 + 2] = seq;
            pending[i] = new PendingStep(state, start, seq, r[SegmentRequest.Mode] == StepBlock.ModeDecode || start + seq == state.PromptLength);
            row += seq;
        }
        Span<long> step = c.Buffer<long>(Step, StepBlock.Count);
        step.Clear();
        step[StepBlock.Seq] = rows;
        step[StepBlock.Last] = rows - 1;
        step[StepBlock.SeqDim] = rows * dim;
        step[StepBlock.SeqHidden] = rows * hidden;
        step[StepBlock.Segments] = count;
        context.PendingSegments = pending;
    }
}

/// <summary>
/// Ends a confidential batched pass (AI CPU): for every segment prompt_open_segments began that ends
/// in a token, seals its slot's sampled token for its own session, as one fixed-size record at the
/// segment's index of an output staging region of exactly one record per slot (the rest zero), and
/// moves every segment's session on. As token_seal, it runs only after its pass's prompt_open_segments.
/// </summary>
internal sealed class TokenSealSegmentsOperator() : OperatorBase("token_seal_segments", "next:i32[slots] -> records:u8[slots,record]", ["next", "records"], [1], 0, ExecutionUnit.AiCpu)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        ConfidentialFirmware fw = ConfidentialOperators.Firmware(ref c, Name);
        ConfidentialContext context = ConfidentialOperators.ContextOf(ref c, this, [0]);
        PendingStep[] pending = context.PendingSegments
            ?? throw new ConfidentialOperatorException($"no batched pass is in progress in package {context.Id}: token_seal_segments ends a pass that prompt_open_segments began");
        int slots = context.Slots!.Length, recordBytes = TokenSealOperator.RecordBytes;
        HbmRegion records = c.RegionOf(1) ?? throw new KernelArgumentException($"{Name}: no records buffer");
        if (records.Tag != RegionTag.OutputStaging || !c.IsWholeRegion(1) || records.Size != (long)slots * recordBytes)
        {
            throw new ConfidentialOperatorException($"R3: sealed records go alone into an {RegionTag.OutputStaging} region of exactly {slots} × {recordBytes} bytes; the destination is {c.Bytes(1).Length} bytes of a {records.Size}-byte {records.Tag} region");
        }
        Span<int> next = c.Buffer<int>(0, slots);
        Span<byte> out_ = c.Bytes(1);
        // Records of earlier passes do not linger beside this pass's.
        out_.Clear();
        for (int i = 0; i < pending.Length; i++)
        {
            PendingStep p = pending[i];
            if (p.Emit)
            {
                byte[] sealedToken = fw.Engine.SealToken(p.Session.Id, new TokenMessage(p.Start + p.Seq, next[p.Session.Slot], EndOfSequence: false) { Model = context.ExpectedMeasurement });
                sealedToken.CopyTo(out_.Slice(i * recordBytes, recordBytes));
            }
            p.Session.Position = p.Start + p.Seq;
        }
        records.CiphertextOnly = true;
        context.PendingSegments = null;
    }
}
