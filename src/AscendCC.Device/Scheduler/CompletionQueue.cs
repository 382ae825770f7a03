using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace AscendCC.Device.Scheduler;

/// <summary>The completion queue: the scheduler posts, the host's driver reads.</summary>
internal sealed class CompletionQueue : IDisposable
{
    private readonly ConcurrentQueue<CompletionEntry> _entries = new();
    private readonly SemaphoreSlim _count = new(0);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Post(in CompletionEntry entry)
    {
        _entries.Enqueue(entry);
        _count.Release();
    }

    public bool TryRead(out CompletionEntry entry) => Read(TimeSpan.Zero, out entry);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool Read(TimeSpan timeout, out CompletionEntry entry)
    {
        if (_count.Wait(timeout) && _entries.TryDequeue(out entry))
        {
            return true;
        }
        entry = default;
        return false;
    }

    public void Dispose() => _count.Dispose();
}
