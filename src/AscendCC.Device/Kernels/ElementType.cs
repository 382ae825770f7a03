using System.Runtime.CompilerServices;

namespace AscendCC.Device.Kernels;

/// <summary>Element types the AI Cores read. Activations are always F32; weights may be half precision.</summary>
internal enum ElementType : byte
{
    /// <summary>IEEE-754 binary32.</summary>
    F32 = 0,
    /// <summary>IEEE-754 binary16.</summary>
    F16 = 1,
    /// <summary>bfloat16: the upper 16 bits of a binary32.</summary>
    BF16 = 2,
}

/// <summary>Scalar conversions; vectorised forms live beside the kernels that need them.</summary>
internal static class ElementTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(ElementType type) => type == ElementType.F32 ? 4 : 2;

    /// <summary>bf16 bits to float: exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>float to bf16 bits, round to nearest even (NaN stays NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToBF16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x40);
        }
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>fp16 bits to float: exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F16ToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>float to fp16 bits, round to nearest even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToF16(float value) => BitConverter.HalfToUInt16Bits((Half)value);
}
