using AscendCC.Device;

namespace AscendCC.Runtime.Acl;

/// <summary>A region of device HBM owned by the host runtime. Disposing it frees the region.</summary>
public sealed class DeviceBuffer : IDisposable
{
    private readonly NpuRuntime _runtime;
    private bool _freed;

    internal DeviceBuffer(NpuRuntime runtime, ulong address, long bytes, RegionTag tag)
    {
        _runtime = runtime;
        Address = address;
        Bytes = bytes;
        Tag = tag;
    }

    /// <summary>Device address of the first byte.</summary>
    public ulong Address { get; }

    /// <summary>Size in bytes.</summary>
    public long Bytes { get; }

    /// <summary>What the region holds.</summary>
    public RegionTag Tag { get; }

    /// <summary>The whole buffer as a kernel argument.</summary>
    public KernelArgument AsArgument() => new(Address, Bytes);

    /// <summary>A byte range of the buffer as a kernel argument.</summary>
    public KernelArgument Slice(long offset, long bytes)
    {
        if (offset < 0 || bytes < 0 || offset + bytes > Bytes)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice {offset}+{bytes} lies outside the {Bytes}-byte buffer");
        }
        return new KernelArgument(Address + (ulong)offset, bytes);
    }

    /// <summary>Frees the region (once).</summary>
    public void Dispose()
    {
        if (!_freed)
        {
            // Marked only once the device has freed it: a refused free (a region still pinned) can be retried.
            _runtime.Free(this);
            _freed = true;
        }
    }
}
