using LLama;
using LLama.Native;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>llama.cpp's own greedy decoding (through LLamaSharp), the reference the device's tokens are compared with.</summary>
internal static class LlamaCppGreedy
{
    /// <summary>
    /// llama.cpp's last-position logits after <paramref name="prompt"/> on the GGUF at
    /// <paramref name="path"/> (CPU, 2 threads, a 128-token context).
    /// </summary>
    public static float[] LastLogits(string path, int[] prompt)
    {
        var parameters = new LLama.Common.ModelParams(path) { ContextSize = 128, BatchSize = 128, GpuLayerCount = 0, Threads = 2 };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        float[] logits = [];
        Generate(context, prompt, 1, (_, l, _) => logits = l.ToArray());
        return logits;
    }

    /// <summary>How many tokens two generations share before their first difference.</summary>
    public static int Agreement(IReadOnlyList<int> a, IReadOnlyList<int> b)
    {
        int i = 0;
        while (i < a.Count && i < b.Count && a[i] == b[i])
        {
            i++;
        }
        return i;
    }

    /// <summary>Sees one step's logits and the token picked from them.</summary>
    public delegate void ObserveStep(int step, ReadOnlySpan<float> logits, int picked);

    /// <summary>
    /// Feeds <paramref name="prompt"/>, then takes the arg-max of the last position's logits
    /// <paramref name="steps"/> times; <paramref name="observe"/> sees each step's logits and pick before
    /// the pick is fed.
    /// </summary>
    public static List<int> Generate(LLamaContext context, IReadOnlyList<int> prompt, int steps, ObserveStep? observe = null)
    {
        var tokens = new List<int>(steps);
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Count; i++)
        {
            batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Count - 1);
        }
        int position = prompt.Count;
        for (int step = 0; step < steps; step++)
        {
            Assert.That(context.Decode(batch), Is.EqualTo(DecodeResult.Ok), $"llama_decode at step {step}");
            Span<float> logits = context.NativeHandle.GetLogitsIth(batch.TokenCount - 1);
            int next = 0;
            for (int v = 1; v < logits.Length; v++)
            {
                if (logits[v] > logits[next])
                {
                    next = v;
                }
            }
            tokens.Add(next);
            observe?.Invoke(step, logits, next);
            batch.Clear();
            batch.Add(next, position++, LLamaSeqId.Zero, true);
        }
        return tokens;
    }
}
