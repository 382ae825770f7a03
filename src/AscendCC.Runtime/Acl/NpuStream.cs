namespace AscendCC.Runtime.Acl;

/// <summary>A hardware stream: tasks on it run in order.</summary>
public sealed class NpuStream
{
    private readonly NpuRuntime _runtime;

    internal NpuStream(NpuRuntime runtime, int id)
    {
        _runtime = runtime;
        Id = id;
    }

    /// <summary>The hardware stream number.</summary>
    public int Id { get; }

    /// <summary>Waits until everything submitted to this stream has run; throws the first failure among it.</summary>
    public void Synchronize() => _runtime.Driver.Synchronize(Id);

    /// <summary>Makes this stream wait until <paramref name="npuEvent"/> is recorded.</summary>
    public void WaitEvent(NpuEvent npuEvent)
    {
        ArgumentNullException.ThrowIfNull(npuEvent);
        _runtime.Driver.Submit(Id, w => w.EventWait(_runtime.Driver.NextTaskId(), npuEvent.Id));
    }
}

/// <summary>A hardware event: recorded on one stream, waited for on others.</summary>
public sealed class NpuEvent
{
    private readonly NpuRuntime _runtime;

    internal NpuEvent(NpuRuntime runtime, int id)
    {
        _runtime = runtime;
        Id = id;
    }

    /// <summary>The hardware event number.</summary>
    public int Id { get; }

    /// <summary>Signals the event when <paramref name="stream"/> reaches this point.</summary>
    public void Record(NpuStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _runtime.Driver.Submit(stream.Id, w => w.EventRecord(_runtime.Driver.NextTaskId(), Id));
    }

    /// <summary>Clears the event when <paramref name="stream"/> reaches this point.</summary>
    public void Reset(NpuStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _runtime.Driver.Submit(stream.Id, w => w.EventReset(_runtime.Driver.NextTaskId(), Id));
    }
}
