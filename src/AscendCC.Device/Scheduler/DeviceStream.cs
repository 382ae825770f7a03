using System.Runtime.CompilerServices;

namespace AscendCC.Device.Scheduler;

/// <summary>
/// One hardware stream: its task buffer as the host fills it, and the part the scheduler has taken
/// after a doorbell. Tasks of a stream run in order; streams interleave.
/// </summary>
internal sealed class DeviceStream
{
    private readonly object _gate = new();
    private readonly int _capacity;
    private byte[] _submitted;     // written by the host, guarded by _gate
    private int _submittedLength;
    private int _publishedLength;  // prefix of _submitted made visible by the doorbell

    private byte[] _pending = new byte[4096]; // owned by the scheduler thread
    private int _pendingStart;
    private int _pendingEnd;

    public DeviceStream(int id, int capacity)
    {
        Id = id;
        _capacity = capacity;
        _submitted = new byte[Math.Min(capacity, 4096)];
    }

    public int Id { get; }

    /// <summary>Event the stream is blocked on, or -1.</summary>
    public int WaitingEvent { get; set; } = -1;

    /// <summary>Scratch for decoding eager tasks without allocating.</summary>
    public DecodedTask Scratch;

    /// <summary>Host side: appends task bytes; false when the task buffer has no room.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool Submit(ReadOnlySpan<byte> tasks)
    {
        lock (_gate)
        {
            if ((long)_submittedLength + (_pendingEnd - _pendingStart) + tasks.Length > _capacity)
            {
                return false;
            }
            if (_submittedLength + tasks.Length > _submitted.Length)
            {
                Array.Resize(ref _submitted, Math.Min(_capacity, Math.Max(_submitted.Length * 2, _submittedLength + tasks.Length)));
            }
            tasks.CopyTo(_submitted.AsSpan(_submittedLength));
            _submittedLength += tasks.Length;
            return true;
        }
    }

    /// <summary>Host side: the doorbell makes everything submitted so far visible to the scheduler.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Publish()
    {
        lock (_gate)
        {
            _publishedLength = _submittedLength;
        }
    }

    /// <summary>Scheduler side: moves published bytes into the pending buffer; true when any task is pending.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool Fetch()
    {
        if (_pendingStart == _pendingEnd)
        {
            _pendingStart = _pendingEnd = 0;
        }
        lock (_gate)
        {
            if (_publishedLength > 0)
            {
                int count = _publishedLength;
                if (_pendingEnd + count > _pending.Length)
                {
                    int live = _pendingEnd - _pendingStart;
                    if (live + count > _pending.Length)
                    {
                        var grown = new byte[Math.Max(_pending.Length * 2, live + count)];
                        _pending.AsSpan(_pendingStart, live).CopyTo(grown);
                        _pending = grown;
                    }
                    else
                    {
                        _pending.AsSpan(_pendingStart, live).CopyTo(_pending);
                    }
                    _pendingStart = 0;
                    _pendingEnd = live;
                }
                _submitted.AsSpan(0, count).CopyTo(_pending.AsSpan(_pendingEnd));
                _pendingEnd += count;
                _submitted.AsSpan(count, _submittedLength - count).CopyTo(_submitted);
                _submittedLength -= count;
                _publishedLength = 0;
            }
        }
        return _pendingStart < _pendingEnd;
    }

    /// <summary>Scheduler side: the pending task bytes.</summary>
    public ReadOnlySpan<byte> Pending => _pending.AsSpan(_pendingStart, _pendingEnd - _pendingStart);

    /// <summary>Scheduler side: marks <paramref name="bytes"/> pending bytes as consumed.</summary>
    public void Consume(int bytes) => _pendingStart += bytes;

    /// <summary>Scheduler side: drops everything pending (after an undecodable header).</summary>
    public void DiscardPending() => _pendingStart = _pendingEnd;

    /// <summary>Drops all tasks, submitted or pending (device reset).</summary>
    public void Clear()
    {
        lock (_gate)
        {
            _submittedLength = _publishedLength = 0;
            _pendingStart = _pendingEnd = 0;
            WaitingEvent = -1;
        }
    }
}
