using AscendCC.Device.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.Benchmarks;

/// <summary>
/// One token picked from a 32000-logit row, as the device's <c>sample</c> does it each pass: without
/// penalties (temperature 0.8, top-p 0.95), and with llama.cpp's repetition/frequency/presence
/// penalties over the last 64 tokens plus min-p 0.05 (a scratch copy of the logits, the window scan,
/// the threshold pass). TorchSharp does the same work with its own ops: gather/where/scatter for the
/// penalties, softmax, a min-p mask, sort + cumsum for top-p, and multinomial.
/// </summary>
internal sealed class SamplingSuite : IBenchmarkSuite
{
    private const int Vocab = 32000, Window = 64;

    public string Name => "sampling";

    public string Description => "the device's sampler at vocabulary 32000, without and with llama.cpp's penalties and min-p, vs TorchSharp";

    public void Run(BenchmarkOptions options, ResultTable table)
    {
        torch.set_num_threads(1);
        var rng = new Random(5);
        float[] logits = [.. Enumerable.Range(0, Vocab).Select(_ => (float)(rng.NextDouble() * 12 - 6))];
        int[] recent = [.. Enumerable.Range(0, Window).Select(_ => rng.Next(Vocab))];
        float[] scratch = new float[Vocab];
        double budgetMs = options.Quick ? 300 : 2000;
        ulong state = 42;
        using Tensor t = tensor(logits);
        using Tensor ids = tensor(recent.Distinct().Select(i => (long)i).ToArray());
        using Tensor counts = tensor(recent.Distinct().Select(i => (float)recent.Count(r => r == i)).ToArray());
        using var generator = new torch.Generator(42);

        if (options.Includes("plain"))
        {
            void Ours() => Sampling.Sample(logits, 0.8f, 0, 0.95f, ref state, scratch);
            void Torch()
            {
                using var scope = NewDisposeScope();
                TopP((t / 0.8f).softmax(0), 0.95f, generator);
            }
            (Timing ours, Timing theirs) = Measure.Compare(Ours, Torch, warmup: 20, Measure.RepetitionsFor(0.3, budgetMs));
            table.Add(new ResultRow("plain: T 0.8, top-p 0.95", ours, theirs, Vocab * 1e3, "M logits/s"));
        }
        if (options.Includes("penalties"))
        {
            void Ours()
            {
                logits.CopyTo(scratch, 0);
                SamplingPenalties.Apply(scratch, recent, 1.1f, 0.1f, 0.1f);
                SamplingPenalties.ApplyMinP(scratch, 0.05f);
                Sampling.Sample(scratch, 0.8f, 0, 0.95f, ref state, scratch);
            }
            void Torch()
            {
                using var scope = NewDisposeScope();
                Tensor x = t.clone();
                Tensor picked = x.gather(0, ids);
                x.scatter_(0, ids, where(picked <= 0f, picked * 1.1f, picked / 1.1f) - ((counts * 0.1f) + 0.1f));
                Tensor p = x.softmax(0);
                x = x.masked_fill(p < p.max() * 0.05f, float.NegativeInfinity);
                TopP((x / 0.8f).softmax(0), 0.95f, generator);
            }
            (Timing ours, Timing theirs) = Measure.Compare(Ours, Torch, warmup: 20, Measure.RepetitionsFor(0.3, budgetMs));
            table.Add(new ResultRow("penalties (last 64) + min-p 0.05, T 0.8, top-p 0.95", ours, theirs, Vocab * 1e3, "M logits/s"));
        }
    }

    /// <summary>The nucleus: sort descending, keep through the first cumulative ≥ p, draw one.</summary>
    private static long TopP(Tensor probs, float p, torch.Generator generator)
    {
        (Tensor sorted, Tensor order) = probs.sort(descending: true);
        Tensor keep = (sorted.cumsum(0) - sorted) < p;
        Tensor kept = sorted * keep;
        return order[multinomial(kept / kept.sum(), 1, generator: generator)].item<long>();
    }
}
