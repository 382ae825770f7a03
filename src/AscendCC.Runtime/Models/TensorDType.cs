namespace AscendCC.Runtime.Models;

/// <summary>Element types a checkpoint tensor may hold. Anything else is refused when the file is opened.</summary>
public enum TensorDType
{
    /// <summary>IEEE-754 binary32 (safetensors "F32").</summary>
    F32,
    /// <summary>IEEE-754 binary16 (safetensors "F16").</summary>
    F16,
    /// <summary>bfloat16, the upper half of a binary32 (safetensors "BF16").</summary>
    BF16,
}

/// <summary>Sizes and conversions for <see cref="TensorDType"/>.</summary>
public static class TensorDTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => 4,
        TensorDType.F16 or TensorDType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown tensor dtype."),
    };

    /// <summary>The safetensors spelling of a dtype.</summary>
    public static string ToSafetensorsName(TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => "F32",
        TensorDType.F16 => "F16",
        TensorDType.BF16 => "BF16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown tensor dtype."),
    };

    /// <summary>Parses a safetensors dtype name; false for names this runtime does not support.</summary>
    public static bool TryParseSafetensorsName(string name, out TensorDType dtype)
    {
        switch (name)
        {
            case "F32": dtype = TensorDType.F32; return true;
            case "F16": dtype = TensorDType.F16; return true;
            case "BF16": dtype = TensorDType.BF16; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>Widens little-endian raw elements to float32; every supported dtype converts exactly.</summary>
    /// <param name="dtype">Element type of <paramref name="source"/>.</param>
    /// <param name="source">Raw little-endian bytes, a whole number of elements.</param>
    /// <param name="destination">Receives source.Length / SizeOf(dtype) values.</param>
    public static void ToFloat32(TensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        int size = SizeOf(dtype);
        int n = source.Length / size;
        if (source.Length % size != 0 || destination.Length < n)
        {
            throw new ArgumentException($"{source.Length} bytes of {dtype} do not fit {destination.Length} floats.", nameof(destination));
        }
        switch (dtype)
        {
            case TensorDType.F32:
                for (int i = 0; i < n; i++)
                {
                    destination[i] = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(source.Slice(i * 4, 4));
                }
                break;
            case TensorDType.F16:
                for (int i = 0; i < n; i++)
                {
                    destination[i] = (float)System.Buffers.Binary.BinaryPrimitives.ReadHalfLittleEndian(source.Slice(i * 2, 2));
                }
                break;
            case TensorDType.BF16:
                for (int i = 0; i < n; i++)
                {
                    ushort bits = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(source.Slice(i * 2, 2));
                    destination[i] = BitConverter.Int32BitsToSingle(bits << 16);
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown tensor dtype.");
        }
    }
}
