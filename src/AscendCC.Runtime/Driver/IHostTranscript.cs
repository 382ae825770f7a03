using AscendCC.Device;

namespace AscendCC.Runtime.Driver;

/// <summary>What kind of bytes a transcript record holds.</summary>
public enum TranscriptChannel
{
    /// <summary>Task bytes written into a stream's task buffer.</summary>
    TaskBuffer,
    /// <summary>Bytes DMA'd from the host to the device.</summary>
    HostToDevice,
    /// <summary>Bytes DMA'd from the device to the host.</summary>
    DeviceToHost,
    /// <summary>A message relayed between a trusted party and the device.</summary>
    RelayedMessage,
    /// <summary>A completion queue entry.</summary>
    Completion,
}

/// <summary>Receives every byte the host handles, for audit (see the confidential-computing docs).</summary>
public interface IHostTranscript
{
    /// <summary>Records bytes on a channel.</summary>
    void Record(TranscriptChannel channel, ReadOnlySpan<byte> bytes);

    /// <summary>Records a completion entry.</summary>
    void RecordCompletion(in CompletionEntry entry);
}
