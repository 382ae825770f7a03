namespace AscendCC.Device;

/// <summary>Kinds of task the scheduler accepts in a stream's task buffer or a model's task list.</summary>
public enum TaskKind : ushort
{
    /// <summary>Does nothing; with <see cref="TaskOptions.Notify"/> it marks a point the host can wait for.</summary>
    Nop = 1,
    /// <summary>Allocate HBM; the completion's result is the device address.</summary>
    Alloc = 2,
    /// <summary>Free an HBM region by its base address.</summary>
    Free = 3,
    /// <summary>DMA from a registered host buffer into HBM, checked by the SMMU.</summary>
    MemcpyHostToDevice = 4,
    /// <summary>DMA from HBM into a registered host buffer, checked by the SMMU.</summary>
    MemcpyDeviceToHost = 5,
    /// <summary>Copy inside HBM.</summary>
    MemcpyDeviceToDevice = 6,
    /// <summary>Fill HBM with a byte value.</summary>
    Memset = 7,
    /// <summary>Seal an operator binary region and make it launchable; the result is the operator handle.</summary>
    LoadOperator = 8,
    /// <summary>Run a loaded operator on the AI Cores (or AI CPUs) with buffer and scalar arguments.</summary>
    KernelLaunch = 9,
    /// <summary>Signal an event.</summary>
    EventRecord = 10,
    /// <summary>Block the stream until an event is signalled.</summary>
    EventWait = 11,
    /// <summary>Clear an event.</summary>
    EventReset = 12,
    /// <summary>Load a model's task list from HBM; the result is the model id.</summary>
    LoadModel = 13,
    /// <summary>Run a loaded model's task list.</summary>
    ExecuteModel = 14,
    /// <summary>Forget a loaded model.</summary>
    UnloadModel = 15,
    /// <summary>Set the host's DMA access to a region (SMMU programming through the firmware).</summary>
    SetDmaAccess = 16,
}

/// <summary>Per-task flags.</summary>
[Flags]
public enum TaskOptions : ushort
{
    /// <summary>Post a completion only on failure.</summary>
    None = 0,
    /// <summary>Post a completion on success too.</summary>
    Notify = 1,
}

/// <summary>Where a kernel launch scalar comes from.</summary>
public enum ScalarSource : byte
{
    /// <summary>The value is in the task.</summary>
    Immediate = 0,
    /// <summary>The value is read from 8 bytes of HBM at launch time (graph mode: positions and lengths that change per run).</summary>
    DeviceMemory = 1,
}
