namespace AscendCC.Protocol.Attestation;

/// <summary>The device's confidential-computing mode, fixed at boot; changing it requires a reset with scrub.</summary>
public enum CcMode
{
    /// <summary>No confidential computing: the host may read device memory.</summary>
    Off = 0,

    /// <summary>Confidential computing with every data-revealing debug path locked.</summary>
    On = 1,

    /// <summary>Confidential protocols run but debug tools are available; visible in attestation and rejected by default policy.</summary>
    DevTools = 2,
}

/// <summary>Whether data-revealing debug paths (dumps, snapshots, tracing) are locked.</summary>
public enum DebugState
{
    /// <summary>All data-revealing debug paths are refused.</summary>
    Locked = 0,

    /// <summary>Debug paths are open.</summary>
    Unlocked = 1,
}
