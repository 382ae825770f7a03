using System.Runtime.InteropServices;
using AscendCC.Device.AiCore;
using AscendCC.Device.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.Benchmarks;

/// <summary>
/// Square f32 GEMM against torch.mm, and decode-shaped GEMV (one token through a K×N Linear) with
/// F32/BF16/F16 weights against TorchSharp's f32 linear: the case that decides decode speed, where
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
            foreach (ElementType type in new[] { ElementType.F32, ElementType.BF16, ElementType.F16 })
            {
                RunGemv(grid, size, type, options, budgetMs, table);
            }
        }
        RunPrefill(grid, 512, 4096, 4096, ElementType.BF16, options, budgetMs, table);
    }

    /// <summary>A prefill-shaped Linear: the GEMM path, widening bf16 weights while packing them.</summary>
    private static void RunPrefill(AiCoreGrid grid, int m, int k, int n, ElementType type, BenchmarkOptions options, double budgetMs, ResultTable table)
    {
        string name = $"Linear {m}×{k}·({n}×{k})ᵀ {type} W (torch f32 W)";
        if (!options.Includes(name))
        {
            return;
        }
        float[] x = Random(m * k, 5);
        float[] w = Random(n * k, 6);
        byte[] wBytes = Encode(w, type);
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

    private static void RunGemv(AiCoreGrid grid, int size, ElementType type, BenchmarkOptions options, double budgetMs, ResultTable table)
    {
        int k = size, n = size;
        string name = $"GEMV 1×{k}·{k}×{n} {type} W (torch f32 W)";
        if (!options.Includes(name))
        {
            return;
        }
        float[] x = Random(k, 3);
        float[] w = Random(n * k, 4);
        byte[] wBytes = Encode(w, type);
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

    private static byte[] Encode(float[] values, ElementType type)
    {
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
