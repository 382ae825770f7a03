namespace AscendCC.Protocol.Measurements;

/// <summary>The device's measurement registers, in canonical (encoding) order.</summary>
public enum MeasurementRegisterId
{
    /// <summary>The boot ROM's own identity (immutable code in silicon).</summary>
    BootRom = 0,

    /// <summary>The signed firmware image the boot ROM loaded.</summary>
    Firmware = 1,

    /// <summary>The runtime configuration chosen at boot (CC mode request, debug request).</summary>
    Configuration = 2,

    /// <summary>Whether debug paths were locked at boot.</summary>
    DebugState = 3,

    /// <summary>The confidential-computing mode the device runs in.</summary>
    CcMode = 4,

    /// <summary>
    /// The confidential model graphs the firmware accepted since boot: extended with each attested task
    /// list's graph measurement, so a data owner can require that the device runs the model it expects.
    /// </summary>
    Model = 5,
}
