using System.Threading.Channels;

namespace AscendCC.Server;

/// <summary>
/// The shape both batch loops share (<see cref="BatchLoop"/> with CC on, <see cref="Plain.PlainBatchLoop"/>
/// with CC off): requests arrive on a channel from any thread; one task takes them in between steps
/// and runs the steps, each holding the NPU's gate on its own, so whatever else needs the device
/// (session opens, key releases, loads) interleaves with them; when the loop stops, every request it
/// still has fails with a message saying why.
/// </summary>
/// <typeparam name="TRequest">What a caller queues.</typeparam>
internal abstract class StepLoop<TRequest> : IAsyncDisposable
{
    private readonly Channel<TRequest> _incoming = Channel.CreateUnbounded<TRequest>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private Task _loop = Task.CompletedTask;

    protected StepLoop(NpuSlot npu)
    {
        Npu = npu;
    }

    /// <summary>The NPU the loop steps.</summary>
    protected NpuSlot Npu { get; }

    /// <summary>True while there is something to step (so the loop does not wait for a new request first).</summary>
    protected abstract bool HasWork { get; }

    /// <summary>Starts the loop; the derived constructor calls it last, once its own state exists.</summary>
    protected void Start() => _loop = Task.Run(RunAsync);

    /// <summary>Hands <paramref name="request"/> to the loop; false once the loop is stopping.</summary>
    protected bool TryQueue(TRequest request) => _incoming.Writer.TryWrite(request);

    /// <summary>Takes one arrived request, between steps (on the loop's task).</summary>
    protected abstract void Accept(TRequest request);

    /// <summary>One step, holding the NPU's gate (on the loop's task).</summary>
    protected abstract void Step();

    /// <summary>Fails every request the loop still has (after every arrived one was accepted), as the loop ends.</summary>
    protected abstract void FailAll();

    private async Task RunAsync()
    {
        CancellationToken stop = _stop.Token;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (!HasWork && !await _incoming.Reader.WaitToReadAsync(stop).ConfigureAwait(false))
                {
                    break;
                }
                while (_incoming.Reader.TryRead(out TRequest? request))
                {
                    Accept(request);
                }
                await Npu.EnterAsync(stop).ConfigureAwait(false);
                try
                {
                    Step();
                }
                finally
                {
                    Npu.Leave();
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        while (_incoming.Reader.TryRead(out TRequest? late))
        {
            Accept(late);
        }
        FailAll();
    }

    /// <summary>Stops the loop (between steps); generations in progress fail with a message saying why.</summary>
    public async ValueTask DisposeAsync()
    {
        _incoming.Writer.TryComplete();
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }
}
