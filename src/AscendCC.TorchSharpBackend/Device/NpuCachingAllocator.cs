using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Driver;

namespace AscendCC.TorchSharpBackend;

/// <summary>
/// Device memory for tensors and compiled modules, cached per stream as PyTorch's allocators do:
/// an HBM allocation is a synchronous round trip to the device, which would dominate small eager
/// operators, so freed blocks are kept and handed out again for the same size on the same stream
/// (reuse on one stream is safe because its tasks run in order).
/// </summary>
internal sealed class NpuCachingAllocator
{
    private const long Granule = 512;

    private readonly NpuRuntime _runtime;
    private readonly Dictionary<(int Stream, long Bytes), Stack<DeviceBuffer>> _free = new();
    private long _allocated, _peak, _cached;

    public NpuCachingAllocator(NpuRuntime runtime) => _runtime = runtime;

    /// <summary>Bytes in blocks currently handed out.</summary>
    public long Allocated
    {
        get { lock (_free) { return _allocated; } }
    }

    /// <summary>Largest <see cref="Allocated"/> since the last reset.</summary>
    public long PeakAllocated
    {
        get { lock (_free) { return _peak; } }
    }

    /// <summary>Bytes held in the cache, free for reuse.</summary>
    public long Cached
    {
        get { lock (_free) { return _cached; } }
    }

    /// <summary>A block of at least <paramref name="bytes"/> for use on <paramref name="stream"/>.</summary>
    public DeviceBuffer Allocate(long bytes, int stream)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1);
        long rounded = (bytes + Granule - 1) / Granule * Granule;
        lock (_free)
        {
            DeviceBuffer buffer;
            if (_free.TryGetValue((stream, rounded), out var stack) && stack.Count > 0)
            {
                buffer = stack.Pop();
                _cached -= rounded;
            }
            else
            {
                try
                {
                    buffer = _runtime.Allocate(rounded, RegionTag.General);
                }
                catch (NpuOutOfMemoryException)
                {
                    // As in PyTorch: give the cache back to the device and try once more before failing.
                    _runtime.Synchronize();
                    ReleaseCachedLocked();
                    buffer = _runtime.Allocate(rounded, RegionTag.General);
                }
            }
            _allocated += rounded;
            _peak = Math.Max(_peak, _allocated);
            return buffer;
        }
    }

    /// <summary>Returns a block from <see cref="Allocate"/> to the cache of <paramref name="stream"/>.</summary>
    public void Release(DeviceBuffer buffer, int stream)
    {
        lock (_free)
        {
            if (!_free.TryGetValue((stream, buffer.Bytes), out var stack))
            {
                _free[(stream, buffer.Bytes)] = stack = new Stack<DeviceBuffer>();
            }
            stack.Push(buffer);
            _allocated -= buffer.Bytes;
            _cached += buffer.Bytes;
        }
    }

    /// <summary>Frees every cached block back to the device.</summary>
    public void EmptyCache()
    {
        // Blocks cached from other streams may still be read by tasks queued there.
        _runtime.Synchronize();
        lock (_free)
        {
            ReleaseCachedLocked();
        }
    }

    /// <summary>Restarts <see cref="PeakAllocated"/> from the current usage.</summary>
    public void ResetPeak()
    {
        lock (_free)
        {
            _peak = _allocated;
        }
    }

    private void ReleaseCachedLocked()
    {
        foreach (var stack in _free.Values)
        {
            while (stack.TryPop(out DeviceBuffer? b))
            {
                b.Dispose();
            }
        }
        _free.Clear();
        _cached = 0;
    }
}
