namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// A GGUF tensor's element type (ggml_type; the numbers are the file's). Only some are read, see
/// <see cref="GgufTensorTypes.IsSupported"/>; the others are named so errors can say what a file holds.
/// </summary>
public enum GgufTensorType : uint
{
    /// <summary>IEEE-754 binary32.</summary>
    F32 = 0,
    /// <summary>IEEE-754 binary16.</summary>
    F16 = 1,
    /// <summary>Blocks of 32: f16 scale d, 16 bytes of 4-bit q; value (q − 8)·d.</summary>
    Q4_0 = 2,
    /// <summary>Blocks of 32: f16 scale d, f16 minimum m, 16 bytes of 4-bit q; value q·d + m.</summary>
    Q4_1 = 3,
    /// <summary>Blocks of 32: f16 scale d, 32 fifth bits, 16 bytes of 4-bit q; value (q − 16)·d.</summary>
    Q5_0 = 6,
    /// <summary>Blocks of 32: f16 scale d, f16 minimum m, 32 fifth bits, 16 bytes of 4-bit q; value q·d + m.</summary>
    Q5_1 = 7,
    /// <summary>Blocks of 32: f16 scale d, 32 int8 q; value q·d.</summary>
    Q8_0 = 8,
    /// <summary>8-bit blocks with sum (not read).</summary>
    Q8_1 = 9,
    /// <summary>2-bit K-quant, super-blocks of 256: a 4-bit scale and min per 16 weights, f16 d and dmin.</summary>
    Q2_K = 10,
    /// <summary>3-bit K-quant, super-blocks of 256: a 6-bit signed scale per 16 weights, f16 d.</summary>
    Q3_K = 11,
    /// <summary>4-bit K-quant, super-blocks of 256.</summary>
    Q4_K = 12,
    /// <summary>5-bit K-quant, super-blocks of 256 (Q4_K's scales and mins, a fifth bit per weight).</summary>
    Q5_K = 13,
    /// <summary>6-bit K-quant, super-blocks of 256.</summary>
    Q6_K = 14,
    /// <summary>8-bit K-quant (llama.cpp's activation type; not read).</summary>
    Q8_K = 15,
    /// <summary>2-bit importance-matrix quant on an E8 lattice grid (not read).</summary>
    IQ2_XXS = 16,
    /// <summary>2.3-bit importance-matrix quant (not read).</summary>
    IQ2_XS = 17,
    /// <summary>3-bit importance-matrix quant (not read).</summary>
    IQ3_XXS = 18,
    /// <summary>1.5-bit importance-matrix quant (not read).</summary>
    IQ1_S = 19,
    /// <summary>Blocks of 32: f16 scale d, 16 bytes of 4-bit indices into a fixed non-linear table of 16 levels.</summary>
    IQ4_NL = 20,
    /// <summary>3.4-bit importance-matrix quant (not read).</summary>
    IQ3_S = 21,
    /// <summary>2.5-bit importance-matrix quant (not read).</summary>
    IQ2_S = 22,
    /// <summary>IQ4_NL's levels in super-blocks of 256: f16 d and a 6-bit scale per 32 weights.</summary>
    IQ4_XS = 23,
    /// <summary>Signed 8-bit integer.</summary>
    I8 = 24,
    /// <summary>Signed 16-bit integer.</summary>
    I16 = 25,
    /// <summary>Signed 32-bit integer.</summary>
    I32 = 26,
    /// <summary>Signed 64-bit integer.</summary>
    I64 = 27,
    /// <summary>IEEE-754 binary64.</summary>
    F64 = 28,
    /// <summary>1.75-bit importance-matrix quant (not read).</summary>
    IQ1_M = 29,
    /// <summary>bfloat16.</summary>
    BF16 = 30,
    /// <summary>Ternary 1.69-bit quant (not read).</summary>
    TQ1_0 = 34,
    /// <summary>Ternary 2-bit quant (not read).</summary>
    TQ2_0 = 35,
    /// <summary>OCP microscaling FP4 (not read).</summary>
    MXFP4 = 39,
}

/// <summary>Block geometry of <see cref="GgufTensorType"/>s and which of them this runtime reads.</summary>
public static class GgufTensorTypes
{
    /// <summary>Bytes of one Q8_0 block: an f16 scale and 32 int8.</summary>
    public const int Q8_0BlockBytes = 2 + 32;

    /// <summary>Bytes of one Q4_0 block: an f16 scale and 16 bytes of nibbles.</summary>
    public const int Q4_0BlockBytes = 2 + 16;

    /// <summary>Bytes of one Q4_1 block: f16 d, f16 m, 16 bytes of nibbles.</summary>
    public const int Q4_1BlockBytes = 2 + 2 + 16;

    /// <summary>Bytes of one Q5_0 block: f16 d, 4 bytes of fifth bits, 16 bytes of nibbles.</summary>
    public const int Q5_0BlockBytes = 2 + 4 + 16;

    /// <summary>Bytes of one Q5_1 block: f16 d, f16 m, 4 bytes of fifth bits, 16 bytes of nibbles.</summary>
    public const int Q5_1BlockBytes = 2 + 2 + 4 + 16;

    /// <summary>Bytes of one Q2_K super-block: 16 bytes of 4-bit scales and mins, 64 bytes of 2-bit q, f16 d, f16 dmin.</summary>
    public const int Q2_KBlockBytes = 16 + 64 + 2 + 2;

    /// <summary>Bytes of one Q3_K super-block: 32 bytes of high bits, 64 bytes of 2-bit q, 12 bytes of 6-bit scales, f16 d.</summary>
    public const int Q3_KBlockBytes = 32 + 64 + 12 + 2;

    /// <summary>Bytes of one IQ4_NL block: f16 d, 16 bytes of 4-bit indices.</summary>
    public const int IQ4_NLBlockBytes = 2 + 16;

    /// <summary>Bytes of one IQ4_XS super-block: f16 d, 16 bits of scales' high bits, 4 bytes of their low nibbles, 128 bytes of 4-bit indices.</summary>
    public const int IQ4_XSBlockBytes = 2 + 2 + 4 + 128;

    /// <summary>Bytes of one Q4_K super-block: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles.</summary>
    public const int Q4_KBlockBytes = 2 + 2 + 12 + 128;

    /// <summary>Bytes of one Q5_K super-block: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 32 bytes of fifth bits, 128 bytes of nibbles.</summary>
    public const int Q5_KBlockBytes = 2 + 2 + 12 + 32 + 128;

    /// <summary>Bytes of one Q6_K super-block: 128 bytes low nibbles, 64 bytes high bits, 16 int8 scales, f16 d.</summary>
    public const int Q6_KBlockBytes = 128 + 64 + 16 + 2;

    /// <summary>The types <see cref="GgufFile"/> reads (dequantizing the quantized ones to float32).</summary>
    public static IReadOnlyList<GgufTensorType> Supported { get; } =
        [
            GgufTensorType.F32, GgufTensorType.F16, GgufTensorType.BF16, GgufTensorType.Q8_0, GgufTensorType.Q4_0, GgufTensorType.Q4_1,
            GgufTensorType.Q5_0, GgufTensorType.Q5_1, GgufTensorType.Q2_K, GgufTensorType.Q3_K, GgufTensorType.Q4_K, GgufTensorType.Q5_K,
            GgufTensorType.Q6_K, GgufTensorType.IQ4_NL, GgufTensorType.IQ4_XS,
        ];

    /// <summary>True when this runtime reads tensors of <paramref name="type"/>.</summary>
    public static bool IsSupported(GgufTensorType type) => Supported.Contains(type);

    /// <summary>Elements per block (1 for plain types).</summary>
    public static int BlockSize(GgufTensorType type) => type switch
    {
        GgufTensorType.F32 or GgufTensorType.F16 or GgufTensorType.BF16 => 1,
        GgufTensorType.Q8_0 or GgufTensorType.Q4_0 or GgufTensorType.Q4_1 or GgufTensorType.Q5_0 or GgufTensorType.Q5_1 or GgufTensorType.IQ4_NL => 32,
        GgufTensorType.Q2_K or GgufTensorType.Q3_K or GgufTensorType.Q4_K or GgufTensorType.Q5_K or GgufTensorType.Q6_K or GgufTensorType.IQ4_XS => 256,
        _ => throw Unsupported(type),
    };

    /// <summary>Bytes per block.</summary>
    public static int BlockBytes(GgufTensorType type) => type switch
    {
        GgufTensorType.F32 => 4,
        GgufTensorType.F16 or GgufTensorType.BF16 => 2,
        GgufTensorType.Q8_0 => Q8_0BlockBytes,
        GgufTensorType.Q4_0 => Q4_0BlockBytes,
        GgufTensorType.Q4_1 => Q4_1BlockBytes,
        GgufTensorType.Q5_0 => Q5_0BlockBytes,
        GgufTensorType.Q5_1 => Q5_1BlockBytes,
        GgufTensorType.Q2_K => Q2_KBlockBytes,
        GgufTensorType.Q3_K => Q3_KBlockBytes,
        GgufTensorType.IQ4_NL => IQ4_NLBlockBytes,
        GgufTensorType.IQ4_XS => IQ4_XSBlockBytes,
        GgufTensorType.Q4_K => Q4_KBlockBytes,
        GgufTensorType.Q5_K => Q5_KBlockBytes,
        GgufTensorType.Q6_K => Q6_KBlockBytes,
        _ => throw Unsupported(type),
    };

    /// <summary>True for block-quantized types, which are dequantized to float32 when read.</summary>
    public static bool IsQuantized(GgufTensorType type) => BlockSize(type) > 1;

    /// <summary>The ggml spelling ("Q8_0", "F16"…) of a type, or its number when unnamed.</summary>
    public static string Name(GgufTensorType type) => Enum.IsDefined(type) ? type.ToString() : $"type {(uint)type}";

    private static ArgumentOutOfRangeException Unsupported(GgufTensorType type) =>
        new(nameof(type), type, $"GGUF tensor type {Name(type)} is not read; supported: {string.Join(", ", Supported)}.");
}
