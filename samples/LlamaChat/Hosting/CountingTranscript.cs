using AscendCC.Device;
using AscendCC.Runtime.Driver;

namespace LlamaChat.Hosting;

/// <summary>
/// Counts the host's task-buffer submissions while forwarding everything to the real transcript (if
/// any). The unlock step has no progress callback, but each weight's unlock is one eager launch the
/// host submits, so counting submissions gives an honest progress bar without touching the runtime.
/// </summary>
internal sealed class CountingTranscript(IHostTranscript? inner, Action<int> submitted) : IHostTranscript
{
    private int _count;

    /// <summary>Stops reporting (the runtime may keep a reference to this object).</summary>
    public bool Muted { get; set; }

    public void Record(TranscriptChannel channel, ReadOnlySpan<byte> bytes)
    {
        inner?.Record(channel, bytes);
        if (channel == TranscriptChannel.TaskBuffer && !Muted)
        {
            submitted(Interlocked.Increment(ref _count));
        }
    }

    public void RecordCompletion(in CompletionEntry entry) => inner?.RecordCompletion(entry);
}
