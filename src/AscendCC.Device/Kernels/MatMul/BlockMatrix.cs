using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// A llama.cpp block format the device keeps weights in: blocks of 32 weights along a row, each an
/// f16 scale d and 32 small integers q, weight = d·q. The formats differ only in how q is packed.
/// </summary>
internal unsafe interface IBlockFormat
{
    /// <summary>The element type the launches name it by.</summary>
    static abstract ElementType Type { get; }

    /// <summary>Bytes of one block's q.</summary>
    static abstract int QuantBytes { get; }

    /// <summary>
    /// What the strip form stores on top of q, so that the unsigned × signed int8 products take it
    /// as it is: 128 (Q8_0's q + 128) or 8 (Q4_0's nibble n = q + 8). A block's products with x are
    /// then Σ (q + offset)·x, and start from −offset·Σx to come out exact.
    /// </summary>
    static abstract int Offset { get; }

    /// <summary>A row-form block's 32 q as int8, in element order (GGUF's bytes, as the tail rows keep them).</summary>
    static abstract Vector256<sbyte> Load(byte* quants);

    /// <summary>q of element <paramref name="i"/> (0..31) of a row-form block.</summary>
    static abstract int Quant(byte* quants, int i);

    /// <summary>
    /// Group <paramref name="g"/> (0..7) of a strip block as unsigned q + <see cref="Offset"/>: for row
    /// r = 0..7, elements 4g..4g+3 at bytes 4r..4r+3.
    /// </summary>
    static abstract Vector256<byte> StripGroup(byte* stripBlock, int g);

    /// <summary>q of element <paramref name="i"/> of row <paramref name="r"/> (0..7) of a strip block.</summary>
    static abstract int StripQuant(byte* stripBlock, int r, int i);

    /// <summary>Writes row <paramref name="r"/>'s block from its GGUF quants (QuantBytes, as a GGUF block stores them after d) into a strip block.</summary>
    static abstract void WriteStripRow(byte* stripBlock, int r, byte* ggufQuants);

    /// <summary>True when a block's weights are d·q − m (Q4_K's mins), so every block's product also takes −m·Σx.</summary>
    static abstract bool HasMins { get; }

    /// <summary>
    /// True when every row is in a strip, the last strip padded with zero rows (Q4_K); false when the
    /// last rows % 8 rows keep the row form (Q8_0, Q4_0, whose size is GGUF's).
    /// </summary>
    static abstract bool PadsToWholeStrips { get; }

    /// <summary>
    /// Bytes of the scale plane a strip block takes (its share of a Q4_K record): strip s's scales start
    /// s · blocks · this many bytes into the plane, and the plane is read front to back as one stream.
    /// </summary>
    static abstract int ScaleBytesPerBlock { get; }

    /// <summary>
    /// Whether the strip GEMV requests the scale plane's lines ahead of use itself (see
    /// <c>QuantizedLinear</c>'s <c>PrefetchScales</c>): measured per format, as it helps one and costs the others.
    /// </summary>
    static abstract bool PrefetchesScalePlane { get; }

    /// <summary>Where a [rows, cols] matrix's scales start.</summary>
    static abstract byte* ScalePlane(byte* matrix, long rows, long cols);

    /// <summary>The eight rows' scales of strip <paramref name="strip"/>'s block <paramref name="block"/> (rows of <paramref name="blocks"/> blocks), as f32.</summary>
    static abstract Vector256<float> StripScales(byte* plane, nint strip, int blocks, int block);

    /// <summary>As <see cref="StripScales"/> for the mins (only formats with <see cref="HasMins"/>).</summary>
    static abstract Vector256<float> StripMins(byte* plane, nint strip, int blocks, int block);

    /// <summary>Where strip <paramref name="strip"/>'s block <paramref name="block"/>'s scales start in the scale plane, in bytes.</summary>
    static abstract nint ScaleAt(nint strip, int blocks, int block);

    /// <summary>
    /// <see cref="StripScales"/> of strips <paramref name="strip"/> (lower lanes) and strip + 1, for the
    /// 4-bit formats read in pairs; a panel form keeps them side by side and widens them in one go.
    /// </summary>
    static abstract Vector512<float> StripScalesPair(byte* plane, nint strip, int blocks, int block);

    /// <summary>As <see cref="StripScalesPair"/> for the mins (only formats with <see cref="HasMins"/>).</summary>
    static abstract Vector512<float> StripMinsPair(byte* plane, nint strip, int blocks, int block);

    /// <summary>
    /// True for a panel form (<see cref="Q4_0PanelFormat"/>, <see cref="Q4_KPanelFormat"/>):
    /// the quant plane keeps strips in pairs, a panel of sixteen rows whose block b is the two strip blocks
    /// interleaved 32 bytes at a time (see <see cref="BlockMatrix{TFormat}.StripBlock"/>), so one 64-byte
    /// load is a group of all sixteen rows and a panel is one sequential stream; the scales pair the same
    /// way (<see cref="ScaleAt"/>, <see cref="StripScalesPair"/>; <see cref="Q4Panels"/>).
    /// </summary>
    static abstract bool InPanels { get; }

    /// <summary>
    /// Group <paramref name="g"/> of two strip blocks side by side in one 512-bit vector (<paramref name="first"/>'s
    /// eight rows in the lower half), for the 4-bit formats: <see cref="StripGroup"/> of each. A panel form
    /// reads it as one load from <paramref name="first"/>, the panel's block.
    /// </summary>
    static abstract Vector512<byte> StripGroupPair(byte* first, byte* second, int g);
}

/// <summary>
/// A block-quantized [rows, cols] matrix in HBM, as a quant plane and a scale plane:
/// <code>
/// quants: [ strip 0: block 0 | block 1 | … ][ strip 1 … ] … [ tail rows: row-major blocks ]
/// scales: [ strip 0: block 0: 8 × f16 | block 1 … ] …       [ tail rows: row-major f16 ]
/// </code>
/// Rows go in strips of eight (<see cref="BlockMatrix.StripRows"/>); a strip block is the same block
/// of its eight rows, 8·QuantBytes bytes, laid out so that one 32-byte vector holds four consecutive
/// weights of each of the eight rows (see <see cref="IBlockFormat.StripGroup"/>). That is the shape
/// of the unsigned × signed int8 dot products (vpdpbusd): a broadcast of four activations times one
/// such vector gives each row's partial sum in its own int32 lane, eight products deep into a whole
/// block's exact sum per row, which is then scaled once by d_w·d_x, the eight rows' scales one load.
/// No lane ever needs summing across, the scales need no broadcast, and a decode step reads every
/// strip as one sequential stream — which is what lets the GEMV run at the memory's speed, and many
/// tokens reuse one unpacking (<see cref="QuantizedLinear"/>). The last rows % 8 rows keep the row
/// form (each block's quants as GGUF stores them). The size is GGUF's; converting GGUF blocks moves
/// quants and scales only (Q8_0's q gains an offset of 128, a bijection), so a file's values reach
/// HBM exactly. Blocks run along the input dimension, so a permutation of whole rows (llama.cpp's
/// converter permutes q/k rows) happens before the conversion. The host writes this layout through
/// <see cref="QuantizedWeightLayout"/>.
/// </summary>
internal static unsafe class BlockMatrix<TFormat> where TFormat : IBlockFormat
{
    /// <summary>Bytes of a [rows, cols] matrix: the quant plane and two bytes a block.</summary>
    public static long Bytes(long rows, long cols)
    {
        BlockMatrix.RequireWholeBlocks(cols, $"the {TFormat.Type} weight");
        return rows * RowQuantBytes(cols) + rows * (cols / BlockMatrix.BlockSize) * 2;
    }

    /// <summary>Quant bytes of one row (also of one strip block's share per row).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long RowQuantBytes(long cols) => cols / BlockMatrix.BlockSize * TFormat.QuantBytes;

    /// <summary>Bytes of one strip block's quants: the same block of eight rows.</summary>
    public static int StripBlockBytes
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BlockMatrix.StripRows * TFormat.QuantBytes;
    }

    /// <summary>The quant plane; strip s's block b at <c>Quants(m) + StripBlock(s, blocks, b)</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Quants(byte* matrix) => matrix;

    /// <summary>
    /// Where strip <paramref name="strip"/>'s block <paramref name="block"/> starts in the quant plane
    /// (rows of <paramref name="blocks"/> blocks): <c>(s·blocks + b)·StripBlockBytes</c>, or in a panel form
    /// inside its panel's block, the odd strip 32 bytes after the even one, its groups
    /// <see cref="BlockMatrix.PanelGroupStride"/> bytes apart.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint StripBlock(nint strip, int blocks, int block) => TFormat.InPanels
        ? ((((strip >> 1) * blocks) + block) * BlockStride) + ((strip & 1) * (BlockMatrix.PanelGroupStride / 2))
        : ((strip * blocks) + block) * StripBlockBytes;

    /// <summary>Bytes from one block of a strip to its next: a strip block, or in a panel form a panel's block (two).</summary>
    public static int BlockStride
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => TFormat.InPanels ? 2 * StripBlockBytes : StripBlockBytes;
    }

    /// <summary>The scale plane of a [rows, cols] matrix: strip s's block b's eight scales at <c>Scales(…) + ScaleAt(s, blocks, b)</c> bytes (<c>(s·blocks + b)·16</c> in a strip form).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort* Scales(byte* matrix, long rows, long cols) => (ushort*)(matrix + rows * RowQuantBytes(cols));

    /// <summary>Where row <paramref name="row"/>'s block <paramref name="block"/> is.</summary>
    public static BlockLocation Locate(byte* matrix, long rows, long cols, long row, long block)
    {
        long blocks = cols / BlockMatrix.BlockSize;
        byte* quants = Quants(matrix);
        ushort* scales = Scales(matrix, rows, cols);
        long stripped = rows / BlockMatrix.StripRows * BlockMatrix.StripRows;
        if (row < stripped)
        {
            int r = (int)(row % BlockMatrix.StripRows);
            nint strip = (nint)(row / BlockMatrix.StripRows);
            return new BlockLocation(quants + StripBlock(strip, (int)blocks, (int)block), (ushort*)((byte*)scales + TFormat.ScaleAt(strip, (int)blocks, (int)block)) + r, r);
        }
        long tailBlock = ((row - stripped) * blocks) + block;
        return new BlockLocation(quants + (stripped * RowQuantBytes(cols)) + (tailBlock * TFormat.QuantBytes), scales + (stripped * blocks) + tailBlock, -1);
    }

    /// <summary>q of every element of row <paramref name="row"/>'s block <paramref name="block"/>, as int8 in element order.</summary>
    public static Vector256<sbyte> LoadRowBlock(byte* matrix, long rows, long cols, long row, long block)
    {
        BlockLocation at = Locate(matrix, rows, cols, row, block);
        if (at.StripRow < 0)
        {
            return TFormat.Load(at.Quants);
        }
        sbyte* q = stackalloc sbyte[BlockMatrix.BlockSize];
        for (int i = 0; i < BlockMatrix.BlockSize; i++)
        {
            q[i] = (sbyte)TFormat.StripQuant(at.Quants, at.StripRow, i);
        }
        return Vector256.Load(q);
    }

    /// <summary>Row <paramref name="row"/> widened to f32: d·q, exact (an 11-bit significand times an integer of at most 8 bits).</summary>
    public static void DequantizeRow(byte* matrix, long rows, long cols, long row, float* destination)
    {
        for (long b = 0; b < cols / BlockMatrix.BlockSize; b++)
        {
            BlockLocation at = Locate(matrix, rows, cols, row, b);
            float d = ElementTypes.F16ToSingle(*at.Scale);
            for (int i = 0; i < BlockMatrix.BlockSize; i++)
            {
                destination[b * BlockMatrix.BlockSize + i] = (at.StripRow < 0 ? TFormat.Quant(at.Quants, i) : TFormat.StripQuant(at.Quants, at.StripRow, i)) * d;
            }
        }
    }

    /// <summary>
    /// Lays out a [rows, cols] matrix given as GGUF blocks (row-major; each block its f16 d, then its
    /// quants) into <paramref name="destination"/> (<see cref="Bytes"/> long).
    /// </summary>
    public static void FromGgufBlocks(byte* gguf, long rows, long cols, byte* destination)
    {
        long blocks = cols / BlockMatrix.BlockSize;
        int ggufBlockBytes = 2 + TFormat.QuantBytes;
        new Span<byte>(destination, checked((int)Bytes(rows, cols))).Clear();
        for (long row = 0; row < rows; row++)
        {
            for (long b = 0; b < blocks; b++)
            {
                byte* source = gguf + (((row * blocks) + b) * ggufBlockBytes);
                BlockLocation at = Locate(destination, rows, cols, row, b);
                *at.Scale = *(ushort*)source;
                if (at.StripRow < 0)
                {
                    Buffer.MemoryCopy(source + 2, at.Quants, TFormat.QuantBytes, TFormat.QuantBytes);
                }
                else
                {
                    TFormat.WriteStripRow(at.Quants, at.StripRow, source + 2);
                }
            }
        }
    }
}

/// <summary>Where one row's block is in a <see cref="BlockMatrix{TFormat}"/>: its quants (a strip block, or a row-form block), its scale, and its row within the strip (−1 for a row-form tail row).</summary>
internal readonly unsafe struct BlockLocation(byte* quants, ushort* scale, int stripRow)
{
    public readonly byte* Quants = quants;
    public readonly ushort* Scale = scale;
    public readonly int StripRow = stripRow;
}

/// <summary>What every block format shares: the block length, the strip height, and the refusal of widths that are not whole blocks.</summary>
internal static class BlockMatrix
{
    /// <summary>Weights per block (ggml's QK8_0 and QK4_0).</summary>
    public const int BlockSize = 32;

    /// <summary>Rows per strip: one int32 lane per row in a 256-bit vector.</summary>
    public const int StripRows = 8;

    /// <summary>Rows per panel of a panel form (<see cref="IBlockFormat.InPanels"/>): two strips, one int32 lane per row in a 512-bit vector.</summary>
    public const int PanelRows = 2 * StripRows;

    /// <summary>Bytes from one group of a panel form's block to the next: the two strips' 32 bytes each.</summary>
    public const int PanelGroupStride = 64;

    /// <summary>The eight f16 scales of a strip block of an f16 scale plane (<see cref="BlockMatrix{TFormat}"/>), widened.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<float> F16StripScales(byte* plane, nint strip, int blocks, int block) =>
        F16Scales8((ushort*)plane + ((((strip * blocks) + block)) * StripRows));

    /// <summary>Eight f16 scales widened.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<float> F16Scales8(ushort* scales) => WeightConversion.F16ToSingle(Vector256.WidenLower(Vector128.Load(scales).ToVector256()));

    /// <summary>Sixteen f16 scales widened.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<float> F16Scales16(ushort* scales) => WeightConversion.F16ToSingle(Vector512.WidenLower(Vector256.Load(scales).ToVector512()));

    /// <summary>Throws unless rows of <paramref name="cols"/> weights are whole blocks.</summary>
    public static void RequireWholeBlocks(long cols, string what)
    {
        if (cols % BlockSize != 0)
        {
            throw new ArgumentException(
                $"{what} has rows of {cols} weights, which are not whole blocks of {BlockSize}; keep this matrix in F32, F16 or BF16, or pad its input dimension to a multiple of {BlockSize}.");
        }
    }
}
