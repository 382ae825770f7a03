using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;

namespace AscendCC.Benchmarks;

/// <summary>
/// The linears of one 1.1B (TinyLlama-shaped) decode step and nothing else: every layer's fused
/// q/k/v, o, fused gate/up and down projection and the classifier, each layer's weights a buffer of
/// its own (2.1 GB in BF16, so nothing is served from cache), at BF16, Q8_0, Q4_0 and Q4_K (BF16, Q4_0 and Q4_K also in
/// the panels batched programs keep them in, the classifier in rows or strips as there), for 1, 2, 4
/// and 8 tokens. Rounds interleave the precisions; each round also measures the machine's read bandwidth,
/// so the GEMV kernels' share of it is a ratio within a round. This isolates the kernels from the
/// rest of the step (attention, norms, launches), which <c>bench -- llamacpp</c> measures whole.
/// </summary>
internal sealed unsafe class DecodeGemvSuite : IBenchmarkSuite, IReportingSuite
{
    private const int Dim = 2048, KvDim = 256, Hidden = 5632, Vocab = 32000, Layers = 22;

    private string _report = "";

    public string Name => "gemv";

    public string Description => "1.1B decode step's linears only: BF16/Q8_0/Q4_0/Q4_K, in rows or strips and in panels, at 1, 2, 4 and 8 tokens, GB/s against the read bandwidth";

    public string ReportFileName => "gemv.md";

    public string Report => _report;

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        int rounds = options.Quick ? 2 : 7;
        AiCoreGrid grid = AiCoreGrid.Shared;
        var bandwidth = new ReadBandwidth();
        // --filter picks precisions by name ("BF16|Q4_0").
        ElementType[] types = [.. new[] { ElementType.BF16, ElementType.BF16Panels, ElementType.Q8_0, ElementType.Q4_0, ElementType.Q4_0Panels, ElementType.Q4_K, ElementType.Q4_KPanels }.Where(t => options.Includes(t.ToString()))];
        int[] widths = [1, 2, 4, 8];
        var steps = types.Select(t => new StepWeights(t)).ToArray();
        try
        {
            float* x = (float*)NativeMemory.AlignedAlloc((nuint)(8 * Hidden * sizeof(float)), 64);
            float* y = (float*)NativeMemory.AlignedAlloc((nuint)(8 * (Vocab + 2 * Hidden) * sizeof(float)), 64);
            try
            {
                var random = new Random(3);
                for (int i = 0; i < 8 * Hidden; i++)
                {
                    x[i] = (float)(random.NextDouble() * 2 - 1);
                }
                var times = new Dictionary<(ElementType, int), List<double>>();
                var bandwidths = new List<double>();
                foreach (StepWeights step in steps)
                {
                    foreach (int m in widths)
                    {
                        step.Run(grid, x, y, m);
                        times[(step.Type, m)] = [];
                    }
                }
                for (int round = 0; round < rounds; round++)
                {
                    bandwidths.Add(bandwidth.Measure(grid.CoreCount));
                    for (int i = 0; i < steps.Length; i++)
                    {
                        StepWeights step = steps[(i + round) % steps.Length];
                        foreach (int m in widths)
                        {
                            double best = double.MaxValue;
                            for (int rep = 0; rep < 3; rep++)
                            {
                                long start = Stopwatch.GetTimestamp();
                                step.Run(grid, x, y, m);
                                best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                            }
                            times[(step.Type, m)].Add(best);
                        }
                    }
                }
                _report = Format(steps, widths, times, bandwidths);
                if (types.Contains(ElementType.BF16))
                {
                    _report += Placement(grid, x, y, options.Quick ? 2 : 5);
                }
                Console.WriteLine(_report);
            }
            finally
            {
                NativeMemory.AlignedFree(x);
                NativeMemory.AlignedFree(y);
            }
        }
        finally
        {
            foreach (StepWeights step in steps)
            {
                step.Dispose();
            }
        }
    }

    private static string Format(StepWeights[] steps, int[] widths, Dictionary<(ElementType, int), List<double>> times, List<double> bandwidths)
    {
        double gbs = Median(bandwidths);
        var text = new System.Text.StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Read bandwidth (2 threads, 1 GiB): median {gbs:F1} GB/s (rounds: {string.Join(", ", bandwidths.Select(b => b.ToString("F1", CultureInfo.InvariantCulture)))})");
        text.AppendLine();
        text.AppendLine("| weights | bytes | tokens | ms (median of rounds) | GB/s | % of read bandwidth | tokens/s ÷ 1 token |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (StepWeights step in steps)
        {
            double one = Median(times[(step.Type, 1)]);
            foreach (int m in widths)
            {
                double ms = Median(times[(step.Type, m)]);
                double rate = step.Bytes / (ms * 1e-3) / 1e9;
                text.AppendLine(CultureInfo.InvariantCulture, $"| {step.Type} | {step.Bytes / 1e9:F2} GB | {m} | {ms:F1} | {rate:F1} | {100 * rate / gbs:F0} % | {m * one / ms:F2}× |");
            }
        }
        return text.ToString();
    }

    /// <summary>
    /// The eight-token BF16 GEMV (k = 2048) over 512 MB of weights in three placements, rounds
    /// interleaved: 256 rows (1 MB) repeated, so each core's half stays in its L2; 2048 rows (8 MB)
    /// repeated, in the L3; 64 matrices of 2048 rows (512 MB), from DRAM. Against the FMA peak measured
    /// in the same rounds: how much of the eight-token pass's speed the cores keep while the strips
    /// stream in.
    /// </summary>
    private static string Placement(AiCoreGrid grid, float* x, float* y, int rounds)
    {
        const long Total = 512L << 20;
        (string Name, int Rows, int Copies)[] placements = [("L2: 256 rows, repeated", 256, 1), ("L3: 2048 rows (8 MB), repeated", 2048, 1), ("DRAM: 64 matrices of 2048 rows", 2048, 64)];
        var random = new Random(7);
        var buffers = placements.Select(p =>
        {
            long bytes = (long)p.Rows * Dim * 2;
            var copies = new nint[p.Copies];
            for (int c = 0; c < p.Copies; c++)
            {
                byte* w = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
                var halves = new Span<ushort>(w, (int)(bytes / 2));
                for (int i = 0; i < halves.Length; i++)
                {
                    halves[i] = (ushort)(0x3B80 + random.Next(0x100));
                }
                copies[c] = (nint)w;
            }
            return copies;
        }).ToArray();
        try
        {
            var gmacs = placements.Select(_ => new List<double>()).ToArray();
            var peaks = new List<double>();
            for (int round = 0; round < rounds; round++)
            {
                peaks.Add(ComputePeak.F32MacsPerSecond() / 1e9);
                for (int i = 0; i < placements.Length; i++)
                {
                    int at = (i + round) % placements.Length;
                    (_, int rows, int copies) = placements[at];
                    long bytes = (long)rows * Dim * 2;
                    long passes = Total / (bytes * copies);
                    double best = double.MaxValue;
                    for (int rep = 0; rep < 3; rep++)
                    {
                        long start = Stopwatch.GetTimestamp();
                        for (long pass = 0; pass < passes; pass++)
                        {
                            foreach (nint w in buffers[at])
                            {
                                LinearKernel.Linear(grid, new ReadOnlySpan<float>(x, 8 * Dim), new ReadOnlySpan<byte>((byte*)w, (int)bytes), ElementType.BF16, [], new Span<float>(y, 8 * rows), 8, Dim, rows);
                            }
                        }
                        best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
                    }
                    gmacs[at].Add(8.0 * (Total / 2) / best / 1e9);
                }
            }
            double peak = Median(peaks);
            var text = new System.Text.StringBuilder();
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"Where the eight-token time goes: the BF16 GEMV at 8 tokens, k = {Dim}, over 512 MB of weights placed three ways (rounds interleaved; the FMA peak measured on both cores in the same rounds, median {peak:F0} GMAC/s):");
            text.AppendLine();
            text.AppendLine("| weights | GMAC/s (median of rounds) | % of the FMA peak |");
            text.AppendLine("|---|---:|---:|");
            for (int i = 0; i < placements.Length; i++)
            {
                double g = Median(gmacs[i]);
                text.AppendLine(CultureInfo.InvariantCulture, $"| {placements[i].Name} | {g:F0} | {100 * g / peak:F0} % |");
            }
            return text.ToString();
        }
        finally
        {
            foreach (nint w in buffers.SelectMany(b => b))
            {
                NativeMemory.AlignedFree((void*)w);
            }
        }
    }

    private static double Median(List<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>One precision's weights for every layer, in native memory, filled with plausible random values.</summary>
    private sealed class StepWeights : IDisposable
    {
        private readonly List<nint> _buffers = [];
        private readonly (nint Qkv, nint O, nint GateUp, nint Down)[] _layers;
        private readonly nint _classifier;

        public StepWeights(ElementType type)
        {
            Type = type;
            _layers = new (nint, nint, nint, nint)[Layers];
            var random = new Random((int)type);
            for (int l = 0; l < Layers; l++)
            {
                _layers[l] = (Matrix(random, Dim + (2 * KvDim), Dim), Matrix(random, Dim, Dim), Matrix(random, 2 * Hidden, Dim), Matrix(random, Dim, Hidden));
            }
            // A batched program keeps its layer matrices in panels but the classifier (the embedding's table) in rows.
            _classifier = Matrix(random, Vocab, Dim, ClassifierType);
        }

        /// <summary>The classifier's element type: the layers' but rows where they are in panels.</summary>
        private ElementType ClassifierType => Type switch { ElementType.BF16Panels => ElementType.BF16, ElementType.Q4_0Panels => ElementType.Q4_0, ElementType.Q4_KPanels => ElementType.Q4_K, _ => Type };

        public ElementType Type { get; }

        public long Bytes { get; private set; }

        /// <summary>The step's linears for <paramref name="m"/> tokens, as the Llama program issues them.</summary>
        public void Run(AiCoreGrid grid, float* x, float* y, int m)
        {
            var xs = new ReadOnlySpan<float>(x, m * Hidden);
            foreach ((nint qkv, nint o, nint gateUp, nint down) in _layers)
            {
                // q, k and v as three matrices of one buffer, as the fused launch takes them.
                long q = ElementTypes.MatrixBytes(Type, Dim, Dim), kv = ElementTypes.MatrixBytes(Type, KvDim, Dim);
                byte* pq = (byte*)qkv;
                LinearKernel.LinearFused(grid, xs[..(m * Dim)], Type, m, Dim,
                    new ReadOnlySpan<byte>(pq, (int)q), new Span<float>(y, m * Dim), Dim,
                    new ReadOnlySpan<byte>(pq + q, (int)kv), new Span<float>(y + (m * Dim), m * KvDim), KvDim,
                    new ReadOnlySpan<byte>(pq + q + kv, (int)kv), new Span<float>(y + (m * (Dim + KvDim)), m * KvDim), KvDim);
                LinearKernel.Linear(grid, xs[..(m * Dim)], new ReadOnlySpan<byte>((byte*)o, (int)ElementTypes.MatrixBytes(Type, Dim, Dim)), Type, [], new Span<float>(y, m * Dim), m, Dim, Dim);
                long h = ElementTypes.MatrixBytes(Type, Hidden, Dim);
                byte* pg = (byte*)gateUp;
                LinearKernel.LinearFused(grid, xs[..(m * Dim)], Type, m, Dim,
                    new ReadOnlySpan<byte>(pg, (int)h), new Span<float>(y, m * Hidden), Hidden,
                    new ReadOnlySpan<byte>(pg + h, (int)h), new Span<float>(y + (m * Hidden), m * Hidden), Hidden,
                    [], [], 0);
                LinearKernel.Linear(grid, xs, new ReadOnlySpan<byte>((byte*)down, (int)ElementTypes.MatrixBytes(Type, Dim, Hidden)), Type, [], new Span<float>(y, m * Dim), m, Hidden, Dim);
            }
            LinearKernel.Linear(grid, xs[..(m * Dim)], new ReadOnlySpan<byte>((byte*)_classifier, (int)ElementTypes.MatrixBytes(ClassifierType, Vocab, Dim)), ClassifierType, [], new Span<float>(y, m * Vocab), m, Dim, Vocab);
        }

        public void Dispose()
        {
            foreach (nint buffer in _buffers)
            {
                NativeMemory.AlignedFree((void*)buffer);
            }
            _buffers.Clear();
        }

        /// <summary>
        /// A [rows, cols] matrix of <see cref="Type"/> (for the fused launches, the concatenation of
        /// its parts, which have the same layout one after another since every part is whole rows).
        /// Values: bf16 of magnitude about 2⁻⁷, random quants with f16 scales about 2⁻⁹.
        /// </summary>
        private nint Matrix(Random random, int rows, int cols) => Matrix(random, rows, cols, Type);

        private nint Matrix(Random random, int rows, int cols, ElementType type)
        {
            // The fused buffers hold several matrices' planes back to back: sized as the parts are.
            long bytes = rows switch
            {
                Dim + (2 * KvDim) => ElementTypes.MatrixBytes(type, Dim, cols) + (2 * ElementTypes.MatrixBytes(type, KvDim, cols)),
                2 * Hidden => 2 * ElementTypes.MatrixBytes(type, Hidden, cols),
                _ => ElementTypes.MatrixBytes(type, rows, cols),
            };
            byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            _buffers.Add((nint)p);
            Bytes += bytes;
            var span = new Span<byte>(p, (int)bytes);
            random.NextBytes(span);
            if (type is ElementType.BF16 or ElementType.BF16Panels)
            {
                var halves = MemoryMarshal.Cast<byte, ushort>(span);
                for (int i = 0; i < halves.Length; i++)
                {
                    // Sign and 7 mantissa bits random; exponent 2⁻⁸…2⁻⁶.
                    halves[i] = (ushort)((halves[i] & 0x807F) | ((0x77 + (halves[i] >> 7 & 1)) << 7));
                }
            }
            else if (type is ElementType.Q4_K or ElementType.Q4_KPanels)
            {
                // Quant bytes stay random; each part's records get plausible f32 d and dmin (sc and m random
                // bytes): per strip 8 of each in 192 bytes, per panel (two strips) 16 of each in 384.
                int lanes = type == ElementType.Q4_K ? 8 : 16;
                foreach ((long offset, int partRows) in Parts(rows))
                {
                    long strips = (partRows + 7) / 8;
                    long records = offset + (strips * (cols / BlockMatrix.BlockSize) * 128);
                    for (long r = 0; r < strips * 8 / lanes * (cols / 256); r++)
                    {
                        var dd = MemoryMarshal.Cast<byte, float>(span.Slice((int)(records + (r * 24 * lanes)), 8 * lanes));
                        for (int i = 0; i < 2 * lanes; i++)
                        {
                            dd[i] = (float)((0.5 + random.NextDouble()) / (i < lanes ? 4096 : 2048));
                        }
                    }
                }
            }
            else
            {
                // Quant bytes stay random; each part's scale plane gets plausible f16 scales.
                foreach ((long offset, int partRows) in Parts(rows))
                {
                    long quantBytes = partRows * (long)(cols / BlockMatrix.BlockSize) * (type == ElementType.Q8_0 ? 32 : 16);
                    var scales = MemoryMarshal.Cast<byte, ushort>(span.Slice((int)(offset + quantBytes), partRows * (cols / BlockMatrix.BlockSize) * 2));
                    for (int i = 0; i < scales.Length; i++)
                    {
                        scales[i] = (ushort)(0x1800 | (scales[i] & 0x03FF));
                    }
                }
            }
            return (nint)p;
        }

        private IEnumerable<(long Offset, int Rows)> Parts(int rows)
        {
            switch (rows)
            {
                case Dim + (2 * KvDim):
                    long q = ElementTypes.MatrixBytes(Type, Dim, Dim), kv = ElementTypes.MatrixBytes(Type, KvDim, Dim);
                    return [(0, Dim), (q, KvDim), (q + kv, KvDim)];
                case 2 * Hidden:
                    return [(0, Hidden), (ElementTypes.MatrixBytes(Type, Hidden, Dim), Hidden)];
                default:
                    return [(0, rows)];
            }
        }
    }
}
