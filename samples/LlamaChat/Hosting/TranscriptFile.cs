using AscendCC.Device;
using AscendCC.Runtime.Driver;

namespace LlamaChat.Hosting;

/// <summary>Where --transcript files come from.</summary>
internal static class TranscriptFiles
{
    public static Func<string, ITranscriptWriter> Open { get; set; } = path => new CountingTranscriptFile(path);
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
/// The runtime's <see cref="HostTranscriptFile"/> (every byte exactly as the host handled it; format
/// in docs/security.md), counting what it wrote so the sample can report it.
/// </summary>
internal sealed class CountingTranscriptFile(string path) : ITranscriptWriter
{
    private readonly HostTranscriptFile _file = new(path);

    public long Records => _file.RecordCount;

    public long Bytes { get; private set; }

    public void Record(TranscriptChannel channel, ReadOnlySpan<byte> bytes)
    {
        _file.Record(channel, bytes);
        Bytes += bytes.Length;
    }

    public void RecordCompletion(in CompletionEntry entry) => _file.RecordCompletion(entry);

    public void Dispose() => _file.Dispose();
}
