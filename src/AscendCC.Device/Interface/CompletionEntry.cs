namespace AscendCC.Device;

/// <summary>Outcome of a task, as the completion queue reports it.</summary>
public enum CompletionStatus : ushort
{
    /// <summary>The task ran.</summary>
    Success = 0,
    /// <summary>The task bytes are malformed or name an unknown kind.</summary>
    InvalidTask = 1,
    /// <summary>HBM is exhausted.</summary>
    OutOfMemory = 2,
    /// <summary>The SMMU refused a DMA (unmapped region, wrong direction, range outside a region or host buffer).</summary>
    DmaFault = 3,
    /// <summary>A device address does not lie inside one allocated region, or the region has the wrong role.</summary>
    InvalidAddress = 4,
    /// <summary>An operator binary is not one the AI Cores can execute, or is not loaded.</summary>
    IllegalOperator = 5,
    /// <summary>A kernel rejected its arguments.</summary>
    KernelError = 6,
    /// <summary>An event id or model id is out of range or unknown.</summary>
    InvalidHandle = 7,
    /// <summary>The confidential-computing rules refused the task.</summary>
    AccessDenied = 8,
    /// <summary>The stream's task buffer was discarded after an undecodable task.</summary>
    StreamReset = 9,
}

/// <summary>One completion queue entry.</summary>
/// <param name="TaskId">The id the host put in the task header.</param>
/// <param name="Stream">The stream the task ran on.</param>
/// <param name="Kind">The task's kind (0 when the header itself was unreadable).</param>
/// <param name="Status">Outcome.</param>
/// <param name="Result">Kind-specific result: an address, operator handle or model id.</param>
/// <param name="FaultAddress">For faults, the first device address at fault.</param>
/// <param name="Detail">A human-readable cause; never contains protected data.</param>
public readonly record struct CompletionEntry(
    ulong TaskId,
    int Stream,
    TaskKind Kind,
    CompletionStatus Status,
    ulong Result,
    ulong FaultAddress,
    string? Detail)
{
    /// <summary>True when the task ran.</summary>
    public bool Succeeded => Status == CompletionStatus.Success;
}
