using System.Buffers.Binary;
using System.Text;
using AscendCC.Device;

namespace AscendCC.Runtime.Driver;

/// <summary>
/// A host transcript written to a file, so that an auditor can scan everything the host handled.
/// Format (all integers little-endian):
/// <code>
/// file    = magic "ACCTRN01" (8 bytes) record*
/// record  = u8 channel (TranscriptChannel) | u32 length | length bytes
/// </code>
/// A <see cref="TranscriptChannel.Completion"/> record's bytes are
/// <c>u64 taskId | i32 stream | u16 kind | u16 status | u64 result | u64 faultAddress | UTF-8 detail</c>.
/// Records are appended in the order the host saw them; the completion pump records from its own
/// thread, so writes are serialised.
/// </summary>
public sealed class HostTranscriptFile : IHostTranscript, IDisposable
{
    /// <summary>The 8-byte file magic.</summary>
    public static ReadOnlySpan<byte> Magic => "ACCTRN01"u8;

    /// <summary>Bytes of a record header (channel and length).</summary>
    public const int RecordHeaderSize = 5;

    private readonly FileStream _file;
    private readonly object _gate = new();
    private bool _disposed;

    /// <summary>Creates (or truncates) the transcript file at <paramref name="path"/>.</summary>
    public HostTranscriptFile(string path)
    {
        Path = path;
        _file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16);
        _file.Write(Magic);
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>Records written so far.</summary>
    public long RecordCount { get; private set; }

    /// <inheritdoc />
    public void Record(TranscriptChannel channel, ReadOnlySpan<byte> bytes)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                // The completion pump may still post after the owner closed the file; throwing on
                // that thread would bring the process down, and the audit is over anyway.
                return;
            }
            Span<byte> header = stackalloc byte[RecordHeaderSize];
            header[0] = (byte)channel;
            BinaryPrimitives.WriteInt32LittleEndian(header[1..], bytes.Length);
            _file.Write(header);
            _file.Write(bytes);
            RecordCount++;
        }
    }

    /// <inheritdoc />
    public void RecordCompletion(in CompletionEntry entry) => Record(TranscriptChannel.Completion, EncodeCompletion(entry));

    /// <summary>Flushes buffered records to the file.</summary>
    public void Flush()
    {
        lock (_gate)
        {
            _file.Flush();
        }
    }

    /// <summary>Encodes a completion entry as a transcript record's bytes.</summary>
    public static byte[] EncodeCompletion(in CompletionEntry entry)
    {
        byte[] detail = Encoding.UTF8.GetBytes(entry.Detail ?? "");
        var b = new byte[32 + detail.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(b, entry.TaskId);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(8), entry.Stream);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(12), (ushort)entry.Kind);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(14), (ushort)entry.Status);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(16), entry.Result);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(24), entry.FaultAddress);
        detail.CopyTo(b, 32);
        return b;
    }

    /// <summary>Decodes a completion record's bytes.</summary>
    /// <exception cref="FormatException">Shorter than the fixed part.</exception>
    public static CompletionEntry DecodeCompletion(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 32)
        {
            throw new FormatException($"a completion record has at least 32 bytes, this one {bytes.Length}");
        }
        string detail = Encoding.UTF8.GetString(bytes[32..]);
        return new CompletionEntry(
            BinaryPrimitives.ReadUInt64LittleEndian(bytes),
            BinaryPrimitives.ReadInt32LittleEndian(bytes[8..]),
            (TaskKind)BinaryPrimitives.ReadUInt16LittleEndian(bytes[12..]),
            (CompletionStatus)BinaryPrimitives.ReadUInt16LittleEndian(bytes[14..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[16..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[24..]),
            detail.Length == 0 ? null : detail);
    }

    /// <summary>Reads every record of a transcript file, in order.</summary>
    /// <exception cref="FormatException">Wrong magic, unknown channel or a truncated record.</exception>
    public static IEnumerable<(TranscriptChannel Channel, byte[] Bytes)> Read(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
        var magic = new byte[Magic.Length];
        if (file.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false) != magic.Length || !Magic.SequenceEqual(magic))
        {
            throw new FormatException($"{path} is not a host transcript (magic ACCTRN01 missing)");
        }
        var header = new byte[RecordHeaderSize];
        long offset = Magic.Length;
        while (true)
        {
            int n = file.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
            if (n == 0)
            {
                yield break;
            }
            var channel = (TranscriptChannel)header[0];
            int length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(1));
            if (n != header.Length || !Enum.IsDefined(channel) || length < 0)
            {
                throw new FormatException($"bad transcript record header at byte {offset}");
            }
            var bytes = new byte[length];
            if (file.ReadAtLeast(bytes, length, throwOnEndOfStream: false) != length)
            {
                throw new FormatException($"transcript record at byte {offset} is truncated ({length} bytes announced)");
            }
            offset += RecordHeaderSize + length;
            yield return (channel, bytes);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            _file.Dispose();
        }
    }
}
