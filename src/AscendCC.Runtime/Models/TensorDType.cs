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
    /// <summary>
    /// llama.cpp's block_q8_0 as GGUF stores it: the innermost dimension in blocks of 32 values, each
    /// block 34 bytes (an f16 scale d, then 32 int8 q; the value is d·q). Read from GGUF Q8_0 tensors
    /// as stored; not a safetensors type.
    /// </summary>
    Q8_0,
    /// <summary>
    /// llama.cpp's block_q4_0 as GGUF stores it: blocks of 32 values along the innermost dimension,
    /// 18 bytes each (an f16 scale d, then 16 bytes whose low nibbles are values 0..15 and high
    /// nibbles 16..31; the value is d·(nibble − 8)). Read from GGUF Q4_0 tensors as stored.
    /// </summary>
    Q4_0,
    /// <summary>
    /// llama.cpp's block_q4_K as GGUF stores it: super-blocks of 256 values along the innermost
    /// dimension, 144 bytes each (f16 d and dmin, 12 bytes of 6-bit scales and mins for its eight
    /// blocks of 32, 128 bytes of nibbles; the value is d·sc·q − dmin·m). Read from GGUF Q4_K tensors
    /// as stored.
    /// </summary>
    Q4_K,
}

/// <summary>Sizes and conversions for <see cref="TensorDType"/>.</summary>
public static class TensorDTypes
{
    /// <summary>Bytes per element of the per-element types; the block types have none (see <see cref="ByteCount"/>).</summary>
    public static int SizeOf(TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => 4,
        TensorDType.F16 or TensorDType.BF16 => 2,
        TensorDType.Q8_0 or TensorDType.Q4_0 or TensorDType.Q4_K => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, $"{dtype} is stored in blocks of {BlockValues(dtype)} values ({BlockBytes(dtype)} bytes each); size it with TensorDTypes.ByteCount."),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown tensor dtype."),
    };

    /// <summary>Bytes per Q8_0 block of 32 values: an f16 scale and 32 int8.</summary>
    public const int Q8_0BlockBytes = 34;

    /// <summary>Bytes per Q4_0 block of 32 values: an f16 scale and 32 nibbles.</summary>
    public const int Q4_0BlockBytes = 18;

    /// <summary>Bytes per Q4_K super-block of 256 values.</summary>
    public const int Q4_KBlockBytes = 144;

    /// <summary>True for the llama.cpp block types (Q8_0, Q4_0, Q4_K).</summary>
    public static bool IsBlockQuantized(TensorDType dtype) => dtype is TensorDType.Q8_0 or TensorDType.Q4_0 or TensorDType.Q4_K;

    /// <summary>Bytes per block of a block type (<see cref="BlockValues"/> values).</summary>
    public static int BlockBytes(TensorDType dtype) => dtype switch
    {
        TensorDType.Q8_0 => Q8_0BlockBytes,
        TensorDType.Q4_0 => Q4_0BlockBytes,
        TensorDType.Q4_K => Q4_KBlockBytes,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a block type"),
    };

    /// <summary>Values per block of a block type: 32, or 256 for Q4_K's super-blocks.</summary>
    public static int BlockValues(TensorDType dtype) => dtype switch
    {
        TensorDType.Q8_0 or TensorDType.Q4_0 => 32,
        TensorDType.Q4_K => 256,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a block type"),
    };

    /// <summary>
    /// Bytes of a tensor of <paramref name="shape"/> in <paramref name="dtype"/>; a block-quantized tensor's
    /// innermost dimension must be whole blocks of 32 (refused here, naming the width, otherwise).
    /// </summary>
    public static long ByteCount(TensorDType dtype, IReadOnlyList<long> shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (long d in shape)
        {
            count = checked(count * d);
        }
        if (!IsBlockQuantized(dtype))
        {
            return checked(count * SizeOf(dtype));
        }
        long innermost = shape.Count == 0 ? 1 : shape[^1];
        int values = BlockValues(dtype);
        if (innermost % values != 0)
        {
            throw new ArgumentException($"A {dtype} tensor's innermost dimension must be whole blocks of {values} values; [{string.Join(", ", shape)}] has rows of {innermost}.", nameof(shape));
        }
        return count / values * BlockBytes(dtype);
    }

    /// <summary>The safetensors spelling of a dtype.</summary>
    public static string ToSafetensorsName(TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => "F32",
        TensorDType.F16 => "F16",
        TensorDType.BF16 => "BF16",
        TensorDType.Q8_0 or TensorDType.Q4_0 or TensorDType.Q4_K => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, $"safetensors has no {dtype} type; convert the tensor to F32, F16 or BF16 (TensorData.ToFloat32) before writing it."),
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

    /// <summary>Widens little-endian raw elements to float32; every supported dtype converts exactly (the block types as ggml dequantizes them).</summary>
    /// <param name="dtype">Element type of <paramref name="source"/>.</param>
    /// <param name="source">Raw little-endian bytes, a whole number of elements (of blocks).</param>
    /// <param name="destination">Receives source.Length / SizeOf(dtype) values (32 per block).</param>
    public static void ToFloat32(TensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (IsBlockQuantized(dtype))
        {
            int blockBytes = BlockBytes(dtype), values = BlockValues(dtype);
            if (source.Length % blockBytes != 0 || destination.Length < source.Length / blockBytes * values)
            {
                throw new ArgumentException($"{source.Length} bytes of {dtype} are not whole {blockBytes}-byte blocks fitting {destination.Length} floats.", nameof(destination));
            }
            Gguf.GgufTensorType type = dtype switch
            {
                TensorDType.Q8_0 => Gguf.GgufTensorType.Q8_0,
                TensorDType.Q4_0 => Gguf.GgufTensorType.Q4_0,
                _ => Gguf.GgufTensorType.Q4_K,
            };
            Gguf.GgufQuantization.Dequantize(type, source, destination[..(source.Length / blockBytes * values)]);
            return;
        }
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
