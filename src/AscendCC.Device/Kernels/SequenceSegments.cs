using System.Runtime.InteropServices;

namespace AscendCC.Device.Kernels;

/// <summary>
/// The rows of one pass that belong to one sequence of a batch: consecutive rows fed at consecutive
/// positions <see cref="Start"/> .. <see cref="Start"/> + <see cref="Length"/> − 1 of KV-cache slot
/// <see cref="Slot"/>. A pass is its segments' rows in table order: a prompt chunk is one segment of
/// many rows, a decode step one of one row, and a batched pass mixes both. Stored in HBM as three
/// int32 per segment, in this field order.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct SequenceSegment(int Slot, int Start, int Length)
{
    /// <summary>int32 values per segment in a segment table.</summary>
    public const int Ints = 3;
}

/// <summary>Checks a pass's segment table before any kernel trusts it.</summary>
internal static class SequenceSegments
{
    /// <summary>
    /// The first <paramref name="count"/> segments of <paramref name="table"/>, checked: each names a slot
    /// below <paramref name="slots"/>, at most once (its rows are written to the cache and then read in
    /// the same pass, so a second segment of the slot would race its own rows), and positions inside
    /// the <paramref name="maxSeq"/>-position cache; their lengths add up to <paramref name="rows"/>.
    /// </summary>
    public static ReadOnlySpan<SequenceSegment> Read(ReadOnlySpan<int> table, int count, int rows, int slots, int maxSeq)
    {
        KernelArgs.RequireAtLeast(slots, 1, nameof(slots));
        ReadOnlySpan<SequenceSegment> segments = ReadRows(table, count, rows, maxSeq);
        Span<bool> seen = slots <= 1024 ? stackalloc bool[slots] : new bool[slots];
        foreach (SequenceSegment s in segments)
        {
            if ((uint)s.Slot >= (uint)slots)
            {
                throw new ArgumentOutOfRangeException(nameof(table), s.Slot, $"segment slot {s.Slot} is outside the cache's {slots} slots");
            }
            if (seen[s.Slot])
            {
                throw new ArgumentException($"slot {s.Slot} appears in two segments of one pass; a sequence feeds one segment per pass", nameof(table));
            }
            seen[s.Slot] = true;
        }
        return segments;
    }

    /// <summary>
    /// As <see cref="Read"/> for kernels that touch no slot (row positions, row gathers): only the
    /// positions and the row count are checked.
    /// </summary>
    public static ReadOnlySpan<SequenceSegment> ReadRows(ReadOnlySpan<int> table, int count, int rows, int maxSeq)
    {
        KernelArgs.RequireAtLeast(count, 1, nameof(count));
        if ((long)count * SequenceSegment.Ints > table.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"the segment table holds {table.Length / SequenceSegment.Ints} segments, not {count}");
        }
        ReadOnlySpan<SequenceSegment> segments = MemoryMarshal.Cast<int, SequenceSegment>(table[..(count * SequenceSegment.Ints)]);
        long total = 0;
        foreach (SequenceSegment s in segments)
        {
            if (s.Length < 1 || s.Start < 0 || (long)s.Start + s.Length > maxSeq)
            {
                throw new ArgumentOutOfRangeException(nameof(table), $"segment of slot {s.Slot}: {s.Length} rows from position {s.Start} do not fit a cache of {maxSeq} positions");
            }
            total += s.Length;
        }
        if (total != rows)
        {
            throw new ArgumentException($"the segments hold {total} rows but the pass feeds {rows}", nameof(table));
        }
        return segments;
    }
}
