namespace AscendCC.Runtime.Inference;

/// <summary>
/// Element type of the KV cache in HBM. Keys and values are computed in f32 and rounded to nearest even
/// (or quantized) when written; attention widens them back to f32 as it reads them and accumulates in f32.
/// Decode reads the whole cache every token, so half precision halves what a long-context step streams
/// and Q8_0 nearly halves it again.
/// </summary>
public enum KvCachePrecision
{
    /// <summary>IEEE binary32: the keys and values exactly as computed.</summary>
    F32 = 0,
    /// <summary>IEEE binary16 (llama.cpp's default KV type): 11 significant bits, range ±65504.</summary>
    F16 = 1,
    /// <summary>bfloat16: 8 significant bits, f32's range.</summary>
    BF16 = 2,

    /// <summary>
    /// llama.cpp's q8_0 (its <c>--cache-type-k/-v q8_0</c>): blocks of 32 values along a head's row, each
    /// int8 with one scale max|x|/127 (kept in f32 here), 1.125 bytes a value. An error of up to half a
    /// step, max|x|/254, per value: greedy tokens may differ from F16's. The head dimension must be a
    /// multiple of 32.
    /// </summary>
    Q8_0 = 3,

    /// <summary>
    /// llama.cpp's q4_0 (its <c>--cache-type-k/-v q4_0</c>): blocks of 32 values along a head's row, each a
    /// 4-bit n with one scale d = −max/8 for the block's value of largest magnitude (kept in f32 here),
    /// x ≈ d·(n − 8), 0.625 bytes a value: a long context's cache in under a third of F16's memory. An error
    /// of up to half a step, max|x|/16, per value: greedy tokens leave F16's sooner than with
    /// <see cref="Q8_0"/>. The head dimension must be a multiple of 32.
    /// </summary>
    Q4_0 = 4,
}

/// <summary>What the device keeps a <see cref="KvCachePrecision"/> as.</summary>
internal static class KvCachePrecisions
{
    /// <summary>The device's element type code for the cache operators' kv_dtype (0 F32, 1 F16, 2 BF16, 9 Q8_0Rows, 10 Q4_0Rows).</summary>
    public static long DeviceCode(KvCachePrecision precision) => precision switch
    {
        KvCachePrecision.F32 => 0,
        KvCachePrecision.F16 => 1,
        KvCachePrecision.BF16 => 2,
        KvCachePrecision.Q8_0 => 9,
        KvCachePrecision.Q4_0 => 10,
        _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "not a KV cache precision"),
    };

    /// <summary>Bytes of one head's row of <paramref name="headDim"/> values, refusing a Q8_0 or Q4_0 row that is not whole blocks of 32.</summary>
    public static long RowBytes(KvCachePrecision precision, int headDim) => precision switch
    {
        KvCachePrecision.F32 => 4L * headDim,
        KvCachePrecision.F16 or KvCachePrecision.BF16 => 2L * headDim,
        KvCachePrecision.Q8_0 when headDim % 32 == 0 => headDim / 32 * 36L,
        KvCachePrecision.Q4_0 when headDim % 32 == 0 => headDim / 32 * 20L,
        KvCachePrecision.Q8_0 or KvCachePrecision.Q4_0 => throw new ArgumentException($"KvCachePrecision.{precision} keeps each head's row in whole blocks of 32 values; this model's head dimension is {headDim}. Use KvCachePrecision.F16 (--kv-cache f16).", nameof(precision)),
        _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, "not a KV cache precision"),
    };
}
