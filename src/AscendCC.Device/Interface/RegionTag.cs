namespace AscendCC.Device;

/// <summary>
/// What a region of HBM holds. The tag is chosen by whoever allocates the region and is what the
/// confidential-computing rules key on (which regions are locked, which may be copied to the host).
/// </summary>
public enum RegionTag : ushort
{
    /// <summary>General-purpose device memory.</summary>
    General = 0,
    /// <summary>Model weights.</summary>
    Weights = 1,
    /// <summary>Operator binaries (sealed once loaded).</summary>
    OperatorBinary = 2,
    /// <summary>Activations and other intermediate tensors.</summary>
    Activations = 3,
    /// <summary>Attention key/value cache.</summary>
    KvCache = 4,
    /// <summary>Kernel workspace.</summary>
    Workspace = 5,
    /// <summary>A model's task list (graph mode).</summary>
    TaskList = 6,
    /// <summary>Input staging: bytes the host writes for the device.</summary>
    InputStaging = 7,
    /// <summary>Output staging: the only place data may leave for the host in confidential mode.</summary>
    OutputStaging = 8,
}
