using System.Runtime.InteropServices;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.Benchmarks;

/// <summary>
/// Square f32 GEMM against torch.mm, and decode-shaped GEMV (one token through a K×N Linear) with
/// F32/BF16/F16/Q8_0 weights against TorchSharp's f32 linear: the case that decides decode speed, where
/// narrower weights should win by moving fewer bytes.
/// </summary>
internal sealed class MatMulSuite : IBenchmarkSuite
{
    public string Name => "matmul";

    public string Description => "AI Core GEMM and GEMV vs TorchSharp (CPU, same thread count)";

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        AiCoreGrid grid = AiCoreGrid.Shared;
        torch.set_num_threads(grid.CoreCount);
        double budgetMs = options.Quick ? 200 : 1500;

        foreach (int size in new[] { 512, 1024, 2048 })
        {
            RunMatMul(grid, size, options, budgetMs, table);
        }
        foreach (int size in new[] { 4096, 8192 })
        {
            foreach (ElementType type in new[] { ElementType.F32, ElementType.BF16, ElementType.F16, ElementType.Q8_0 })
            {
                RunGemv(grid, size, size, type, options, budgetMs, table);
            }
        }
        // The 110M shape's classifier (768 → 32000) and MLP down projection (2048 → 768), bf16 vs Q8_0.
        foreach ((int k, int n) in new[] { (768, 32000), (2048, 768) })
        {
            foreach (ElementType type in new[] { ElementType.BF16, ElementType.Q8_0 })
            {
                RunGemv(grid, k, n, type, options, budgetMs, table);
            }
        }
        RunPrefill(grid, 512, 4096, 4096, ElementType.BF16, options, budgetMs, table);
        RunPrefill(grid, 512, 4096, 4096, ElementType.Q8_0, options, budgetMs, table);
        // A batched decode step's linear (the 1.1B gate projection, 2048 → 5632) for two and eight
        // sequences: the two-token row-stream path and the multi-token strip kernels.
        foreach (int m in new[] { 2, 8 })
        {
            foreach (ElementType type in new[] { ElementType.BF16, ElementType.Q8_0, ElementType.Q4_0, ElementType.Q4_K })
            {
                RunPrefill(grid, m, 2048, 5632, type, options, budgetMs, table);
            }
        }
        // Decode projections that share their input, three launches vs one (linear_fused), bf16.
        RunFusedGemv(grid, "110M q/k/v", 768, 768, 768, 768, options, budgetMs, table);
        RunFusedGemv(grid, "110M gate/up", 768, 2048, 2048, 0, options, budgetMs, table);
        RunFusedGemv(grid, "1.1B q/k/v", 2048, 2048, 256, 256, options, budgetMs, table);
        RunFusedGemv(grid, "1.1B gate/up", 2048, 5632, 5632, 0, options, budgetMs, table);
    }

    /// <summary>One token through two or three bf16 linears over the same input: separate launches, then one fused launch; torch runs the separate f32 linears.</summary>
    private static void RunFusedGemv(AiCoreGrid grid, string label, int k, int n0, int n1, int n2, BenchmarkOptions options, double budgetMs, ResultTable table)
    {
        string separate = $"{label} 1×{k}, n={n0}/{n1}/{n2} BF16 W: separate launches (torch f32 W)";
        string fused = $"{label} 1×{k}, n={n0}/{n1}/{n2} BF16 W: linear_fused (torch f32 W)";
        if (!options.Includes(separate) && !options.Includes(fused))
        {
            return;
        }
        int[] ns = [n0, n1, n2];
        float[] x = Random(k, 5);
        float[][] w = [.. ns.Select((n, i) => Random(n * k, 6 + i))];
        byte[][] wBytes = [.. w.Select((v, i) => Encode(v, ElementType.BF16, ns[i], k))];
        float[][] y = [.. ns.Select(n => new float[n])];
        using Tensor tx = tensor(x, 1, k);
        Tensor[] tw = [.. ns.Where(n => n > 0).Select((n, i) => tensor(w[i], n, k))];
        long bytes = wBytes.Sum(b => (long)b.Length);

        void Separate()
        {
            for (int i = 0; i < 3; i++)
            {
                if (ns[i] > 0)
                {
                    LinearKernel.Linear(grid, x, wBytes[i], ElementType.BF16, [], y[i], 1, k, ns[i]);
                }
            }
        }
        void Fused() => LinearKernel.LinearFused(grid, x, ElementType.BF16, 1, k, wBytes[0], y[0], n0, wBytes[1], y[1], n1, wBytes[2], y[2], n2);
        void Torch()
        {
            foreach (Tensor t in tw)
            {
                using Tensor r = nn.functional.linear(tx, t);
            }
        }

        int reps = Measure.RepetitionsFor(bytes / 20e9 * 1e3, budgetMs) * 2;
        (Timing sep, Timing torchSep) = Measure.Compare(Separate, Torch, warmup: 3, reps);
        table.Add(new ResultRow(separate, sep, torchSep, bytes, "GB/s"));
        (Timing fus, Timing torchFus) = Measure.Compare(Fused, Torch, warmup: 3, reps);
        table.Add(new ResultRow(fused, fus, torchFus, bytes, "GB/s"));
        foreach (Tensor t in tw)
        {
            t.Dispose();
        }
    }

    /// <summary>A Linear of <paramref name="m"/> rows: prefill-sized m runs the GEMM (bf16 weights widened while packed), m ≤ 8 the GEMV's multi-token paths; torch runs f32 weights.</summary>
    private static void RunPrefill(AiCoreGrid grid, int m, int k, int n, ElementType type, BenchmarkOptions options, double budgetMs, ResultTable table)
    {
        string name = $"Linear {m}×{k}·({n}×{k})ᵀ {type} W (torch f32 W)";
        if (!options.Includes(name))
        {
            return;
        }
        float[] x = Random(m * k, 5);
        float[] w = Random(n * k, 6);
        byte[] wBytes = Encode(w, type, n, k);
        float[] y = new float[m * n];
        using Tensor tx = tensor(x, m, k);
        using Tensor tw = tensor(w, n, k);

        void Ours() => LinearKernel.Linear(grid, x, wBytes, type, [], y, m, k, n);
        void Torch()
        {
            using Tensor r = nn.functional.linear(tx, tw);
        }

        double flops = 2.0 * m * k * n;
        int reps = Measure.RepetitionsFor(flops / 150e9 * 1e3, budgetMs);
        (Timing ours, Timing torchTime) = Measure.Compare(Ours, Torch, warmup: 2, reps);
        table.Add(new ResultRow(name, ours, torchTime, flops, "GFLOPS"));
    }

    private static void RunMatMul(AiCoreGrid grid, int n, BenchmarkOptions options, double budgetMs, ResultTable table)
    {
        string name = $"MatMul {n}×{n}×{n}";
        if (!options.Includes(name))
        {
            return;
        }
        float[] a = Random(n * n, 1);
        float[] b = Random(n * n, 2);
        float[] c = new float[n * n];
        using Tensor ta = tensor(a, n, n);
        using Tensor tb = tensor(b, n, n);

        void Ours() => MatMulKernel.MatMul(grid, a, b, c, n, n, n);
        void Torch()
        {
            using Tensor r = mm(ta, tb);
        }

        double flops = 2.0 * n * n * n;
        int reps = Measure.RepetitionsFor(flops / 150e9 * 1e3, budgetMs);
        (Timing ours, Timing torchTime) = Measure.Compare(Ours, Torch, warmup: 2, reps);
        table.Add(new ResultRow(name, ours, torchTime, flops, "GFLOPS"));
    }

    private static void RunGemv(AiCoreGrid grid, int k, int n, ElementType type, BenchmarkOptions options, double budgetMs, ResultTable table)
    {
        string name = $"GEMV 1×{k}·{k}×{n} {type} W (torch f32 W)";
        if (!options.Includes(name))
        {
            return;
        }
        float[] x = Random(k, 3);
        float[] w = Random(n * k, 4);
        byte[] wBytes = Encode(w, type, n, k);
        float[] y = new float[n];
        using Tensor tx = tensor(x, 1, k);
        using Tensor tw = tensor(w, n, k);
        w = [];

        void Ours() => LinearKernel.Linear(grid, x, wBytes, type, [], y, 1, k, n);
        void Torch()
        {
            using Tensor r = nn.functional.linear(tx, tw);
        }

        int reps = Measure.RepetitionsFor(wBytes.Length / 20e9 * 1e3, budgetMs);
        (Timing ours, Timing torchTime) = Measure.Compare(Ours, Torch, warmup: 3, reps);
        // Throughput is weight bytes streamed per second: ours at the stored width, torch at f32.
        table.Add(new ResultRow(name, ours, torchTime, wBytes.Length, "GB/s"));
        Console.WriteLine($"  torch streams {4.0 * n * k / (torchTime.MedianMs * 1e-3) / 1e9:F1} GB/s of f32 weights");
    }

    private static float[] Random(int count, int seed)
    {
        var random = new Random(seed);
        float[] values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)(random.NextDouble() * 2 - 1);
        }
        return values;
    }

    private static byte[] Encode(float[] values, ElementType type, int rows, int cols)
    {
        if (type is ElementType.Q8_0 or ElementType.Q4_0 or ElementType.Q4_K)
        {
            var precision = type switch
            {
                ElementType.Q4_0 => Runtime.Inference.WeightPrecision.Q4_0,
                ElementType.Q4_K => Runtime.Inference.WeightPrecision.Q4_K,
                _ => Runtime.Inference.WeightPrecision.Q8_0,
            };
            return Runtime.Inference.WeightConversion.Convert(Runtime.Models.TensorData.FromFloat32("w", [rows, cols], values), precision);
        }
        if (type == ElementType.F32)
        {
            return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        }
        byte[] bytes = new byte[values.Length * 2];
        Span<ushort> bits = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
        for (int i = 0; i < values.Length; i++)
        {
            bits[i] = type == ElementType.BF16 ? ElementTypes.SingleToBF16(values[i]) : ElementTypes.SingleToF16(values[i]);
        }
        return bytes;
    }
}
