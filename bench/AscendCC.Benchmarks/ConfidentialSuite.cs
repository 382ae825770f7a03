using System.Diagnostics;
using System.Runtime.InteropServices;
using AscendCC.Attacks;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Llama;

namespace AscendCC.Benchmarks;

/// <summary>
/// The one-time cost of confidentiality for a ~117 MB (bf16) model: attestation with key release,
/// staging the encrypted package, opening it on the device, and the AES-GCM unlock into locked HBM.
/// </summary>
internal sealed class ConfidentialSuite : IBenchmarkSuite
{
    public string Name => "confidential";

    public string Description => "attestation, key release and package unlock of a ~117 MB model (one-time CC setup)";

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        var config = new LlamaConfig
        {
            Architecture = "LlamaForCausalLM", HiddenSize = 1024, IntermediateSize = 2816, NumHiddenLayers = 2,
            NumAttentionHeads = 16, NumKeyValueHeads = 16, VocabSize = 32000, MaxPositionEmbeddings = 512, TieWordEmbeddings = true,
        };
        var deployment = new ModelDeployment(config, RopeConvention.Half, MaxContext: 256, MaxBatchTokens: 64, WeightPrecision.BF16);
        var shapes = LlamaTensorNames.Expected(config).ToDictionary(e => e.Name, e => e.Shape);
        var rng = new Random(5);
        TensorData Weights(string name)
        {
            long[] shape = shapes[name];
            long n = shape.Aggregate(1L, (a, b) => a * b);
            var bf16 = new ushort[n];
            for (long i = 0; i < n; i++)
            {
                bf16[i] = WeightConversion.ToBFloat16((float)((rng.NextDouble() - 0.5) * 0.05));
            }
            return shape.Length == 1
                ? TensorData.FromFloat32(name, shape, Enumerable.Repeat(1f, (int)n).ToArray())
                : new TensorData(name, TensorDType.BF16, shape, MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray());
        }

        // The first round pays for JIT compilation and first-touch page faults of the process; the
        // second shows the steady cost a deployment pays per model load.
        for (int round = 0; round < 2; round++)
        {
            Round(deployment, Weights, table, report: round == 1);
        }
    }

    private static void Round(ModelDeployment deployment, Func<string, TensorData> Weights, ResultTable table, bool report)
    {
        // The testbed plays manufacturer, provider (the export happens here) and data owner apart.
        var clock = Stopwatch.StartNew();
        using Testbed bed = Testbed.Create(deployment.Config, deployment.Rope, Weights, new TestbedOptions
        {
            MaxContext = deployment.MaxContext, MaxBatchTokens = deployment.MaxBatchTokens, Precision = deployment.Precision,
        }, "bench");
        double exportMs = clock.Elapsed.TotalMilliseconds;

        clock.Restart();
        byte[] digest = bed.ReleaseKey();
        double releaseMs = clock.Elapsed.TotalMilliseconds;

        using CausalLM llama = CausalLM.LoadConfidential(bed.Runtime, bed.Deployment, bed.Package, digest);
        if (!report)
        {
            return;
        }
        LoadTimings t = llama.Timings!;
        double mb = llama.UnlockedBytes / 1e6;
        Console.WriteLine($"package {bed.Package.Length / 1e6:F1} MB, plaintext weights {mb:F1} MB");
        Console.WriteLine($"export (provider side) {exportMs:F0} ms; attestation + key release {releaseMs:F1} ms");
        Console.WriteLine($"stage {t.Stage.TotalMilliseconds:F1} ms, open {t.Open.TotalMilliseconds:F1} ms, unlock {t.Unlock.TotalMilliseconds:F1} ms ({mb / 1e3 / t.Unlock.TotalSeconds:F2} GB/s), attest task list {t.Attest.TotalMilliseconds:F1} ms");
        table.AddNote($"| attestation + key release | {releaseMs:F1} ms |");
        table.AddNote($"| stage {bed.Package.Length / 1e6:F0} MB package (DMA) | {t.Stage.TotalMilliseconds:F1} ms |");
        table.AddNote($"| open package on device (signature, policy, key commitment) | {t.Open.TotalMilliseconds:F1} ms |");
        table.AddNote($"| unlock {mb:F0} MB into locked HBM | {t.Unlock.TotalMilliseconds:F1} ms = {mb / 1e3 / t.Unlock.TotalSeconds:F2} GB/s |");
        table.AddNote($"| task-list measurement at load | {t.Attest.TotalMilliseconds:F1} ms |");
    }
}
