using AscendCC.Device.Kernels;

namespace AscendCC.Device;

/// <summary>
/// The device's in-HBM form of block-quantized (Q8_0, Q4_0, Q4_K) weight matrices, for whoever prepares
/// weights for it — the model provider's tooling, the runtime loading a checkpoint — as an NPU
/// vendor's SDK converts tensors to the device's native formats. The kernels read only this form; its
/// definition (strips of eight rows laid out for int8 dot products, a scale plane) is on the
/// device's <c>Kernels/MatMul/BlockMatrix.cs</c>. Sizes equal GGUF's (Q4_K's are a quarter bit a weight larger), and the conversion is exact.
/// </summary>
public static unsafe class QuantizedWeightLayout
{
    /// <summary>GGUF bytes of one Q8_0 block: an f16 d and 32 int8 q.</summary>
    public const int Q8_0BlockBytes = 34;

    /// <summary>GGUF bytes of one Q4_0 block: an f16 d and 16 bytes of nibbles.</summary>
    public const int Q4_0BlockBytes = 18;

    /// <summary>A [rows, cols] matrix of GGUF Q8_0 blocks (row-major, cols/32 blocks a row) in the device's form.</summary>
    /// <exception cref="ArgumentException">cols is not a multiple of 32, or <paramref name="blocks"/> is not rows·cols/32 blocks.</exception>
    public static byte[] Q8_0FromGguf(ReadOnlySpan<byte> blocks, long rows, long cols) => FromGguf<Q8_0Format>(blocks, rows, cols, Q8_0BlockBytes);

    /// <summary>A [rows, cols] matrix of GGUF Q4_0 blocks (row-major, cols/32 blocks a row) in the device's form.</summary>
    /// <exception cref="ArgumentException">cols is not a multiple of 32, or <paramref name="blocks"/> is not rows·cols/32 blocks.</exception>
    public static byte[] Q4_0FromGguf(ReadOnlySpan<byte> blocks, long rows, long cols) => FromGguf<Q4_0Format>(blocks, rows, cols, Q4_0BlockBytes);

    /// <summary>GGUF bytes of one Q4_K super-block of 256: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles.</summary>
    public const int Q4_KBlockBytes = Q4_KMatrix.GgufBlockBytes;

    /// <summary>
    /// A [rows, cols] matrix of GGUF Q4_K super-blocks (row-major, cols/256 a row) in the device's form:
    /// the values exactly, in strips of eight rows (the last padded) with the scales and mins unpacked
    /// per strip (4.75 bits a weight; see the device's <c>Kernels/MatMul/Q4_KFormat.cs</c>).
    /// </summary>
    /// <exception cref="ArgumentException">cols is not a multiple of 256, or <paramref name="blocks"/> is not rows·cols/256 super-blocks.</exception>
    public static byte[] Q4_KFromGguf(ReadOnlySpan<byte> blocks, long rows, long cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        Q4_KMatrix.RequireWholeSuperBlocks(cols, "a Q4_K matrix");
        long expected = rows * (cols / Q4_KMatrix.SuperBlockSize) * Q4_KBlockBytes;
        if (blocks.Length != expected)
        {
            throw new ArgumentException(
                $"a [{rows}, {cols}] Q4_K matrix is {expected} bytes of GGUF super-blocks ({Q4_KBlockBytes} a super-block of 256), but {blocks.Length} were given; pass the tensor's whole data.",
                nameof(blocks));
        }
        byte[] device = new byte[checked((int)Q4_KMatrix.Bytes(rows, cols))];
        fixed (byte* source = blocks, destination = device)
        {
            Q4_KMatrix.FromGgufBlocks(source, rows, cols, destination);
        }
        return device;
    }

    /// <summary>Rows per panel of <see cref="Q4_0PanelsFromQ4_0"/>'s and <see cref="Q4_KPanelsFromQ4_K"/>'s forms; a matrix in panels has a whole number of them.</summary>
    public const int PanelRows = BlockMatrix.PanelRows;

    /// <summary>The element-type code (the linear launches' dtype scalar) of a Q4_0 matrix in panels.</summary>
    public const int Q4_0PanelsElementTypeCode = (int)ElementType.Q4_0Panels;

    /// <summary>The element-type code of a Q4_K matrix in panels.</summary>
    public const int Q4_KPanelsElementTypeCode = (int)ElementType.Q4_KPanels;

    /// <summary>
    /// A Q4_0 matrix in the device's form (<see cref="Q4_0FromGguf"/>) with its strips of eight rows in
    /// pairs, panels of sixteen: a panel's block holds both strips' nibbles interleaved 32 bytes at a time,
    /// so a group of all sixteen rows is one 64-byte load and a panel one stream, and a block's sixteen
    /// scales side by side, which is what lets eight tokens share each weight read (see the device's
    /// <c>Kernels/MatMul/Q4Panels.cs</c>). Same size, same values; only the order of the bytes moves.
    /// </summary>
    /// <exception cref="ArgumentException">rows is not a multiple of <see cref="PanelRows"/>, cols not of 32, or <paramref name="matrix"/> is not the [rows, cols] matrix's size.</exception>
    public static byte[] Q4_0PanelsFromQ4_0(ReadOnlySpan<byte> matrix, long rows, long cols) => ToPanels(ElementType.Q4_0, ElementType.Q4_0Panels, matrix, rows, cols);

    /// <summary>
    /// A Q4_K matrix in the device's form (<see cref="Q4_KFromGguf"/>) in panels of sixteen rows, as
    /// <see cref="Q4_0PanelsFromQ4_0"/> makes Q4_0's, each panel's two super-block records merged into one
    /// of sixteen lanes. Same size, same values.
    /// </summary>
    /// <exception cref="ArgumentException">rows is not a multiple of <see cref="PanelRows"/>, cols not of 256, or <paramref name="matrix"/> is not the [rows, cols] matrix's size.</exception>
    public static byte[] Q4_KPanelsFromQ4_K(ReadOnlySpan<byte> matrix, long rows, long cols) => ToPanels(ElementType.Q4_K, ElementType.Q4_KPanels, matrix, rows, cols);

    private static byte[] ToPanels(ElementType stripType, ElementType panelType, ReadOnlySpan<byte> matrix, long rows, long cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        long bytes = ElementTypes.MatrixBytes(panelType, rows, cols);
        if (matrix.Length != bytes)
        {
            throw new ArgumentException($"a [{rows}, {cols}] {stripType} matrix is {bytes} bytes in the device's form, but {matrix.Length} were given; pass the whole matrix.", nameof(matrix));
        }
        byte[] panels = new byte[bytes];
        fixed (byte* source = matrix, destination = panels)
        {
            Q4Panels.FromStrips(stripType, source, bytes, rows, cols, destination);
        }
        return panels;
    }

    /// <summary>Bytes of a [rows, cols] Q4_K matrix in the device's form (see <see cref="Q4_KFromGguf"/>).</summary>
    /// <exception cref="ArgumentException">cols is not a multiple of 256.</exception>
    public static long Q4_KMatrixBytes(long rows, long cols) => Q4_KMatrix.Bytes(rows, cols);

    private static byte[] FromGguf<TF>(ReadOnlySpan<byte> blocks, long rows, long cols, int blockBytes) where TF : struct, IBlockFormat
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        BlockMatrix.RequireWholeBlocks(cols, $"a {TF.Type} matrix");
        long expected = rows * (cols / BlockMatrix.BlockSize) * blockBytes;
        if (blocks.Length != expected)
        {
            throw new ArgumentException(
                $"a [{rows}, {cols}] {TF.Type} matrix is {expected} bytes of GGUF blocks ({blockBytes} a block of 32), but {blocks.Length} were given; pass the tensor's whole data.",
                nameof(blocks));
        }
        byte[] device = new byte[checked((int)BlockMatrix<TF>.Bytes(rows, cols))];
        fixed (byte* source = blocks, destination = device)
        {
            BlockMatrix<TF>.FromGgufBlocks(source, rows, cols, destination);
        }
        return device;
    }
}
