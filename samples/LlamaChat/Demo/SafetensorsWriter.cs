using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace LlamaChat.Demo;

/// <summary>
/// Writes a .safetensors file: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the raw little-endian data. Only F32 is needed here.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/> (name, shape, row-major values) to <paramref name="path"/>, tensors sorted by name.</summary>
    public static void Write(string path, IEnumerable<(string Name, long[] Shape, float[] Values)> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var ordered = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, shape, values) in ordered)
        {
            if (shape.Aggregate(1L, (a, b) => a * b) != values.Length)
            {
                throw new ArgumentException($"tensor '{name}' has {values.Length} values but shape [{string.Join(", ", shape)}]");
            }
            long bytes = (long)values.Length * sizeof(float);
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        // The format asks for the data to start 8-byte aligned; readers accept trailing spaces in the header.
        int padded = (json.Length + 7) / 8 * 8;
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        file.Write(length);
        file.Write(json);
        for (int i = json.Length; i < padded; i++)
        {
            file.WriteByte((byte)' ');
        }
        byte[] buffer = [];
        foreach (var (_, _, values) in ordered)
        {
            if (buffer.Length < values.Length * sizeof(float))
            {
                buffer = new byte[values.Length * sizeof(float)];
            }
            for (int i = 0; i < values.Length; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(i * sizeof(float)), values[i]);
            }
            file.Write(buffer, 0, values.Length * sizeof(float));
        }
    }
}
