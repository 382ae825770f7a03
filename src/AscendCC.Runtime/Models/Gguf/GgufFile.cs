using Microsoft.Win32.SafeHandles;

namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// A GGUF file (versions 2 and 3, little-endian) opened for reading: header, metadata and tensor
/// infos parsed strictly; tensor bytes stay in the file and are read on demand, so a model is never
/// held in managed memory as a whole.
/// </summary>
/// <remarks>
/// Layout (ggml's gguf.cpp): magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the
/// key/values, the tensor infos (name, u32 n_dims, n_dims × u64 ne, u32 type, u64 offset), padding to
/// <c>general.alignment</c> (default 32), then the data section; every tensor offset is relative to it
/// and aligned.
/// </remarks>
public sealed class GgufFile : IDisposable
{
    /// <summary>"GGUF" read as a little-endian u32.</summary>
    public const uint Magic = 0x46554747;

    /// <summary>The alignment when <c>general.alignment</c> is absent.</summary>
    public const int DefaultAlignment = 32;

    private const int MaxDimensions = 4;
    private const int MaxArrayNesting = 8;

    private readonly SafeFileHandle _file;
    private readonly Dictionary<string, GgufTensorInfo> _byName;

    private GgufFile(string path, SafeFileHandle file, uint version, GgufMetadata metadata, IReadOnlyList<GgufTensorInfo> tensors, int alignment, long dataOffset)
    {
        Path = path;
        _file = file;
        Version = version;
        Metadata = metadata;
        Tensors = tensors;
        Alignment = alignment;
        DataOffset = dataOffset;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>The file's full path.</summary>
    public string Path { get; }

    /// <summary>The GGUF version (2 or 3).</summary>
    public uint Version { get; }

    /// <summary>The metadata key/values.</summary>
    public GgufMetadata Metadata { get; }

    /// <summary>Tensor infos in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    /// <summary>Alignment of the data section and of every tensor in it.</summary>
    public int Alignment { get; }

    /// <summary>Absolute offset of the data section.</summary>
    public long DataOffset { get; }

    internal SafeFileHandle Handle => _file;

    /// <summary>The tensor named <paramref name="name"/> (GGUF name), or null.</summary>
    public GgufTensorInfo? FindTensor(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Opens and validates <paramref name="path"/>; every problem is a <see cref="CheckpointFormatException"/> naming it.</summary>
    public static GgufFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = System.IO.Path.GetFullPath(path);
        var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            long length = RandomAccess.GetLength(file);
            // A stream of its own for the header: a FileStream over the kept handle would close it on dispose.
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
            var reader = new GgufHeaderReader(stream, path, length);
            reader.Context = "magic";
            uint magic = reader.U32();
            if (magic != Magic)
            {
                throw new CheckpointFormatException(path, null, $"does not start with the GGUF magic 'GGUF' (found 0x{magic:X8}).", "Pass a .gguf file written by llama.cpp or GgufWriter.");
            }
            reader.Context = "version";
            uint version = reader.U32();
            if (version is not (2 or 3))
            {
                string why = version == 1 ? "version 1 (32-bit counts, llama.cpp before August 2023) is not read"
                    : (version & 0xFFFF) == 0 && version != 0 ? $"version field 0x{version:X8} looks big-endian; only little-endian files are read"
                    : $"version {version} is not supported (2 and 3 are)";
                throw new CheckpointFormatException(path, null, $"is a GGUF file whose {why}.", "Convert the model again with a current llama.cpp (GGUF v3, little-endian).");
            }
            reader.Context = "tensor count";
            long tensorCount = reader.Count("the tensor count", 8 + 4 + 4 + 8);
            reader.Context = "metadata count";
            long kvCount = reader.Count("the metadata count", 8 + 4);
            var values = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
            var keys = new List<string>();
            for (long i = 0; i < kvCount; i++)
            {
                reader.Context = $"metadata entry {i} of {kvCount}";
                string key = reader.String();
                reader.Context = $"metadata '{key}'";
                var value = ReadValue(reader, (GgufValueType)reader.U32(), 0);
                if (!values.TryAdd(key, value))
                {
                    throw reader.Malformed($"the key '{key}' appears twice.");
                }
                keys.Add(key);
            }
            var metadata = new GgufMetadata(path, values, keys);
            int alignment = DefaultAlignment;
            if (metadata.Find("general.alignment") is { } a)
            {
                long? n = a.AsInt64();
                if (a.Type != GgufValueType.UInt32 || n is not > 0 || (n & (n - 1)) != 0)
                {
                    throw new CheckpointFormatException(path, null, $"general.alignment is {a} ({a.Type}); it must be a u32 power of two.", "The file is malformed; convert it again.");
                }
                alignment = (int)n.Value;
            }
            var infos = new List<(string Name, long[] Ne, GgufTensorType Type, long Offset)>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            for (long i = 0; i < tensorCount; i++)
            {
                reader.Context = $"tensor info {i} of {tensorCount}";
                string name = reader.String();
                reader.Context = $"tensor info '{name}'";
                uint nDims = reader.U32();
                if (nDims is 0 or > MaxDimensions)
                {
                    throw new CheckpointFormatException(path, name, $"has {nDims} dimensions; GGUF allows 1 to {MaxDimensions}.", "The file is malformed; convert it again.");
                }
                var ne = new long[nDims];
                for (int d = 0; d < nDims; d++)
                {
                    ulong v = reader.U64();
                    if (v > int.MaxValue)
                    {
                        throw new CheckpointFormatException(path, name, $"dimension {d} is {v}, too large.", "The file is malformed; convert it again.");
                    }
                    ne[d] = (long)v;
                }
                var type = (GgufTensorType)reader.U32();
                long offset = (long)Math.Min(reader.U64(), long.MaxValue);
                if (!names.Add(name))
                {
                    throw new CheckpointFormatException(path, name, "appears twice in the tensor infos.", "The file is malformed; convert it again.");
                }
                infos.Add((name, ne, type, offset));
            }
            long dataOffset = AlignUp(reader.Position, alignment);
            var tensors = new List<GgufTensorInfo>(infos.Count);
            foreach (var (name, ne, type, offset) in infos)
            {
                if (!GgufTensorTypes.IsSupported(type))
                {
                    throw new CheckpointFormatException(path, name, $"has type {GgufTensorTypes.Name(type)}, which this runtime does not read; supported: {string.Join(", ", GgufTensorTypes.Supported)}.",
                        "Re-quantize or convert the model to one of the supported types (llama-quantize … Q8_0, Q4_0, Q4_K_M or F16).");
                }
                int blockSize = GgufTensorTypes.BlockSize(type);
                if (ne[0] % blockSize != 0)
                {
                    throw new CheckpointFormatException(path, name, $"has {ne[0]} elements per row, not a multiple of the {blockSize}-element blocks of {type}.", "The file is malformed; convert it again.");
                }
                if (offset % alignment != 0)
                {
                    throw new CheckpointFormatException(path, name, $"data offset {offset} is not a multiple of the alignment {alignment}.", "The file is malformed (misaligned tensor data); convert it again.");
                }
                long elements = ne.Aggregate(1L, (p, d) => checked(p * d));
                long bytes = checked(elements / blockSize * GgufTensorTypes.BlockBytes(type));
                long start = checked(dataOffset + offset);
                if (start > length || bytes > length - start)
                {
                    throw new CheckpointFormatException(path, name, $"needs bytes [{start}, {start + bytes}) but the file is {length} bytes (truncated tensor data).", "Download or copy the complete file again.");
                }
                tensors.Add(new GgufTensorInfo(name, ne, type, offset, start, bytes));
            }
            CheckNoOverlap(path, tensors);
            return new GgufFile(path, file, version, metadata, tensors, alignment, dataOffset);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Reads tensor <paramref name="tensor"/> widened to float32 into <paramref name="destination"/> (its element count).</summary>
    public void ReadFloat32(GgufTensorInfo tensor, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        GgufTensorReader.ReadFloat32(_file, Path, tensor.Name, tensor.Type, tensor.FileOffset, tensor.ByteLength, destination);
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _file.Dispose();

    internal static long AlignUp(long value, long alignment) => (value + alignment - 1) / alignment * alignment;

    private static void CheckNoOverlap(string path, List<GgufTensorInfo> tensors)
    {
        GgufTensorInfo? previous = null;
        foreach (var t in tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.FileOffset))
        {
            if (previous is not null && t.FileOffset < previous.FileOffset + previous.ByteLength)
            {
                throw new CheckpointFormatException(path, t.Name, $"data at offset {t.DataOffset} overlaps tensor '{previous.Name}' (offset {previous.DataOffset}, {previous.ByteLength} bytes).", "The file is malformed; convert it again.");
            }
            previous = t;
        }
    }

    private static GgufValue ReadValue(GgufHeaderReader r, GgufValueType type, int depth) => type switch
    {
        GgufValueType.UInt8 => new(type, r.U8()),
        GgufValueType.Int8 => new(type, (sbyte)r.U8()),
        GgufValueType.UInt16 => new(type, r.U16()),
        GgufValueType.Int16 => new(type, (short)r.U16()),
        GgufValueType.UInt32 => new(type, r.U32()),
        GgufValueType.Int32 => new(type, (int)r.U32()),
        GgufValueType.Float32 => new(type, r.F32()),
        GgufValueType.Bool => new(type, ReadBool(r)),
        GgufValueType.String => new(type, r.String()),
        GgufValueType.UInt64 => new(type, r.U64()),
        GgufValueType.Int64 => new(type, (long)r.U64()),
        GgufValueType.Float64 => new(type, r.F64()),
        GgufValueType.Array => new(type, ReadArray(r, depth)),
        _ => throw r.Malformed($"value type {(uint)type} is not a GGUF type (0–12)."),
    };

    private static bool ReadBool(GgufHeaderReader r)
    {
        byte b = r.U8();
        return b <= 1 ? b == 1 : throw r.Malformed($"a bool is {b}, not 0 or 1.");
    }

    private static GgufArray ReadArray(GgufHeaderReader r, int depth)
    {
        if (depth >= MaxArrayNesting)
        {
            throw r.Malformed($"arrays are nested more than {MaxArrayNesting} deep.");
        }
        var elementType = (GgufValueType)r.U32();
        long minBytes = elementType switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
            GgufValueType.Array => 12,
            _ => throw r.Malformed($"array element type {(uint)elementType} is not a GGUF type (0–12)."),
        };
        int count = (int)Math.Min(r.Count("an array length", minBytes), int.MaxValue);
        Array values = elementType switch
        {
            GgufValueType.UInt8 => Fill(new byte[count], _ => r.U8()),
            GgufValueType.Int8 => Fill(new sbyte[count], _ => (sbyte)r.U8()),
            GgufValueType.UInt16 => Fill(new ushort[count], _ => r.U16()),
            GgufValueType.Int16 => Fill(new short[count], _ => (short)r.U16()),
            GgufValueType.UInt32 => Fill(new uint[count], _ => r.U32()),
            GgufValueType.Int32 => Fill(new int[count], _ => (int)r.U32()),
            GgufValueType.Float32 => Fill(new float[count], _ => r.F32()),
            GgufValueType.Bool => Fill(new bool[count], _ => ReadBool(r)),
            GgufValueType.String => Fill(new string[count], _ => r.String()),
            GgufValueType.UInt64 => Fill(new ulong[count], _ => r.U64()),
            GgufValueType.Int64 => Fill(new long[count], _ => (long)r.U64()),
            GgufValueType.Float64 => Fill(new double[count], _ => r.F64()),
            _ => Fill(new GgufArray[count], _ => ReadArray(r, depth + 1)),
        };
        return new GgufArray(elementType, values);
    }

    private static T[] Fill<T>(T[] array, Func<int, T> read)
    {
        for (int i = 0; i < array.Length; i++)
        {
            array[i] = read(i);
        }
        return array;
    }
}
