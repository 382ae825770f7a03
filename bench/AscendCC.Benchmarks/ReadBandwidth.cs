using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Benchmarks;

/// <summary>
/// The machine's read bandwidth as a decode step can use it: <c>threads</c> threads (the device's
/// AI Cores and llama.cpp both run 2) each sum their share of a buffer far larger than the last-level
/// cache with wide vector loads, started together; the best of a few repetitions.
/// </summary>
internal sealed class ReadBandwidth
{
    private readonly byte[] _buffer;

    public ReadBandwidth(int bytes = 1 << 30)
    {
        _buffer = GC.AllocateUninitializedArray<byte>(bytes);
        // Touch every page, so that the timed passes read memory rather than fault it in.
        _buffer.AsSpan().Fill(1);
    }

    public long Bytes => _buffer.Length;

    /// <summary>The best of <paramref name="repetitions"/> passes over the whole buffer, in GB/s.</summary>
    public double Measure(int threads = 2, int repetitions = 3)
    {
        double best = 0;
        for (int rep = 0; rep < repetitions; rep++)
        {
            best = Math.Max(best, Pass(0, _buffer.Length, threads));
        }
        return best;
    }

    private int _nextSlice;

    /// <summary>
    /// One pass of <paramref name="threads"/> threads over a <paramref name="bytes"/> slice of the buffer,
    /// the next slice on each call (so none is read from cache), in GB/s: a few milliseconds, short enough
    /// to take right before a timed step, in the memory state the step meets. This machine's bandwidth
    /// flips between about 40 and 70 GB/s from minute to minute; a probe once per round (minutes
    /// apart from most of its steps) can land on the other side of a flip.
    /// </summary>
    public double MeasureSlice(int bytes = 256 << 20, int threads = 2) => Pass(_nextSlice++ % (_buffer.Length / bytes) * bytes, bytes, threads);

    /// <summary>GB/s of <paramref name="threads"/> threads started together, each summing its share of <paramref name="bytes"/> from <paramref name="offset"/>.</summary>
    private double Pass(int offset, int bytes, int threads)
    {
        int share = bytes / threads / 256 * 256;
        var sums = new ulong[threads];
        double seconds = Together.Seconds(threads, index => sums[index] = Sum(_buffer.AsSpan(offset + (index * share), share)));
        // The sums are what the loads were for; a buffer of ones sums to its length.
        if (sums.Any(s => s == 0))
        {
            throw new InvalidOperationException("bandwidth probe: a sum came out 0");
        }
        return (double)share * threads / seconds / 1e9;
    }

    // Fully optimised from the first call: a probe run a few times would otherwise time tier-0 or OSR code.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static ulong Sum(ReadOnlySpan<byte> bytes)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            ReadOnlySpan<Vector512<ulong>> v = MemoryMarshal.Cast<byte, Vector512<ulong>>(bytes);
            Vector512<ulong> a = default, b = default, c = default, d = default;
            int i = 0;
            for (; i + 4 <= v.Length; i += 4)
            {
                a += v[i];
                b += v[i + 1];
                c += v[i + 2];
                d += v[i + 3];
            }
            for (; i < v.Length; i++)
            {
                a += v[i];
            }
            return Vector512.Sum(a + b + c + d);
        }
        else
        {
            ReadOnlySpan<Vector256<ulong>> v = MemoryMarshal.Cast<byte, Vector256<ulong>>(bytes);
            Vector256<ulong> a = default, b = default, c = default, d = default;
            int i = 0;
            for (; i + 4 <= v.Length; i += 4)
            {
                a += v[i];
                b += v[i + 1];
                c += v[i + 2];
                d += v[i + 3];
            }
            for (; i < v.Length; i++)
            {
                a += v[i];
            }
            return Vector256.Sum(a + b + c + d);
        }
    }
}
