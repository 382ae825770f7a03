using System.Buffers;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AscendCC.Runtime.Models.Gguf;

/// <summary>Streams a stored GGUF tensor from its file into float32 a slab of blocks at a time.</summary>
internal static class GgufTensorReader
{
    /// <summary>Bytes read per slab: large enough to amortise the read call, small enough to stay in cache.</summary>
    private const int SlabBytes = 1 << 20;

    public static void ReadFloat32(SafeFileHandle file, string path, string name, GgufTensorType type, long fileOffset, long byteLength, Span<float> destination)
    {
        int blockBytes = GgufTensorTypes.BlockBytes(type);
        int blockSize = GgufTensorTypes.BlockSize(type);
        long blocks = byteLength / blockBytes;
        if (destination.Length != blocks * blockSize)
        {
            throw new ArgumentException($"Tensor '{name}' has {blocks * blockSize} elements; the destination holds {destination.Length}.", nameof(destination));
        }
        int blocksPerSlab = Math.Max(1, SlabBytes / blockBytes);
        byte[] slab = ArrayPool<byte>.Shared.Rent(blocksPerSlab * blockBytes);
        try
        {
            for (long b = 0; b < blocks; b += blocksPerSlab)
            {
                int n = (int)Math.Min(blocksPerSlab, blocks - b);
                Span<byte> bytes = slab.AsSpan(0, n * blockBytes);
                ReadExactly(file, path, name, bytes, fileOffset + b * blockBytes);
                GgufQuantization.Dequantize(type, bytes, destination.Slice((int)(b * blockSize), n * blockSize));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(slab);
        }
    }

    /// <summary>The float32 image of the tensor written as bytes (what <see cref="CheckpointTensor"/> hands out).</summary>
    public static void ReadFloat32Bytes(SafeFileHandle file, string path, string name, GgufTensorType type, long fileOffset, long byteLength, Span<byte> destination) =>
        ReadFloat32(file, path, name, type, fileOffset, byteLength, MemoryMarshal.Cast<byte, float>(destination));

    public static void ReadExactly(SafeFileHandle file, string path, string name, Span<byte> destination, long offset)
    {
        while (!destination.IsEmpty)
        {
            int read = RandomAccess.Read(file, destination, offset);
            if (read == 0)
            {
                throw new CheckpointFormatException(path, name, $"the file ended {destination.Length} bytes before the tensor did (it was changed or truncated after opening).", "Re-copy the checkpoint and open it again.");
            }
            destination = destination[read..];
            offset += read;
        }
    }
}
