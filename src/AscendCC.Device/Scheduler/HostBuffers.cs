namespace AscendCC.Device.Scheduler;

/// <summary>
/// Host memory the DMA engine may reach, registered by the driver (as pinned, IOMMU-mapped pages
/// are on real hardware). Handles are small integers the copy tasks name.
/// </summary>
internal sealed class HostBuffers
{
    private readonly Dictionary<int, Memory<byte>> _buffers = new();
    private readonly object _gate = new();
    private int _next = 1;

    public int Register(Memory<byte> buffer)
    {
        lock (_gate)
        {
            int id = _next++;
            _buffers[id] = buffer;
            return id;
        }
    }

    public bool Unregister(int id)
    {
        lock (_gate)
        {
            return _buffers.Remove(id);
        }
    }

    public bool TryGet(int id, out Memory<byte> buffer)
    {
        lock (_gate)
        {
            return _buffers.TryGetValue(id, out buffer);
        }
    }
}
