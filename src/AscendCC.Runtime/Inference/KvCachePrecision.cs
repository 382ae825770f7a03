namespace AscendCC.Runtime.Inference;

/// <summary>
/// Element type of the KV cache in HBM. Keys and values are computed in f32 and rounded to nearest even
/// when written; attention widens them back to f32 as it reads them and accumulates in f32. Decode reads
/// the whole cache every token, so half precision halves what a long-context step streams.
/// </summary>
public enum KvCachePrecision
{
    /// <summary>IEEE binary32: the keys and values exactly as computed.</summary>
    F32 = 0,
    /// <summary>IEEE binary16 (llama.cpp's default KV type): 11 significant bits, range ±65504.</summary>
    F16 = 1,
    /// <summary>bfloat16: 8 significant bits, f32's range.</summary>
    BF16 = 2,
}
