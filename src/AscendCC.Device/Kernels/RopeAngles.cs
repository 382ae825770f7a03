using System.Collections.Concurrent;

namespace AscendCC.Device.Kernels;

/// <summary>
/// The cos and sin of every pair's angle at positions [0, <see cref="Positions"/>) for one (theta, head
/// dimension, scaling): each exactly what <see cref="Rope"/>'s row loop computes — the float32 product
/// pos·freq[i], then MathF.Cos and MathF.Sin — formed once for the process instead of in every launch. A
/// decode step launches rope twice a layer over the same positions, and forming eight rows' angles in each
/// launch was most of a 110M step of eight sequences' rope time. The table holds public numbers only (the
/// angles of positions, a function of the model's configuration), shared by every context like the operator
/// binaries; it never holds a context's data. Positions from <see cref="MaxPositions"/> on are formed in the
/// launch as before.
/// </summary>
internal sealed unsafe class RopeAngles
{
    /// <summary>Positions a table covers at most (a 128-wide head's table is then 4 MiB).</summary>
    public const int MaxPositions = 8192;

    /// <summary>Distinct configurations kept; past it the tables are dropped and rebuilt on use.</summary>
    private const int MaxTables = 16;

    private static readonly ConcurrentDictionary<(float Theta, int HeadDim, RopeFrequencyScaling Scaling), RopeAngles> Tables = new();

    private readonly float[] _cos;
    private readonly float[] _sin;

    private RopeAngles(float* freq, int half, int positions)
    {
        Positions = positions;
        Half = half;
        // Pinned, so a launch reads rows by pointer while a larger table may replace this one.
        _cos = GC.AllocateUninitializedArray<float>(positions * half, pinned: true);
        _sin = GC.AllocateUninitializedArray<float>(positions * half, pinned: true);
        for (int pos = 0; pos < positions; pos++)
        {
            for (int i = 0; i < half; i++)
            {
                float val = pos * freq[i];
                _cos[(pos * half) + i] = MathF.Cos(val);
                _sin[(pos * half) + i] = MathF.Sin(val);
            }
        }
    }

    /// <summary>Positions [0, Positions) are in the table.</summary>
    public int Positions { get; }

    /// <summary>Pairs a head has (headDim / 2): a row's length.</summary>
    public int Half { get; }

    /// <summary>cos of position <paramref name="pos"/>'s pair angles, <see cref="Half"/> floats.</summary>
    public float* Cos(int pos) => (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _cos[0]) + ((nint)pos * Half);

    /// <summary>sin of position <paramref name="pos"/>'s pair angles, <see cref="Half"/> floats.</summary>
    public float* Sin(int pos) => (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _sin[0]) + ((nint)pos * Half);

    /// <summary>
    /// The table for this configuration covering <paramref name="lastPosition"/>, built or grown (doubling)
    /// if needed from <paramref name="freq"/> (the launch's own frequencies); null when the position is past
    /// <see cref="MaxPositions"/>.
    /// </summary>
    public static RopeAngles? For(float theta, int headDim, RopeFrequencyScaling scaling, float* freq, int lastPosition)
    {
        if ((uint)lastPosition >= MaxPositions)
        {
            return null;
        }
        var key = (theta, headDim, scaling);
        if (Tables.TryGetValue(key, out RopeAngles? table) && table.Positions > lastPosition)
        {
            return table;
        }
        int positions = Math.Max(256, table?.Positions ?? 0);
        while (positions <= lastPosition)
        {
            positions *= 2;
        }
        var built = new RopeAngles(freq, headDim / 2, Math.Min(MaxPositions, positions));
        if (Tables.Count >= MaxTables)
        {
            Tables.Clear();
        }
        Tables[key] = built;
        return built;
    }
}
