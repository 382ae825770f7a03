using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// llama.cpp's block_q4_0 in meaning: 32 weights d·(n − 8) with an f16 d and n a 4-bit unsigned
/// nibble, 4.5 bits a weight. In the quant plane of <see cref="BlockMatrix{TFormat}"/> a block's 16
/// bytes keep GGUF's order: byte j holds element j in its low nibble and element j + 16 in its high
/// one. That order is what makes the unpacking cheap: the low nibbles of one 16-byte load are
/// elements 0..15 and the high nibbles 16..31, the two halves of a 32-byte vector in element order.
/// </summary>
internal readonly unsafe struct Q4_0Format : IBlockFormat
{
    public static ElementType Type => ElementType.Q4_0;

    public static int QuantBytes => BlockMatrix.BlockSize / 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Load(byte* quants) => (LoadOffset(quants) - Vector256.Create((byte)8)).AsSByte();

    public static bool OffsetBy8 => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> LoadOffset(byte* quants)
    {
        Vector128<byte> packed = Vector128.Load(quants);
        Vector128<byte> nibble = Vector128.Create((byte)0x0F);
        return Vector256.Create(packed & nibble, Vector128.ShiftRightLogical(packed, 4) & nibble);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Quant(byte* quants, int i) => (i < 16 ? quants[i] & 0x0F : quants[i - 16] >> 4) - 8;
}
