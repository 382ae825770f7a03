using AscendCC.Device.Scheduler;

namespace AscendCC.Device.Graph;

/// <summary>
/// A model in graph mode: its task list decoded once at load, so each executeModel runs straight
/// through it with no decoding and no host round trip per task.
/// </summary>
internal sealed class LoadedModel
{
    public LoadedModel(int id, DecodedTask[] tasks, byte[] taskListDigest)
    {
        Id = id;
        Tasks = tasks;
        TaskListDigest = taskListDigest;
    }

    public int Id { get; }

    public DecodedTask[] Tasks { get; }

    /// <summary>SHA-256 of the task-list bytes as loaded.</summary>
    public byte[] TaskListDigest { get; }

    /// <summary>In confidential mode, the firmware's measurement and verdict; null otherwise.</summary>
    public Confidential.ModelAttestation? Attestation { get; set; }

    /// <summary>Tasks a model may contain: compute and device-internal copies, nothing that reaches the host or the allocator.</summary>
    public static bool Allows(TaskKind kind) =>
        kind is TaskKind.KernelLaunch or TaskKind.MemcpyDeviceToDevice or TaskKind.Memset or TaskKind.Nop;
}
