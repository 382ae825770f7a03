using System.Threading.Channels;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;

namespace AscendCC.Server;

/// <summary>
/// One NPU's batched confidential model serving many data owners at once (a deployment with
/// <see cref="ModelDeployment.MaxSequences"/> &gt; 1): generations join its <see cref="SealedBatch"/>
/// between steps and leave when done, and each request's stream gets its own session's sealed
/// records. Every step takes the device gate on its own, so session opens, key releases and loads
/// interleave with the steps instead of waiting for whole generations.
/// </summary>
internal sealed class BatchLoop : StepLoop<BatchLoop.Request>
{
    private readonly SealedBatch _batch;
    private readonly ILogger _log;
    private readonly Queue<Request> _waiting = new();
    private readonly List<int> _leavers = [];
    private readonly Dictionary<SealedSequence, Request> _running = new();

    public BatchLoop(NpuSlot npu, CausalLM llama, ILogger log)
        : base(npu)
    {
        _batch = llama.CreateSealedBatch();
        _log = log;
        Start();
    }

    /// <summary>Sessions the model answers at once.</summary>
    public int Capacity => _batch.Capacity;

    /// <summary>The most sessions a step has held so far (for the host's own monitoring and tests).</summary>
    public int MostSessionsInOnePass { get; private set; }

    /// <summary>
    /// Queues a generation of up to <paramref name="maxTokens"/> sealed records for
    /// <paramref name="session"/>; the reader yields them as they are sealed and completes with the
    /// device's refusal if its prompt is refused. <paramref name="cancel"/> (the client leaving)
    /// takes it out of the batch and closes its device session, which scrubs its slot.
    /// </summary>
    public ChannelReader<byte[]> Enqueue(int session, byte[] record, int promptTokens, int maxTokens, CancellationToken cancel)
    {
        var request = new Request(session, record, promptTokens, maxTokens, cancel);
        if (!TryQueue(request))
        {
            request.Records.Writer.TryComplete(new InvalidOperationException($"the model on NPU {Npu.Index} is being unloaded; send the prompt again once a model is loaded"));
        }
        return request.Records.Reader;
    }

    /// <summary>
    /// The client of <paramref name="session"/> left before all its records were relayed: at the next
    /// step the session is taken out of the batch if it is still in it, and closed (the device scrubs
    /// its slot) — also when its generation had already ended on the device.
    /// </summary>
    public void Left(int session) => TryQueue(new Request(session, [], 0, 0, CancellationToken.None) { Leave = true });

    protected override bool HasWork => _running.Count > 0 || _waiting.Count > 0 || _leavers.Count > 0;

    protected override void Accept(Request request)
    {
        if (request.Leave)
        {
            _leavers.Add(request.Session);
        }
        else
        {
            _waiting.Enqueue(request);
        }
    }

    protected override void FailAll()
    {
        var unloaded = new InvalidOperationException($"the model on NPU {Npu.Index} was unloaded mid-generation; send the prompt again once a model is loaded");
        foreach (Request r in _running.Values.Concat(_waiting))
        {
            r.Records.Writer.TryComplete(unloaded);
        }
    }

    /// <summary>One step, holding the device: leavers out, joiners in while slots are free, one pass.</summary>
    protected override void Step()
    {
        foreach (int session in _leavers)
        {
            foreach ((SealedSequence s, Request r) in _running.Where(p => p.Value.Session == session).ToList())
            {
                _batch.Remove(s);
                _running.Remove(s);
                r.Records.Writer.TryComplete(new OperationCanceledException("the client left"));
            }
            if (Npu.HasSession(session))
            {
                CloseSession(session);
            }
        }
        _leavers.Clear();
        foreach ((SealedSequence s, Request r) in _running.Where(p => p.Value.Cancel.IsCancellationRequested).ToList())
        {
            // The client left: out of the batch, and its device session closed (the device scrubs its slot).
            _batch.Remove(s);
            _running.Remove(s);
            CloseSession(r.Session);
            r.Records.Writer.TryComplete(new OperationCanceledException(r.Cancel));
        }
        while (_waiting.Count > 0 && _batch.Count < _batch.Capacity)
        {
            Request r = _waiting.Dequeue();
            if (r.Cancel.IsCancellationRequested)
            {
                r.Records.Writer.TryComplete(new OperationCanceledException(r.Cancel));
                continue;
            }
            try
            {
                _running[_batch.Add(r.Session, r.Record, r.PromptTokens, r.MaxTokens)] = r;
            }
            catch (ArgumentException e)
            {
                r.Records.Writer.TryComplete(e);
            }
        }
        if (_batch.Count == 0)
        {
            return;
        }
        MostSessionsInOnePass = Math.Max(MostSessionsInOnePass, _batch.Count);
        try
        {
            foreach ((SealedSequence s, byte[] record) in _batch.Step())
            {
                _running[s].Records.Writer.TryWrite(record);
            }
        }
        catch (Exception e) when (e is Runtime.Driver.NpuException or InvalidOperationException)
        {
            // A pass the device failed (not one newcomer's refused prompt, which fails alone): every
            // session of it fails and is closed, and the batch starts afresh.
            _log.LogError(e, "NPU {Device}: a batched pass of {Sessions} sessions failed; closing them", Npu.Index, _running.Count);
            foreach ((SealedSequence s, Request r) in _running)
            {
                _batch.Remove(s);
                CloseSession(r.Session);
                r.Records.Writer.TryComplete(e);
            }
            _running.Clear();
            return;
        }
        foreach ((SealedSequence s, Request r) in _running.Where(p => p.Key.IsFinished).ToList())
        {
            _running.Remove(s);
            if (s.Failure is { } refused)
            {
                r.Records.Writer.TryComplete(refused);
            }
            else
            {
                _log.LogInformation("NPU {Device} session {Session}: {Prompt} prompt tokens, {Tokens} sealed token records (batched, slot {Slot})",
                    Npu.Index, r.Session, r.PromptTokens, s.Produced, s.Slot);
                r.Records.Writer.TryComplete();
            }
        }
    }

    private void CloseSession(int session)
    {
        try
        {
            Npu.Mailbox.CloseSession(session);
        }
        catch (Runtime.Confidential.FirmwareMailboxException e)
        {
            _log.LogWarning("NPU {Device} session {Session}: close refused: {Reason}", Npu.Index, session, e.Message);
        }
        Npu.RemoveSession(session);
    }

    internal sealed class Request(int session, byte[] record, int promptTokens, int maxTokens, CancellationToken cancel)
    {
        public int Session { get; } = session;

        public byte[] Record { get; } = record;

        public int PromptTokens { get; } = promptTokens;

        public int MaxTokens { get; } = maxTokens;

        public CancellationToken Cancel { get; } = cancel;

        public Channel<byte[]> Records { get; } = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

        /// <summary>Not a generation: its client left (<see cref="Left"/>).</summary>
        public bool Leave { get; init; }
    }
}
