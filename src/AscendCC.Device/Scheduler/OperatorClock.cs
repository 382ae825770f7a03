using System.Diagnostics;

namespace AscendCC.Device.Scheduler;

/// <summary>
/// Device time per operator, summed while enabled: what a benchmark needs to split a step's wall time
/// into the kernels that ran and what ran around them (for example, how much of a confidential prefill
/// the AES-GCM operators take, measured in that very run rather than re-enacted beside it). Internal
/// and off by default: per-operator timing is not part of the hardware interface, and in confidential
/// mode it would be one more channel for the host.
/// </summary>
internal sealed class OperatorClock
{
    /// <summary>Pseudo-operator: the confidential firmware's checks of each task and model execution (CC mode only).</summary>
    public const string FirmwareChecks = "(firmware checks)";

    /// <summary>Pseudo-operator: copies between HBM and registered host buffers (the DMA engine).</summary>
    public const string HostDma = "(host DMA)";

    private readonly Dictionary<string, (long Ticks, long Count)> _totals = new(StringComparer.Ordinal);
    private volatile bool _enabled;

    /// <summary>Whether launches are timed. Off costs the scheduler one field read per launch.</summary>
    public bool Enabled
    {
        get => _enabled;
        set => _enabled = value;
    }

    /// <summary>Adds one launch of <paramref name="op"/> that took <paramref name="ticks"/> <see cref="Stopwatch"/> ticks.</summary>
    public void Add(string op, long ticks)
    {
        lock (_totals)
        {
            (long t, long n) = _totals.GetValueOrDefault(op);
            _totals[op] = (t + ticks, n + 1);
        }
    }

    /// <summary>Milliseconds and launch count per operator since the last <see cref="Reset"/>.</summary>
    public IReadOnlyDictionary<string, (double Milliseconds, long Launches)> Read()
    {
        lock (_totals)
        {
            return _totals.ToDictionary(kv => kv.Key, kv => (kv.Value.Ticks * 1000.0 / Stopwatch.Frequency, kv.Value.Count), StringComparer.Ordinal);
        }
    }

    /// <summary>Clears the totals.</summary>
    public void Reset()
    {
        lock (_totals)
        {
            _totals.Clear();
        }
    }
}
