using System.Runtime.InteropServices;
using AscendCC.Device.Kernels;

namespace AscendCC.Device;

/// <summary>
/// The device's panel form of bf16 weight matrices, for whoever prepares weights for it (the runtime
/// loading a checkpoint, the model provider's exporter), as <see cref="QuantizedWeightLayout"/> is for
/// the block formats: panels of <see cref="PanelRows"/> rows stored column by column, so input position i
/// of a panel's rows is 64 contiguous bytes. The batched GEMV multiplies up to eight tokens against a
/// panel with broadcast activations, and the GEMM packs its B straight from it (see the device's
/// <c>Kernels/MatMul/PanelGemv.cs</c>). The values are the bf16 matrix's, moved, not rounded again.
/// </summary>
public static class PanelWeightLayout
{
    /// <summary>Rows per panel; a matrix in panels has a whole number of them.</summary>
    public const int PanelRows = PanelGemv.PanelRows;

    /// <summary>The element-type code (the linear launches' dtype scalar) of a matrix in panels.</summary>
    public const int ElementTypeCode = (int)ElementType.BF16Panels;

    /// <summary>A row-major [rows, cols] bf16 matrix (little-endian bits) in panels.</summary>
    /// <exception cref="ArgumentException">rows is not a multiple of <see cref="PanelRows"/>, or <paramref name="rowMajor"/> is not rows·cols bf16 values.</exception>
    public static byte[] FromBF16Rows(ReadOnlySpan<byte> rowMajor, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        byte[] panels = new byte[PanelGemv.Bytes(rows, cols)];
        if (rowMajor.Length != panels.Length)
        {
            throw new ArgumentException($"a [{rows}, {cols}] bf16 matrix is {panels.Length} bytes, not {rowMajor.Length}", nameof(rowMajor));
        }
        PanelGemv.FromRows(MemoryMarshal.Cast<byte, ushort>(rowMajor), MemoryMarshal.Cast<byte, ushort>(panels.AsSpan()), rows, cols);
        return panels;
    }
}
