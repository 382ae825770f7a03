using System.Buffers.Binary;
using System.Text;
using AscendCC.Device;
using AscendCC.Runtime.Driver;

namespace LlamaChat.Hosting;

/// <summary>
/// Opens the --transcript writer. A seam on purpose: the runtime is getting its own file-backed
/// transcript (HostTranscriptFile); when it lands, only this factory changes.
/// </summary>
internal static class TranscriptFiles
{
    public static Func<string, ITranscriptWriter> Open { get; set; } = path => new SampleTranscriptFile(path);
}

/// <summary>A transcript that must be flushed and closed.</summary>
internal interface ITranscriptWriter : IHostTranscript, IDisposable
{
    /// <summary>Records written so far.</summary>
    long Records { get; }

    /// <summary>Bytes recorded so far (payload only).</summary>
    long Bytes { get; }
}

/// <summary>
/// The sample's minimal transcript file: per record a channel byte, a little-endian int32 length and
/// the bytes exactly as the host handled them; completion entries as their fields in text. Nothing is
/// added or interpreted, so anyone can grep the file for plaintext the host should never have seen.
/// </summary>
internal sealed class SampleTranscriptFile : ITranscriptWriter
{
    private readonly FileStream _file;
    private readonly Lock _gate = new();

    public SampleTranscriptFile(string path)
    {
        _file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read);
        _file.Write("ACCTRN01"u8);
    }

    public long Records { get; private set; }

    public long Bytes { get; private set; }

    public void Record(TranscriptChannel channel, ReadOnlySpan<byte> bytes)
    {
        Span<byte> header = stackalloc byte[5];
        header[0] = (byte)channel;
        BinaryPrimitives.WriteInt32LittleEndian(header[1..], bytes.Length);
        lock (_gate)
        {
            _file.Write(header);
            _file.Write(bytes);
            Records++;
            Bytes += bytes.Length;
        }
    }

    public void RecordCompletion(in CompletionEntry entry) =>
        Record(TranscriptChannel.Completion, Encoding.UTF8.GetBytes($"{entry.TaskId} {entry.Stream} {entry.Kind} {entry.Status} {entry.Result} {entry.FaultAddress} {entry.Detail}"));

    public void Dispose()
    {
        lock (_gate)
        {
            _file.Dispose();
        }
    }
}
