using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace AscendCC.Runtime.Models;

/// <summary>
/// A strictly validated, file-backed safetensors file: the header is parsed and checked when the
/// file is opened; tensor bytes are read from disk on demand.
/// </summary>
/// <remarks>
/// Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON (an object mapping tensor
/// names to {dtype, shape, data_offsets}, plus an optional "__metadata__" string map), then the
/// data section. Offsets are relative to the data section. Every check the reference
/// implementation makes is made here, because a malicious or damaged file must fail at open, not
/// produce garbage weights later.
/// </remarks>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>Largest accepted header; the reference implementation uses the same bound.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private readonly SafeFileHandle _file;
    private readonly Dictionary<string, CheckpointTensor> _tensors;

    private SafetensorsFile(string path, SafeFileHandle file, Dictionary<string, CheckpointTensor> tensors, Dictionary<string, string> metadata, long dataStart)
    {
        FilePath = path;
        _file = file;
        _tensors = tensors;
        Metadata = metadata;
        DataStart = dataStart;
        TensorNames = tensors.Values.OrderBy(t => t.FileOffset).Select(t => t.Name).ToArray();
    }

    /// <summary>Full path of the file.</summary>
    public string FilePath { get; }

    /// <summary>The "__metadata__" string map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Absolute offset of the data section (8 + header length).</summary>
    public long DataStart { get; }

    /// <summary>Tensor names in storage order.</summary>
    public IReadOnlyList<string> TensorNames { get; }

    /// <summary>All tensors by name.</summary>
    public IReadOnlyDictionary<string, CheckpointTensor> Tensors => _tensors;

    /// <summary>The named tensor; a <see cref="CheckpointFormatException"/> naming it when absent.</summary>
    public CheckpointTensor GetTensor(string name) =>
        _tensors.TryGetValue(name, out var t)
            ? t
            : throw new CheckpointFormatException(FilePath, name, "is not in this file.", "Check the tensor name, or that this is the right checkpoint (shard).");

    /// <summary>Opens and validates a safetensors file. Throws <see cref="CheckpointFormatException"/> for a malformed
    /// file and <see cref="NotSupportedException"/> for a dtype other than F32, F16 or BF16.</summary>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = Path.GetFullPath(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Safetensors file not found: {path}. Pass the path of a .safetensors file or of a Hugging Face model folder.", path);
        }
        var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            return Parse(path, file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static SafetensorsFile Parse(string path, SafeFileHandle file)
    {
        long fileLength = RandomAccess.GetLength(file);
        if (fileLength < 8)
        {
            throw new CheckpointFormatException(path, null, $"is {fileLength} bytes long, shorter than the 8-byte header length (truncated).", "Re-download or re-export the checkpoint.");
        }
        Span<byte> lengthBytes = stackalloc byte[8];
        ReadExactly(file, lengthBytes, 0);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > MaxHeaderBytes)
        {
            throw new CheckpointFormatException(path, null, $"declares a {headerLength}-byte JSON header, above the {MaxHeaderBytes}-byte limit.", "This is not a safetensors file or its header is corrupt; re-export it.");
        }
        if ((long)headerLength > fileLength - 8)
        {
            throw new CheckpointFormatException(path, null, $"declares a {headerLength}-byte JSON header but only {fileLength - 8} bytes follow the length (truncated or not safetensors).", "Re-download or re-export the checkpoint.");
        }
        var header = new byte[headerLength];
        ReadExactly(file, header, 8);
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;

        // JsonDocument defers UTF-8 checks of names to first access; check the whole header up front.
        if (!System.Text.Unicode.Utf8.IsValid(header))
        {
            throw new CheckpointFormatException(path, null, "the header is not valid UTF-8 JSON (invalid UTF-8 bytes).", "Re-export the checkpoint with a safetensors writer.");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, null, $"the header is not valid UTF-8 JSON ({e.Message}).", "Re-export the checkpoint with a safetensors writer.", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointFormatException(path, null, $"the header is a JSON {doc.RootElement.ValueKind}, not an object.", "Re-export the checkpoint with a safetensors writer.");
            }
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var entries = new List<(string Name, TensorDType DType, long[] Shape, long Begin, long End)>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                {
                    throw new CheckpointFormatException(path, property.Name, "appears more than once in the header.", "Re-export the checkpoint; each tensor name must be unique.");
                }
                if (property.Name == MetadataKey)
                {
                    ReadMetadata(path, property.Value, metadata);
                    continue;
                }
                entries.Add(ReadEntry(path, property.Name, property.Value));
            }

            var tensors = new Dictionary<string, CheckpointTensor>(StringComparer.Ordinal);
            long expectedBegin = 0;
            string? previous = null;
            foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
            {
                if (e.Begin < expectedBegin)
                {
                    throw new CheckpointFormatException(path, e.Name, $"data_offsets [{e.Begin}, {e.End}] overlap tensor '{previous}' (which ends at {expectedBegin}).", "Re-export the checkpoint; tensors must not share bytes.");
                }
                if (e.Begin > expectedBegin)
                {
                    throw new CheckpointFormatException(path, e.Name, $"data_offsets start at {e.Begin}, leaving a gap after byte {expectedBegin} of the data section.", "Re-export the checkpoint; the data section must be fully indexed.");
                }
                if (e.End > dataLength)
                {
                    throw new CheckpointFormatException(path, e.Name, $"data_offsets [{e.Begin}, {e.End}] run past the {dataLength}-byte data section (file truncated?).", "Re-download or re-export the checkpoint.");
                }
                var tensor = new CheckpointTensor(e.Name, e.DType, e.Shape, path, file, dataStart + e.Begin);
                if (tensor.ByteLength != e.End - e.Begin)
                {
                    throw new CheckpointFormatException(path, e.Name, $"shape [{string.Join(", ", e.Shape)}] of {e.DType} needs {tensor.ByteLength} bytes but data_offsets [{e.Begin}, {e.End}] span {e.End - e.Begin}.", "Re-export the checkpoint; shape, dtype and offsets disagree.");
                }
                tensors.Add(e.Name, tensor);
                expectedBegin = e.End;
                previous = e.Name;
            }
            if (expectedBegin != dataLength)
            {
                throw new CheckpointFormatException(path, null, $"the tensors index {expectedBegin} bytes of data but the data section holds {dataLength}.", "Re-export the checkpoint; trailing bytes are not allowed.");
            }
            return new SafetensorsFile(path, file, tensors, metadata, dataStart);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointFormatException(path, null, $"\"{MetadataKey}\" is a JSON {value.ValueKind}, not an object of strings.", "Re-export the checkpoint with a safetensors writer.");
        }
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
            {
                throw new CheckpointFormatException(path, null, $"\"{MetadataKey}\" entry '{m.Name}' is a JSON {m.Value.ValueKind}, not a string.", "Re-export the checkpoint with a safetensors writer.");
            }
            if (!metadata.TryAdd(m.Name, m.Value.GetString()!))
            {
                throw new CheckpointFormatException(path, null, $"\"{MetadataKey}\" entry '{m.Name}' appears more than once.", "Re-export the checkpoint with a safetensors writer.");
            }
        }
    }

    private static (string Name, TensorDType DType, long[] Shape, long Begin, long End) ReadEntry(string path, string name, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointFormatException(path, name, $"header entry is a JSON {value.ValueKind}, not an object with dtype, shape and data_offsets.", "Re-export the checkpoint with a safetensors writer.");
        }
        JsonElement dtypeElement = default, shapeElement = default, offsetsElement = default;
        int found = 0;
        foreach (var field in value.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype": dtypeElement = field.Value; found |= 1; break;
                case "shape": shapeElement = field.Value; found |= 2; break;
                case "data_offsets": offsetsElement = field.Value; found |= 4; break;
                default:
                    throw new CheckpointFormatException(path, name, $"header entry has an unknown field '{field.Name}'.", "Only dtype, shape and data_offsets are allowed; re-export the checkpoint.");
            }
        }
        if (found != 7)
        {
            string missing = string.Join(", ", new[] { (1, "dtype"), (2, "shape"), (4, "data_offsets") }.Where(f => (found & f.Item1) == 0).Select(f => f.Item2));
            throw new CheckpointFormatException(path, name, $"header entry lacks {missing}.", "Re-export the checkpoint with a safetensors writer.");
        }
        if (dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw new CheckpointFormatException(path, name, "dtype is not a string.", "Re-export the checkpoint with a safetensors writer.");
        }
        string dtypeName = dtypeElement.GetString()!;
        if (!TensorDTypes.TryParseSafetensorsName(dtypeName, out var dtype))
        {
            throw new NotSupportedException($"{path}: tensor '{name}': dtype '{dtypeName}' is not supported (supported: F32, F16, BF16). Convert the checkpoint to float32, float16 or bfloat16 before loading it.");
        }
        long[] shape = ReadNonNegativeIntegers(path, name, "shape", shapeElement);
        long[] offsets = ReadNonNegativeIntegers(path, name, "data_offsets", offsetsElement);
        if (offsets.Length != 2 || offsets[0] > offsets[1])
        {
            throw new CheckpointFormatException(path, name, $"data_offsets [{string.Join(", ", offsets)}] is not a [begin, end] pair with begin <= end.", "Re-export the checkpoint with a safetensors writer.");
        }
        try
        {
            long count = 1;
            foreach (long d in shape)
            {
                count = checked(count * d);
            }
            _ = checked(count * TensorDTypes.SizeOf(dtype));
        }
        catch (OverflowException e)
        {
            throw new CheckpointFormatException(path, name, $"shape [{string.Join(", ", shape)}] overflows a 64-bit size.", "Re-export the checkpoint; the shape is corrupt.", e);
        }
        return (name, dtype, shape, offsets[0], offsets[1]);
    }

    private static long[] ReadNonNegativeIntegers(string path, string name, string field, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            throw new CheckpointFormatException(path, name, $"{field} is a JSON {element.ValueKind}, not an array of integers.", "Re-export the checkpoint with a safetensors writer.");
        }
        var values = new long[element.GetArrayLength()];
        int i = 0;
        foreach (var item in element.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
            {
                throw new CheckpointFormatException(path, name, $"{field}[{i}] = {item.GetRawText()} is not a non-negative integer.", "Re-export the checkpoint with a safetensors writer.");
            }
            values[i++] = v;
        }
        return values;
    }

    private static void ReadExactly(SafeFileHandle file, Span<byte> destination, long offset)
    {
        while (!destination.IsEmpty)
        {
            int read = RandomAccess.Read(file, destination, offset);
            if (read == 0)
            {
                throw new EndOfStreamException("File ended early.");
            }
            destination = destination[read..];
            offset += read;
        }
    }

    /// <summary>Writes a safetensors file; used to produce checkpoints (and malformed ones in tests).</summary>
    /// <param name="path">Destination file.</param>
    /// <param name="tensors">Tensors in storage order: name, dtype, shape and raw little-endian bytes.</param>
    /// <param name="metadata">Optional "__metadata__" map.</param>
    public static void Write(string path, IEnumerable<(string Name, TensorDType DType, long[] Shape, byte[] Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        using var headerStream = new MemoryStream();
        using (var w = new Utf8JsonWriter(headerStream))
        {
            w.WriteStartObject();
            if (metadata is not null)
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata)
                {
                    w.WriteString(k, v);
                }
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, dtype, shape, data) in list)
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", TensorDTypes.ToSafetensorsName(dtype));
                w.WriteStartArray("shape");
                foreach (long d in shape)
                {
                    w.WriteNumberValue(d);
                }
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += data.Length;
            }
            w.WriteEndObject();
        }
        // The reference writer pads the header with spaces to 8 bytes so the data section is aligned.
        int pad = (int)((8 - headerStream.Length % 8) % 8);
        headerStream.Write(Encoding.ASCII.GetBytes(new string(' ', pad)));
        using var output = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)headerStream.Length);
        output.Write(len);
        headerStream.Position = 0;
        headerStream.CopyTo(output);
        foreach (var t in list)
        {
            output.Write(t.Data);
        }
    }

    /// <summary>Closes the file; tensors from it can no longer be read.</summary>
    public void Dispose() => _file.Dispose();
}
