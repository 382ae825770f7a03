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
        if (bytes.Length != count * TensorDTypes.SizeOf(dtype))
        {
            throw new ArgumentException($"tensor '{name}' of shape [{string.Join(", ", shape)}] in {dtype} needs {count * TensorDTypes.SizeOf(dtype)} bytes, got {bytes.Length}", nameof(bytes));
        }
        Name = name;
        DType = dtype;
        Shape = shape.ToArray();
        Bytes = bytes;
    }

    /// <summary>Tensor name (Hugging Face naming for Llama weights).</summary>
    public string Name { get; }

    /// <summary>Element type of <see cref="Bytes"/>.</summary>
    public TensorDType DType { get; }

    /// <summary>Shape, outermost first.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The values, little-endian.</summary>
    public ReadOnlyMemory<byte> Bytes { get; }

    /// <summary>Reads a checkpoint tensor into memory.</summary>
    public static TensorData FromCheckpoint(CheckpointTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return new TensorData(tensor.Name, tensor.DType, tensor.Shape, tensor.ReadBytes());
    }

    /// <summary>A float32 tensor from values.</summary>
    public static TensorData FromFloat32(string name, IReadOnlyList<long> shape, ReadOnlySpan<float> values) =>
        new(name, TensorDType.F32, shape, MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>The values widened to float32.</summary>
    public float[] ToFloat32()
    {
        var values = new float[Bytes.Length / TensorDTypes.SizeOf(DType)];
        TensorDTypes.ToFloat32(DType, Bytes.Span, values);
        return values;
    }
}
