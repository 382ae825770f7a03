using System.Diagnostics;

namespace AscendCC.Benchmarks;

/// <summary>
/// Runs one piece of work on several threads started together (a barrier releases them at once) and
/// times the whole, as the device's AI Cores run a launch: the machine probes (read bandwidth, peak
/// multiply-add rate) measure what every core can do at the same time, not one core alone.
/// </summary>
internal static class Together
{
    /// <summary>Seconds from the release of <paramref name="threads"/> threads running <paramref name="work"/>(index) to the last one's end.</summary>
    public static double Seconds(int threads, Action<int> work)
    {
        using var barrier = new Barrier(threads + 1);
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int index = t;
            workers[t] = new Thread(() =>
            {
                barrier.SignalAndWait();
                work(index);
            }) { IsBackground = true };
            workers[t].Start();
        }
        barrier.SignalAndWait();
        long start = Stopwatch.GetTimestamp();
        foreach (Thread worker in workers)
        {
            worker.Join();
        }
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }
}
