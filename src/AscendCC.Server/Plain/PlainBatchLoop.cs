using System.Threading.Channels;
using AscendCC.Runtime.Inference;

namespace AscendCC.Server.Plain;

/// <summary>
/// CC off, a model of several sequences (<see cref="NpuServerOptions.MaxSequences"/> &gt; 1): one NPU's
/// continuous batch behind the OpenAI endpoints. Requests join its <see cref="CausalLMBatch"/> between
/// steps while slots are free (the rest wait in arrival order) and leave when done or when their
/// client goes, so every step reads each weight once for all the replies in progress. Each step takes
/// the device gate on its own.
/// </summary>
internal sealed class PlainBatchLoop : StepLoop<PlainBatchLoop.Request>
{
    private readonly CausalLMBatch _batch;
    private readonly ILogger _log;
    private readonly Queue<Request> _waiting = new();
    private readonly Dictionary<BatchSequence, Request> _running = new();
    private int _active;
    private int _abandoned;

    public PlainBatchLoop(NpuSlot npu, CausalLM model, ILogger log)
        : base(npu)
    {
        _batch = model.CreateBatch();
        _log = log;
        Start();
    }

    /// <summary>Replies the model decodes at once.</summary>
    public int Capacity => _batch.Capacity;

    /// <summary>Requests queued or being answered (the fleet sends a new one to the NPU with the fewest).</summary>
    public int Active => Volatile.Read(ref _active);

    /// <summary>The most replies one step has decoded so far (for the host's own monitoring and tests).</summary>
    public int MostSequencesInOneStep { get; private set; }

    /// <summary>Requests dropped before their end because their reader left (a client gone, a stop sequence met): from the queue, or out of the batch at the next step.</summary>
    public int Abandoned => Volatile.Read(ref _abandoned);

    /// <summary>
    /// Queues a generation of up to <paramref name="maxTokens"/> tokens after <paramref name="prompt"/>;
    /// the reader yields its tokens as the steps produce them and completes when it is done, or with
    /// the model's refusal of the request. <paramref name="cancel"/> (the client leaving) takes it out
    /// of the batch at the next step.
    /// </summary>
    public ChannelReader<int> Enqueue(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions sampling, IReadOnlyCollection<int> stopTokens, CancellationToken cancel)
    {
        var request = new Request(prompt, maxTokens, sampling, stopTokens, cancel);
        Interlocked.Increment(ref _active);
        if (!TryQueue(request))
        {
            Complete(request, new InvalidOperationException($"the model on NPU {Npu.Index} is shutting down; send the request again"));
        }
        return request.Tokens.Reader;
    }

    protected override bool HasWork => _running.Count > 0 || _waiting.Count > 0;

    protected override void Accept(Request request) => _waiting.Enqueue(request);

    protected override void FailAll()
    {
        var shutdown = new InvalidOperationException($"the model on NPU {Npu.Index} was shut down mid-generation; send the request again");
        foreach (Request r in _running.Values.Concat(_waiting))
        {
            Complete(r, shutdown);
        }
    }

    /// <summary>One step, holding the device: leavers out, joiners in while slots are free, one pass.</summary>
    protected override void Step()
    {
        foreach ((BatchSequence s, Request r) in _running.Where(p => p.Value.Cancel.IsCancellationRequested).ToList())
        {
            _batch.Remove(s);
            _running.Remove(s);
            Interlocked.Increment(ref _abandoned);
            Complete(r, new OperationCanceledException(r.Cancel));
        }
        while (_waiting.Count > 0 && _batch.Count < _batch.Capacity)
        {
            Request r = _waiting.Dequeue();
            if (r.Cancel.IsCancellationRequested)
            {
                Interlocked.Increment(ref _abandoned);
                Complete(r, new OperationCanceledException(r.Cancel));
                continue;
            }
            try
            {
                _running[_batch.Add(r.Prompt, r.MaxTokens, r.Sampling, r.StopTokens)] = r;
            }
            catch (ArgumentException e)
            {
                // This request's own fault (its prompt or sampling): it fails alone.
                Complete(r, e);
            }
        }
        if (_batch.Count == 0)
        {
            return;
        }
        MostSequencesInOneStep = Math.Max(MostSequencesInOneStep, _batch.Count);
        try
        {
            foreach (BatchToken produced in _batch.Step())
            {
                _running[produced.Sequence].Tokens.Writer.TryWrite(produced.Token);
            }
        }
        catch (Exception e) when (e is Runtime.Driver.NpuException or InvalidOperationException)
        {
            // A step the device failed: every reply of it fails, and the batch starts afresh.
            _log.LogError(e, "NPU {Device}: a batched step of {Sequences} sequences failed", Npu.Index, _running.Count);
            foreach ((BatchSequence s, Request r) in _running)
            {
                _batch.Remove(s);
                Complete(r, e);
            }
            _running.Clear();
            return;
        }
        foreach ((BatchSequence s, Request r) in _running.Where(p => p.Key.IsFinished).ToList())
        {
            _running.Remove(s);
            _log.LogInformation("NPU {Device}: {Prompt} prompt tokens, {Tokens} tokens, {Reason} (batched, slot {Slot})",
                Npu.Index, s.PromptTokens, s.Produced, s.FinishReason, s.Slot);
            Complete(r, null);
        }
    }

    private void Complete(Request r, Exception? failure)
    {
        if (r.Tokens.Writer.TryComplete(failure))
        {
            Interlocked.Decrement(ref _active);
        }
    }

    internal sealed class Request(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions sampling, IReadOnlyCollection<int> stopTokens, CancellationToken cancel)
    {
        public IReadOnlyList<int> Prompt { get; } = prompt;

        public int MaxTokens { get; } = maxTokens;

        public SamplingOptions Sampling { get; } = sampling;

        public IReadOnlyCollection<int> StopTokens { get; } = stopTokens;

        public CancellationToken Cancel { get; } = cancel;

        public Channel<int> Tokens { get; } = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    }
}
