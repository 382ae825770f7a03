namespace AscendCC.Device;

/// <summary>A buffer argument of a kernel launch: a device address and the bytes the kernel may touch there.</summary>
/// <param name="Address">Device address (0 with <paramref name="Bytes"/> 0 means "absent", for optional operands).</param>
/// <param name="Bytes">Extent in bytes; the whole extent must lie inside one region.</param>
public readonly record struct KernelArgument(ulong Address, long Bytes)
{
    /// <summary>The absent optional operand.</summary>
    public static KernelArgument None => default;

    /// <summary>True for <see cref="None"/>.</summary>
    public bool IsNone => Address == 0 && Bytes == 0;
}

/// <summary>A scalar argument of a kernel launch: an immediate 64-bit value or a device address to read it from at launch time.</summary>
/// <param name="Source">Immediate or read from HBM.</param>
/// <param name="Value">The value (integers as Int64, floats as the bits of a double), or the device address to read it from.</param>
public readonly record struct KernelScalar(ScalarSource Source, ulong Value)
{
    /// <summary>An immediate integer.</summary>
    public static KernelScalar Of(long value) => new(ScalarSource.Immediate, unchecked((ulong)value));

    /// <summary>An immediate floating-point value.</summary>
    public static KernelScalar Of(double value) => new(ScalarSource.Immediate, unchecked((ulong)BitConverter.DoubleToInt64Bits(value)));

    /// <summary>A value read from 8 bytes of HBM when the kernel launches.</summary>
    public static KernelScalar FromDevice(ulong address) => new(ScalarSource.DeviceMemory, address);
}
