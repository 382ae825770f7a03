using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace AscendCC.Server;

/// <summary>
/// A package file on disk seen as <see cref="Memory{T}"/> through a read-only memory map, so loading
/// never copies the whole package into the server's managed heap (the OS pages it in as the device
/// staging reads it).
/// </summary>
internal sealed unsafe class MappedPackage : MemoryManager<byte>
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _pointer;
    private readonly int _length;

    public MappedPackage(string path)
    {
        long length = new FileInfo(path).Length;
        if (length == 0)
        {
            throw new FormatException("the package is empty: upload the whole .ccpkg file the model provider exported");
        }
        if (length > int.MaxValue)
        {
            throw new FormatException($"the package is {length} bytes; this host loads packages up to {int.MaxValue} bytes");
        }
        _length = (int)length;
        _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _pointer = p + _view.PointerOffset;
        }
        catch
        {
            _view?.Dispose();
            _file.Dispose();
            throw;
        }
    }

    public override Span<byte> GetSpan() => new(_pointer, _length);

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, _length);
        return new MemoryHandle(_pointer + elementIndex);
    }

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _file.Dispose();
        }
    }
}
