using AscendCC.Device;

namespace AscendCC.Runtime.Inference;

/// <summary>
/// Continuous batching with confidential computing on: up to <see cref="CausalLM.MaxSequences"/>
/// data owners' sessions answered together, each in its own KV-cache slot, every weight read once per
/// step for all of them. The host schedules (which sessions join a pass, how prompts are chunked,
/// which slot a newcomer takes) and relays bytes; the device checks every request against each
/// session's own state, opens each sealed prompt for its own session only, and seals each token for
/// its own session (see docs/architecture.md, "Batched decode"). The host never sees a token: a
/// sequence runs until its token budget or the context is used up, or until the host is told (by its
/// data owner) to <see cref="Remove"/> it.
/// </summary>
/// <remarks>Not thread-safe: one loop drives it.</remarks>
public sealed class SealedBatch
{
    private readonly CausalLM _model;
    private readonly SlotTable<SealedSequence> _slots;
    private readonly long[] _requests;
    private readonly byte[] _records;
    private readonly SealedSequence[] _fed;
    private readonly int[] _lengths;
    private readonly bool[] _emits;
    private readonly List<(int, byte[])> _opens = [];
    private readonly List<SealedToken> _produced = [];

    internal SealedBatch(CausalLM model)
    {
        _model = model;
        int slots = model.MaxSequences;
        _slots = new SlotTable<SealedSequence>(slots);
        _requests = new long[slots * SegmentRequest.Count];
        _records = new byte[slots * Programs.CausalLMProgram.TokenRecordBytes];
        _fed = new SealedSequence[slots];
        _lengths = new int[slots];
        _emits = new bool[slots];
    }

    /// <summary>Sessions the batch can hold.</summary>
    public int Capacity => _slots.Items.Length;

    /// <summary>Sessions in the batch.</summary>
    public int Count => _slots.Count;

    /// <summary>
    /// Adds data-owner session <paramref name="session"/>'s sealed prompt of <paramref name="promptTokens"/>
    /// tokens (a count the data owner reveals); it is opened on the device at the next <see cref="Step"/>,
    /// in a free slot, and answered with up to <paramref name="maxTokens"/> sealed records.
    /// </summary>
    /// <exception cref="InvalidOperationException">Every slot is taken.</exception>
    public SealedSequence Add(int session, byte[] promptRecord, int promptTokens, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(promptRecord);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        if (promptTokens < 1 || promptTokens > _model.MaxContext)
        {
            throw new ArgumentOutOfRangeException(nameof(promptTokens), $"the prompt has {promptTokens} tokens; the context holds {_model.MaxContext}, so it must be 1..{_model.MaxContext}");
        }
        if (promptRecord.Length > _model.PromptRecordSlotBytes)
        {
            throw new ArgumentException($"the sealed prompt is {promptRecord.Length} bytes; this deployment stages at most {_model.PromptRecordSlotBytes} per session", nameof(promptRecord));
        }
        int slot = _slots.FreeSlot();
        if (slot < 0)
        {
            throw new InvalidOperationException($"all {Capacity} sessions of the batch are in use; step until one finishes (or remove one), or deploy the model with a larger ModelDeployment.MaxSequences");
        }
        var sequence = new SealedSequence(this, session, slot, promptRecord, promptTokens, maxTokens);
        _slots.Put(slot, sequence);
        return sequence;
    }

    /// <summary>
    /// Takes <paramref name="sequence"/> out of the batch (its data owner saw an end of sequence, or went
    /// away). The device keeps its slot until another session's prompt is opened there or the session is
    /// closed (closing scrubs the slot).
    /// </summary>
    public void Remove(SealedSequence sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        if (sequence.Batch != this)
        {
            throw new ArgumentException("the sequence belongs to another batch", nameof(sequence));
        }
        _slots.Release(sequence.Slot, sequence);
        sequence.IsFinished = true;
    }

    /// <summary>
    /// One pass: returns the sealed records it produced, one per session that decoded or finished
    /// reading its prompt (valid until the next step), each to be relayed to its own data owner.
    /// Sessions whose budget or context is used up leave the batch here. A newcomer's prompt is opened
    /// in a pass of its own (the others wait that one pass): a record the device refuses — malformed,
    /// sealed for another session, requiring another model — then fails that session alone, which
    /// leaves the batch with its <see cref="SealedSequence.Failure"/>, instead of every session of a pass.
    /// </summary>
    public IReadOnlyList<SealedToken> Step()
    {
        _produced.Clear();
        _opens.Clear();
        SealedSequence? newcomer = null;
        foreach (SealedSequence? s in _slots.Items)
        {
            if (s is { Reading: true, Position: 0 })
            {
                newcomer = s;
                break;
            }
        }
        int count;
        if (newcomer is not null)
        {
            (_fed[0], _lengths[0]) = (newcomer, Math.Min(_model.MaxBatchTokens, newcomer.PromptTokens));
            count = 1;
        }
        else
        {
            count = PassPlanner.Plan(_slots.Items, _model.MaxBatchTokens, _fed, _lengths);
        }
        for (int i = 0; i < count; i++)
        {
            SealedSequence s = _fed[i];
            int n = _lengths[i], mode = !s.Reading ? StepBlock.ModeDecode : s.Position == 0 ? StepBlock.ModeOpenPrompt : StepBlock.ModeContinuePrompt;
            if (mode == StepBlock.ModeOpenPrompt)
            {
                _opens.Add((i, s.PromptRecord));
            }
            Span<long> r = _requests.AsSpan(i * SegmentRequest.Count, SegmentRequest.Count);
            r[SegmentRequest.Session] = s.Session;
            r[SegmentRequest.Mode] = mode;
            r[SegmentRequest.Slot] = s.Slot;
            r[SegmentRequest.Start] = s.Position;
            r[SegmentRequest.Seq] = n;
            _emits[i] = mode == StepBlock.ModeDecode || s.Position + n == s.PromptTokens;
        }
        if (count == 0)
        {
            return _produced;
        }
        try
        {
            _model.SealedSegmentsStep(_requests, count, _opens, _records);
        }
        catch (Driver.NpuException e) when (newcomer is not null)
        {
            newcomer.Failure = e;
            Remove(newcomer);
            return _produced;
        }
        int recordBytes = Programs.CausalLMProgram.TokenRecordBytes;
        for (int i = 0; i < count; i++)
        {
            SealedSequence s = _fed[i];
            s.Position += (int)_requests[i * SegmentRequest.Count + SegmentRequest.Seq];
            if (!_emits[i])
            {
                continue;
            }
            s.Reading = false;
            s.Produced++;
            _produced.Add(new SealedToken(s, _records.AsSpan(i * recordBytes, recordBytes).ToArray()));
            if (s.Produced >= s.MaxTokens || s.Position >= _model.MaxContext)
            {
                Remove(s);
            }
        }
        return _produced;
    }
}

/// <summary>A data owner's session in a <see cref="SealedBatch"/>, as the host sees it: counts, never tokens.</summary>
public sealed class SealedSequence : IBatchMember
{
    internal SealedSequence(SealedBatch batch, int session, int slot, byte[] promptRecord, int promptTokens, int maxTokens)
    {
        Batch = batch;
        Session = session;
        Slot = slot;
        PromptRecord = promptRecord;
        PromptTokens = promptTokens;
        MaxTokens = maxTokens;
    }

    internal SealedBatch Batch { get; }

    /// <summary>The device session.</summary>
    public int Session { get; }

    /// <summary>The KV-cache slot the host gave it.</summary>
    public int Slot { get; }

    internal byte[] PromptRecord { get; }

    /// <summary>Tokens in its prompt (revealed by its data owner).</summary>
    public int PromptTokens { get; }

    internal int MaxTokens { get; }

    /// <summary>True while its prompt is still being read.</summary>
    public bool Reading { get; internal set; } = true;

    /// <summary>Positions fed so far.</summary>
    public int Position { get; internal set; }

    /// <summary>Sealed records produced so far.</summary>
    public int Produced { get; internal set; }

    /// <summary>True once it has left the batch.</summary>
    public bool IsFinished { get; internal set; }

    /// <summary>The device's refusal to open its prompt (it then left the batch), or null.</summary>
    public Driver.NpuException? Failure { get; internal set; }
}

/// <summary>A sealed token record a batch step produced, and the session it is for.</summary>
/// <param name="Sequence">The session's sequence.</param>
/// <param name="Record">The sealed record, to be relayed to that session's data owner.</param>
public readonly record struct SealedToken(SealedSequence Sequence, byte[] Record);
