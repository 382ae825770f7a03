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
    /// <summary>Blocks of 32 with scale and minimum (not read).</summary>
    Q4_1 = 3,
    /// <summary>5-bit blocks (not read).</summary>
    Q5_0 = 6,
    /// <summary>5-bit blocks with minimum (not read).</summary>
    Q5_1 = 7,
    /// <summary>Blocks of 32: f16 scale d, 32 int8 q; value q·d.</summary>
    Q8_0 = 8,
    /// <summary>8-bit blocks with sum (not read).</summary>
    Q8_1 = 9,
    /// <summary>2-bit K-quant (not read).</summary>
    Q2_K = 10,
    /// <summary>3-bit K-quant (not read).</summary>
    Q3_K = 11,
    /// <summary>4-bit K-quant, super-blocks of 256.</summary>
    Q4_K = 12,
    /// <summary>5-bit K-quant, super-blocks of 256 (Q4_K's scales and mins, a fifth bit per weight).</summary>
    Q5_K = 13,
    /// <summary>6-bit K-quant, super-blocks of 256.</summary>
    Q6_K = 14,
    /// <summary>8-bit K-quant (not read).</summary>
    Q8_K = 15,
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
    /// <summary>bfloat16.</summary>
    BF16 = 30,
}

/// <summary>Block geometry of <see cref="GgufTensorType"/>s and which of them this runtime reads.</summary>
public static class GgufTensorTypes
{
    /// <summary>Bytes of one Q8_0 block: an f16 scale and 32 int8.</summary>
    public const int Q8_0BlockBytes = 2 + 32;

    /// <summary>Bytes of one Q4_0 block: an f16 scale and 16 bytes of nibbles.</summary>
    public const int Q4_0BlockBytes = 2 + 16;

    /// <summary>Bytes of one Q4_K super-block: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles.</summary>
    public const int Q4_KBlockBytes = 2 + 2 + 12 + 128;

    /// <summary>Bytes of one Q5_K super-block: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 32 bytes of fifth bits, 128 bytes of nibbles.</summary>
    public const int Q5_KBlockBytes = 2 + 2 + 12 + 32 + 128;

    /// <summary>Bytes of one Q6_K super-block: 128 bytes low nibbles, 64 bytes high bits, 16 int8 scales, f16 d.</summary>
    public const int Q6_KBlockBytes = 128 + 64 + 16 + 2;

    /// <summary>The types <see cref="GgufFile"/> reads (dequantizing the quantized ones to float32).</summary>
    public static IReadOnlyList<GgufTensorType> Supported { get; } =
        [GgufTensorType.F32, GgufTensorType.F16, GgufTensorType.BF16, GgufTensorType.Q8_0, GgufTensorType.Q4_0, GgufTensorType.Q4_K, GgufTensorType.Q5_K, GgufTensorType.Q6_K];

    /// <summary>True when this runtime reads tensors of <paramref name="type"/>.</summary>
    public static bool IsSupported(GgufTensorType type) => Supported.Contains(type);

    /// <summary>Elements per block (1 for plain types).</summary>
    public static int BlockSize(GgufTensorType type) => type switch
    {
        GgufTensorType.F32 or GgufTensorType.F16 or GgufTensorType.BF16 => 1,
        GgufTensorType.Q8_0 or GgufTensorType.Q4_0 => 32,
        GgufTensorType.Q4_K or GgufTensorType.Q5_K or GgufTensorType.Q6_K => 256,
        _ => throw Unsupported(type),
    };

    /// <summary>Bytes per block.</summary>
    public static int BlockBytes(GgufTensorType type) => type switch
    {
        GgufTensorType.F32 => 4,
        GgufTensorType.F16 or GgufTensorType.BF16 => 2,
        GgufTensorType.Q8_0 => Q8_0BlockBytes,
        GgufTensorType.Q4_0 => Q4_0BlockBytes,
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
