using System.Runtime.InteropServices;

namespace AscendCC.Runtime.Models;

/// <summary>A tensor held in memory: name, element type, shape and little-endian bytes.</summary>
public sealed class TensorData
{
    /// <summary>Creates a tensor; checks that the byte count matches the shape.</summary>
    public TensorData(string name, TensorDType dtype, IReadOnlyList<long> shape, ReadOnlyMemory<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (long d in shape)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(d, nameof(shape));
            count = checked(count * d);
        }
        if (TensorDTypes.IsBlockQuantized(dtype) && shape.Count > 0 && shape[^1] % TensorDTypes.BlockValues(dtype) != 0)
        {
            throw new ArgumentException($"tensor '{name}' of shape [{string.Join(", ", shape)}] cannot be {dtype}: its rows of {shape[^1]} values are not whole blocks of {TensorDTypes.BlockValues(dtype)}", nameof(shape));
        }
        long needed = TensorDTypes.ByteCount(dtype, shape);
        if (bytes.Length != needed)
        {
            throw new ArgumentException($"tensor '{name}' of shape [{string.Join(", ", shape)}] in {dtype} needs {needed} bytes, got {bytes.Length}", nameof(bytes));
        }
        ElementCount = count;
        Name = name;
        DType = dtype;
        Shape = shape.ToArray();
        Bytes = bytes;
    }

    /// <summary>Number of values: the product of <see cref="Shape"/>.</summary>
    public long ElementCount { get; }

    /// <summary>Tensor name (Hugging Face naming for Llama weights).</summary>
    public string Name { get; }

    /// <summary>Element type of <see cref="Bytes"/>.</summary>
    public TensorDType DType { get; }

    /// <summary>Shape, outermost first.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The values, little-endian.</summary>
    public ReadOnlyMemory<byte> Bytes { get; }

    /// <summary>
    /// Reads a checkpoint tensor into memory: as stored for F32, F16, BF16 and GGUF Q8_0, Q4_0 and Q4_K
    /// (whose blocks then reach a device of their precision without a dequantize/requantize round
    /// trip), the other GGUF block types (Q6_K) dequantized to F32.
    /// </summary>
    public static TensorData FromCheckpoint(CheckpointTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.StoredBlockDType is { } blocks
            ? new TensorData(tensor.Name, blocks, tensor.Shape, tensor.ReadStoredBytes())
            : new TensorData(tensor.Name, tensor.DType, tensor.Shape, tensor.ReadBytes());
    }

    /// <summary>A float32 tensor from values.</summary>
    public static TensorData FromFloat32(string name, IReadOnlyList<long> shape, ReadOnlySpan<float> values) =>
        new(name, TensorDType.F32, shape, MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>The values widened to float32.</summary>
    public float[] ToFloat32()
    {
        var values = new float[ElementCount];
        TensorDTypes.ToFloat32(DType, Bytes.Span, values);
        return values;
    }
}
