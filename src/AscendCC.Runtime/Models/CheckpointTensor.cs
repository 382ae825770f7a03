using Microsoft.Win32.SafeHandles;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Models;

/// <summary>
/// One tensor of an open checkpoint: its name, dtype, shape and where its bytes sit in the file.
/// The bytes stay on disk until read, so a large checkpoint is never held in memory twice.
/// Valid only while the checkpoint that produced it is open.
/// </summary>
public sealed class CheckpointTensor
{
    private readonly SafeFileHandle _file;
    private readonly GgufTensorType? _quantized;
    private readonly long _storedByteLength;

    internal CheckpointTensor(string name, TensorDType dtype, long[] shape, string filePath, SafeFileHandle file, long fileOffset)
    {
        Name = name;
        DType = dtype;
        Shape = Array.AsReadOnly(shape);
        long count = 1;
        foreach (long d in shape)
        {
            count = checked(count * d);
        }
        ElementCount = count;
        ByteLength = checked(count * TensorDTypes.SizeOf(dtype));
        FilePath = filePath;
        FileOffset = fileOffset;
        _file = file;
        _storedByteLength = ByteLength;
    }

    /// <summary>A GGUF tensor: plain types are exposed as stored, block-quantized ones dequantized to F32 when read.</summary>
    internal CheckpointTensor(string name, GgufTensorInfo info, SafeFileHandle file, string filePath)
        : this(name, ToDType(info.Type), info.Shape, filePath, file, info.FileOffset)
    {
        if (GgufTensorTypes.IsQuantized(info.Type))
        {
            _quantized = info.Type;
        }
        _storedByteLength = info.ByteLength;
    }

    /// <summary>Bytes the tensor occupies in the file: <see cref="ByteLength"/>, or fewer for a block-quantized GGUF tensor.</summary>
    public long StoredByteLength => _storedByteLength;

    /// <summary>
    /// <see cref="TensorDType.Q8_0"/>, <see cref="TensorDType.Q4_0"/> or <see cref="TensorDType.Q4_K"/> for a GGUF tensor stored in
    /// that block format: its <see cref="ReadStoredBytes"/> are those blocks as llama.cpp wrote them,
    /// which a device of that precision keeps without requantizing. Null otherwise.
    /// </summary>
    public TensorDType? StoredBlockDType => _quantized switch
    {
        GgufTensorType.Q8_0 => TensorDType.Q8_0,
        GgufTensorType.Q4_0 => TensorDType.Q4_0,
        GgufTensorType.Q4_K => TensorDType.Q4_K,
        _ => null,
    };

    /// <summary>The GGUF block type the file stores this tensor in (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K); null for plain types and other formats.</summary>
    public GgufTensorType? StoredGgufType => _quantized;

    /// <summary>The tensor's bytes exactly as the file stores them (<see cref="StoredByteLength"/> of them; for a quantized GGUF tensor, its blocks).</summary>
    public byte[] ReadStoredBytes()
    {
        if (_storedByteLength > Array.MaxLength)
        {
            throw new InvalidOperationException($"Tensor '{Name}' stores {_storedByteLength} bytes, more than one array can hold.");
        }
        var bytes = new byte[_storedByteLength];
        GgufTensorReader.ReadExactly(_file, FilePath, Name, bytes, FileOffset);
        return bytes;
    }

    private static TensorDType ToDType(GgufTensorType type) => type switch
    {
        GgufTensorType.F16 => TensorDType.F16,
        GgufTensorType.BF16 => TensorDType.BF16,
        _ => TensorDType.F32,
    };

    /// <summary>Tensor name as stored (Hugging Face names for both layouts).</summary>
    public string Name { get; }

    /// <summary>Element type of the stored bytes.</summary>
    public TensorDType DType { get; }

    /// <summary>Shape, outermost dimension first (row-major).</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>Number of elements: the product of <see cref="Shape"/>.</summary>
    public long ElementCount { get; }

    /// <summary>Number of stored bytes: <see cref="ElementCount"/> times the dtype size.</summary>
    public long ByteLength { get; }

    /// <summary>The file holding the bytes.</summary>
    public string FilePath { get; }

    /// <summary>Absolute offset of the first stored byte in <see cref="FilePath"/>.</summary>
    public long FileOffset { get; }

    /// <summary>Reads the raw little-endian bytes into <paramref name="destination"/> (exactly <see cref="ByteLength"/> long);
    /// a block-quantized GGUF tensor is dequantized into them as float32.</summary>
    public void ReadBytes(Span<byte> destination)
    {
        if (destination.Length != ByteLength)
        {
            throw new ArgumentException($"Tensor '{Name}' has {ByteLength} bytes; the destination holds {destination.Length}. Allocate ByteLength bytes.", nameof(destination));
        }
        if (_quantized is { } type)
        {
            GgufTensorReader.ReadFloat32Bytes(_file, FilePath, Name, type, FileOffset, _storedByteLength, destination);
            return;
        }
        long offset = FileOffset;
        while (!destination.IsEmpty)
        {
            int read = RandomAccess.Read(_file, destination, offset);
            if (read == 0)
            {
                throw new CheckpointFormatException(FilePath, Name, $"the file ended {destination.Length} bytes before the tensor did (it was changed or truncated after opening).", "Re-copy the checkpoint and open it again.");
            }
            destination = destination[read..];
            offset += read;
        }
    }

    /// <summary>Reads the raw little-endian bytes into a new array.</summary>
    public byte[] ReadBytes()
    {
        if (ByteLength > Array.MaxLength)
        {
            throw new InvalidOperationException($"Tensor '{Name}' has {ByteLength} bytes, more than one array can hold; read it in slices with ReadBytes(Span<byte>) over a smaller tensor view.");
        }
        var bytes = new byte[ByteLength];
        ReadBytes(bytes);
        return bytes;
    }

    /// <summary>Reads the tensor and widens it to float32 (exact for F32, F16 and BF16).</summary>
    public float[] ReadFloat32()
    {
        var values = new float[checked((int)ElementCount)];
        TensorDTypes.ToFloat32(DType, ReadBytes(), values);
        return values;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} {DType} [{string.Join(", ", Shape)}]";
}
