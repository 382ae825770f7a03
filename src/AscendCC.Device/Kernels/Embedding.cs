using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>Token embedding lookup: rows of a [vocab, dim] table, widened to float32 activations.</summary>
internal static class Embedding
{
    /// <summary>
    /// y[t, :] = table[ids[t], :] for each token. Every id is checked before anything is written, so a bad
    /// id leaves y untouched. Tables may be F32, F16 or BF16 (little-endian, row-major), or Q8_0, Q4_0 or Q4_K
    /// (<see cref="BlockMatrix{TFormat}"/>, <see cref="Q4_KMatrix"/>; rows widened as ggml dequantizes them) when the table is also a tied classifier.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void EmbeddingGather(ReadOnlySpan<byte> table, ElementType tableType, ReadOnlySpan<int> ids, Span<float> y, int vocab, int dim)
    {
        KernelArgs.RequireAtLeast(vocab, 1, nameof(vocab));
        KernelArgs.RequireAtLeast(dim, 1, nameof(dim));
        KernelArgs.RequireLength(table.Length, ElementTypes.MatrixBytes(tableType, vocab, dim), nameof(table));
        KernelArgs.RequireLength(y.Length, (long)ids.Length * dim, nameof(y));
        for (int t = 0; t < ids.Length; t++)
        {
            int id = ids[t];
            if ((uint)id >= (uint)vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id {id} at index {t} is outside [0, {vocab}).");
            }
        }
        if (tableType == ElementType.Q8_0)
        {
            GatherBlocks<Q8_0Format>(table, ids, y, vocab, dim);
            return;
        }
        if (tableType == ElementType.Q4_0)
        {
            GatherBlocks<Q4_0Format>(table, ids, y, vocab, dim);
            return;
        }
        if (tableType == ElementType.Q4_K)
        {
            GatherQ4_K(table, ids, y, vocab, dim);
            return;
        }
        int size = ElementTypes.SizeOf(tableType);
        for (int t = 0; t < ids.Length; t++)
        {
            var src = table.Slice(ids[t] * dim * size, dim * size);
            var dst = y.Slice(t * dim, dim);
            switch (tableType)
            {
                case ElementType.F32:
                    MemoryMarshal.Cast<byte, float>(src).CopyTo(dst);
                    break;
                case ElementType.BF16:
                    WidenBF16(MemoryMarshal.Cast<byte, ushort>(src), dst);
                    break;
                case ElementType.F16:
                    WidenF16(MemoryMarshal.Cast<byte, ushort>(src), dst);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(tableType), tableType, "Unsupported embedding table element type.");
            }
        }
    }

    private static unsafe void GatherBlocks<TF>(ReadOnlySpan<byte> table, ReadOnlySpan<int> ids, Span<float> y, int vocab, int dim) where TF : struct, IBlockFormat
    {
        fixed (byte* pt = table)
        fixed (float* py = y)
        {
            for (int t = 0; t < ids.Length; t++)
            {
                BlockMatrix<TF>.DequantizeRow(pt, vocab, dim, ids[t], py + ((nint)t * dim));
            }
        }
    }

    private static unsafe void GatherQ4_K(ReadOnlySpan<byte> table, ReadOnlySpan<int> ids, Span<float> y, int vocab, int dim)
    {
        fixed (byte* pt = table)
        fixed (float* py = y)
        {
            for (int t = 0; t < ids.Length; t++)
            {
                Q4_KMatrix.DequantizeRow(pt, vocab, dim, ids[t], py + ((nint)t * dim));
            }
        }
    }

    // bf16 is the top half of a binary32: widen to 32 bits and shift left by 16; exact.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WidenBF16(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        ref ushort s = ref MemoryMarshal.GetReference(src);
        ref uint d = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(dst));
        int n = src.Length;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<uint>.Count; i += Vector512<uint>.Count)
            {
                var wide = Vector512.WidenLower(Vector512.LoadUnsafe(ref s, (nuint)i).AsUInt16());
                (wide << 16).StoreUnsafe(ref d, (nuint)i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<uint>.Count; i += Vector256<uint>.Count)
            {
                var wide = Vector256.WidenLower(Vector256.LoadUnsafe(ref s, (nuint)i));
                (wide << 16).StoreUnsafe(ref d, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            Unsafe.Add(ref d, i) = (uint)Unsafe.Add(ref s, i) << 16;
        }
    }

    // An embedding gather moves seq × dim elements once per forward pass; the scalar Half
    // conversion (a hardware vcvtph2ps where available) is far from the bottleneck.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WidenF16(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        for (int i = 0; i < src.Length; i++)
        {
            dst[i] = ElementTypes.F16ToSingle(src[i]);
        }
    }
}
