using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// llama.cpp's block_q8_0 in meaning: 32 weights d·q with an f16 d and q an int8, 8.5 bits a weight.
/// In the quant plane of <see cref="BlockMatrix{TFormat}"/> a block's q are its 32 bytes as stored.
/// </summary>
internal readonly unsafe struct Q8_0Format : IBlockFormat
{
    public static ElementType Type => ElementType.Q8_0;

    public static int QuantBytes => BlockMatrix.BlockSize;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Load(byte* quants) => Vector256.Load((sbyte*)quants);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Quant(byte* quants, int i) => ((sbyte*)quants)[i];

    public static bool OffsetBy8 => false;

    /// <summary>Never called: q is stored signed.</summary>
    public static Vector256<byte> LoadOffset(byte* quants) => throw new NotSupportedException("Q8_0 quants are signed; use Load.");
}
