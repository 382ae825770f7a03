using Microsoft.Win32.SafeHandles;

namespace AscendCC.Runtime.Confidential;

/// <summary>
/// The bytes of a confidential model package as the host stages them: from memory, or from a file read
/// by position, so a package may be larger than one .NET array or span (2 GiB) — a 7B or 8B model's is.
/// The host only moves these bytes; the device verifies them.
/// </summary>
public abstract class PackageSource : IDisposable
{
    /// <summary>The package's length in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>A package held in memory (a file read whole, or a provider's export into a stream).</summary>
    public static PackageSource FromMemory(ReadOnlyMemory<byte> package) => new MemorySource(package);

    /// <summary>
    /// A package file, read piece by piece as it is staged (never whole into the heap; the OS may cache
    /// it). Dispose to close the file.
    /// </summary>
    /// <exception cref="FileNotFoundException">No file at <paramref name="path"/>.</exception>
    public static PackageSource OpenFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new FileSource(File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read), path);
    }

    /// <summary>
    /// <paramref name="length"/> bytes at <paramref name="offset"/>: valid until the next read from this
    /// source (a file source reuses one buffer, so staging allocates nothing per chunk).
    /// </summary>
    /// <exception cref="FormatException">The package ends before <paramref name="offset"/> + <paramref name="length"/>.</exception>
    public abstract ReadOnlySpan<byte> Read(long offset, int length);

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the file of a file source.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }

    private protected static FormatException Truncated(long offset, int length, long available) =>
        new($"the package is truncated: {length} bytes at offset {offset} were needed and it has {available}; copy the whole file again");

    private sealed class MemorySource(ReadOnlyMemory<byte> package) : PackageSource
    {
        public override long Length => package.Length;

        public override ReadOnlySpan<byte> Read(long offset, int length)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(offset);
            ArgumentOutOfRangeException.ThrowIfNegative(length);
            if (offset + length > package.Length)
            {
                throw Truncated(offset, length, package.Length);
            }
            return package.Span.Slice((int)offset, length);
        }
    }

    private sealed class FileSource(SafeFileHandle file, string path) : PackageSource
    {
        private readonly long _length = RandomAccess.GetLength(file);
        private byte[] _buffer = [];

        public override long Length => _length;

        public override ReadOnlySpan<byte> Read(long offset, int length)
        {
            ObjectDisposedException.ThrowIf(file.IsClosed, this);
            ArgumentOutOfRangeException.ThrowIfNegative(offset);
            ArgumentOutOfRangeException.ThrowIfNegative(length);
            if (offset + length > _length)
            {
                throw Truncated(offset, length, _length);
            }
            if (_buffer.Length < length)
            {
                _buffer = new byte[Math.Max(length, Math.Min(2 * _buffer.Length, Array.MaxLength))];
            }
            Span<byte> destination = _buffer.AsSpan(0, length);
            for (int done = 0; done < length;)
            {
                int read = RandomAccess.Read(file, destination[done..], offset + done);
                if (read == 0)
                {
                    // The file shrank after it was opened.
                    throw new FormatException($"{path} ended at {offset + done} bytes while being staged; it changed after it was opened — copy the whole file again");
                }
                done += read;
            }
            return destination;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                file.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
