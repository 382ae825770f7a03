namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// One tensor as a GGUF file describes it: its GGUF name, ggml dimensions (innermost first), type and
/// where its bytes are.
/// </summary>
/// <param name="Name">The GGUF name (<c>blk.0.attn_q.weight</c>…).</param>
/// <param name="Dimensions">ggml's ne: ne[0] is the innermost (contiguous) dimension.</param>
/// <param name="Type">Element type.</param>
/// <param name="DataOffset">Offset from the start of the data section, as stored.</param>
/// <param name="FileOffset">Absolute offset of the first byte in the file.</param>
/// <param name="ByteLength">Stored bytes.</param>
public sealed record GgufTensorInfo(string Name, IReadOnlyList<long> Dimensions, GgufTensorType Type, long DataOffset, long FileOffset, long ByteLength)
{
    /// <summary>The shape outermost first, as PyTorch and safetensors write it (ne reversed).</summary>
    public long[] Shape => Dimensions.Reverse().ToArray();

    /// <summary>Number of elements.</summary>
    public long ElementCount => Dimensions.Aggregate(1L, (a, d) => checked(a * d));
}
