using System.Runtime.CompilerServices;

namespace AscendCC.Device.Kernels;

/// <summary>Element types the AI Cores read. Activations are always F32; weights may be half precision or block-quantized (Q8_0, Q4_0, Q4_K).</summary>
internal enum ElementType : byte
{
    /// <summary>IEEE-754 binary32.</summary>
    F32 = 0,
    /// <summary>IEEE-754 binary16.</summary>
    F16 = 1,
    /// <summary>bfloat16: the upper 16 bits of a binary32.</summary>
    BF16 = 2,
    /// <summary>
    /// llama.cpp's block_q8_0 in meaning (blocks of 32 weights along a row, w = d·q with an f16 d and
    /// int8 q), stored as a quant plane in strips of eight rows and a scale plane: see <see cref="BlockMatrix{TFormat}"/>. Matrices only, rows a whole number of blocks.
    /// </summary>
    Q8_0 = 3,
    /// <summary>llama.cpp's block_q4_0 in meaning (w = d·(n − 8), n a 4-bit nibble), in the same layout (<see cref="Q4_0Format"/>).</summary>
    Q4_0 = 4,
    /// <summary>
    /// llama.cpp's block_q4_K in meaning (super-blocks of 256: w = d·sc·q − dmin·m with 6-bit sc and m
    /// per block of 32), in strips of eight rows with per-strip super-block records (<see cref="Q4_KMatrix"/>).
    /// Rows must be whole super-blocks of 256.
    /// </summary>
    Q4_K = 5,
    /// <summary>
    /// bfloat16 matrices in panels of <see cref="PanelGemv.PanelRows"/> rows, each panel column-major
    /// ([rows/32][cols][32]): input position i of a panel's 32 rows is 64 contiguous bytes. Eight
    /// tokens multiply a panel with broadcast activations into 32-row output vectors
    /// (<see cref="PanelGemv"/>: no horizontal sums, one sequential stream a core), and it is the
    /// GEMM's packed B in bf16. Matrices only, whole panels of rows; what batched programs keep their
    /// bf16 layer matrices in.
    /// </summary>
    BF16Panels = 6,
    /// <summary>
    /// <see cref="Q4_0"/> with its strips in pairs, panels of sixteen rows (<see cref="Q4Panels"/>): a group of
    /// all sixteen rows is one 64-byte load and a panel one stream, which is how eight tokens share a read.
    /// Matrices only, whole panels of rows; what batched programs keep their Q4_0 layer matrices in.
    /// </summary>
    Q4_0Panels = 7,
    /// <summary>
    /// <see cref="Q4_K"/> in panels of sixteen rows (<see cref="Q4_KPanelFormat"/>): the nibbles paired as
    /// <see cref="Q4_0Panels"/> pairs them, each panel's super-block records merged into one of sixteen lanes.
    /// </summary>
    Q4_KPanels = 8,
    /// <summary>
    /// A KV cache row in blocks of 32 values, each 32 int8 q followed by the block's f32 scale d (36 bytes;
    /// x ≈ d·q with d = max|x|/127, llama.cpp's q8_0 rule with the scale kept in f32). KV caches only, rows
    /// (head_dim) a whole number of blocks: 1.125 bytes a value where f16 takes 2.
    /// </summary>
    Q8_0Rows = 9,
    /// <summary>
    /// A KV cache row in blocks of 32 values, each 16 bytes of nibbles — value j in byte j's low nibble,
    /// value 16 + j in its high one, as block_q4_0 — followed by the block's f32 scale d (20 bytes; x ≈ d·(n − 8)
    /// with d = −max/8 for the value of largest magnitude, llama.cpp's q4_0 rule with the scale kept in f32).
    /// KV caches only, rows a whole number of blocks: 0.625 bytes a value where f16 takes 2.
    /// </summary>
    Q4_0Rows = 10,
}

/// <summary>Scalar conversions; vectorised forms live beside the kernels that need them.</summary>
internal static class ElementTypes
{
    /// <summary>Bytes per element of the per-element types; the block formats have none (see <see cref="MatrixBytes"/>).</summary>
    public static int SizeOf(ElementType type) => type switch
    {
        ElementType.F32 => 4,
        ElementType.F16 or ElementType.BF16 => 2,
        ElementType.BF16Panels => throw new ArgumentOutOfRangeException(nameof(type), type, "BF16Panels is a matrix layout (panels of 32 rows, column-major inside), not rows of elements; size the matrix with ElementTypes.MatrixBytes."),
        ElementType.Q4_0Panels or ElementType.Q4_KPanels => throw new ArgumentOutOfRangeException(nameof(type), type, $"{type} is a matrix layout (4-bit blocks in panels of 16 rows), not rows of elements; keep tables in Q4_0 or Q4_K and size matrices with ElementTypes.MatrixBytes."),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, $"{type} is stored in blocks of 32 with a scale each; size the matrix with ElementTypes.MatrixBytes."),
    };

    /// <summary>
    /// Bytes of a row-major [rows, cols] matrix of <paramref name="type"/>. A block-quantized matrix whose
    /// rows are not whole blocks of 32 has no size: that is refused here, naming the width.
    /// </summary>
    public static long MatrixBytes(ElementType type, long rows, long cols) => type switch
    {
        ElementType.Q8_0 => BlockMatrix<Q8_0Format>.Bytes(rows, cols),
        ElementType.Q4_0 => BlockMatrix<Q4_0Format>.Bytes(rows, cols),
        ElementType.Q4_K => Q4_KMatrix.Bytes(rows, cols),
        ElementType.Q4_0Panels => PanelBytes(BlockMatrix<Q4_0Format>.Bytes(rows, cols), rows, type),
        ElementType.Q4_KPanels => PanelBytes(Q4_KMatrix.Bytes(rows, cols), rows, type),
        ElementType.BF16Panels => PanelGemv.Bytes(rows, cols),
        _ => rows * cols * SizeOf(type),
    };

    /// <summary>True for the llama.cpp block formats (and their panel forms), which the quantized kernels multiply in int8.</summary>
    public static bool IsBlockQuantized(ElementType type) => type is ElementType.Q8_0 or ElementType.Q4_0 or ElementType.Q4_K or ElementType.Q4_0Panels or ElementType.Q4_KPanels;

    /// <summary>True for Q4_K and its panel form, whose rows must be whole super-blocks of 256.</summary>
    public static bool IsQ4_K(ElementType type) => type is ElementType.Q4_K or ElementType.Q4_KPanels;

    /// <summary>A panel form's size is its strip form's; its rows must be whole panels.</summary>
    private static long PanelBytes(long stripBytes, long rows, ElementType type)
    {
        Q4Panels.RequireWholePanels(rows, $"a {type} matrix");
        return stripBytes;
    }

    /// <summary>bf16 bits to float: exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>float to bf16 bits, round to nearest even (NaN stays NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToBF16(float value) => HalfRounding.BF16(BitConverter.SingleToUInt32Bits(value));

    /// <summary>fp16 bits to float: exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F16ToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>float to fp16 bits, round to nearest even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToF16(float value) => BitConverter.HalfToUInt16Bits((Half)value);
}
