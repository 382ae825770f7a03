namespace AscendCC.Device;

/// <summary>What the device says about itself (a register read).</summary>
/// <param name="Name">Product name.</param>
/// <param name="HbmCapacity">HBM bytes.</param>
/// <param name="AiCoreCount">AI Cores (CPU threads the model runs kernels on).</param>
/// <param name="AiCpuCount">AI CPUs (custom operators).</param>
/// <param name="StreamCount">Hardware streams.</param>
/// <param name="EventCount">Hardware events.</param>
/// <param name="TaskBufferBytes">Capacity of each stream's task buffer.</param>
/// <param name="VectorWidthBits">Widest SIMD width the AI Cores use (512 with AVX-512).</param>
public readonly record struct DeviceProperties(
    string Name,
    long HbmCapacity,
    int AiCoreCount,
    int AiCpuCount,
    int StreamCount,
    int EventCount,
    int TaskBufferBytes,
    int VectorWidthBits);

/// <summary>HBM usage counters.</summary>
/// <param name="Capacity">Total HBM bytes.</param>
/// <param name="Allocated">Bytes in live regions.</param>
/// <param name="PeakAllocated">Highest <paramref name="Allocated"/> since power-on or the last reset of the peak.</param>
/// <param name="RegionCount">Live regions.</param>
public readonly record struct DeviceMemoryInfo(long Capacity, long Allocated, long PeakAllocated, int RegionCount);
