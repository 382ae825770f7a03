using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Token selection from logits: greedy argmax, or temperature / top-k / top-p (nucleus) sampling with
/// llama2.c's xorshift generator, so a seed reproduces llama2.c's token stream when top-k is off.
/// Nothing is allocated per call: sorting scratch is per thread and grows only with the vocabulary.
/// </summary>
internal static class Sampling
{
    /// <summary>Index of the largest logit; the first one on ties and the first NaN if any, as torch.argmax.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int Argmax(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("logits must not be empty.", nameof(logits));
        }
        float max = Reductions.Max(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(logits), logits.Length);
        if (float.IsNaN(max))
        {
            for (int i = 0; i < logits.Length; i++)
            {
                if (float.IsNaN(logits[i]))
                {
                    return i;
                }
            }
        }
        return logits.IndexOf(max);
    }

    /// <summary>
    /// The distribution <see cref="Sample(ReadOnlySpan{float}, float, int, float, ref ulong)"/> draws from, over
    /// the whole vocabulary (filtered tokens get 0): softmax(logits / temperature); then the
    /// <paramref name="topK"/> most probable tokens (0 = all), renormalised; then the smallest prefix of those,
    /// by descending probability, whose cumulative probability reaches <paramref name="topP"/> (1 = all; at least
    /// one token), renormalised. Temperature 0 is the one-hot argmax.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SamplingDistribution(ReadOnlySpan<float> logits, float temperature, int topK, float topP, Span<float> probs)
    {
        Validate(logits, temperature, topK, topP);
        KernelArgs.RequireLength(probs.Length, logits.Length, nameof(probs));
        KernelArgs.RequireSameOrDisjoint(logits, probs, nameof(logits), nameof(probs));
        if (temperature == 0f)
        {
            int best = Argmax(logits);
            probs.Clear();
            probs[best] = 1f;
            return;
        }
        int kept = Filter(logits, temperature, topK, topP, probs, out var candidates);
        if (kept >= 0)
        {
            probs.Clear();
            for (int c = 0; c < kept; c++)
            {
                probs[candidates[c].Index] = candidates[c].P;
            }
        }
    }

    /// <summary>
    /// Draws one token: argmax when <paramref name="temperature"/> is 0 (the generator is not advanced, as in
    /// llama2.c); otherwise one <see cref="RandomF32"/> inverted through <see cref="SamplingDistribution"/>.
    /// </summary>
    public static int Sample(ReadOnlySpan<float> logits, float temperature, int topK, float topP, ref ulong rngState)
    {
        Validate(logits, temperature, topK, topP);
        if (temperature == 0f)
        {
            return Argmax(logits);
        }
        var probs = Buffers.Probs(logits.Length);
        return SampleCore(logits, temperature, topK, topP, ref rngState, probs);
    }

    /// <summary>As <see cref="Sample(ReadOnlySpan{float}, float, int, float, ref ulong)"/> with caller-owned probability scratch.</summary>
    public static int Sample(ReadOnlySpan<float> logits, float temperature, int topK, float topP, ref ulong rngState, Span<float> probsScratch)
    {
        Validate(logits, temperature, topK, topP);
        if (temperature == 0f)
        {
            return Argmax(logits);
        }
        KernelArgs.RequireLength(probsScratch.Length, logits.Length, nameof(probsScratch));
        KernelArgs.RequireSameOrDisjoint(logits, probsScratch, nameof(logits), nameof(probsScratch));
        return SampleCore(logits, temperature, topK, topP, ref rngState, probsScratch);
    }

    /// <summary>llama2.c's random_u32: xorshift64* on <paramref name="state"/>.</summary>
    public static uint RandomU32(ref ulong state)
    {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return (uint)((state * 0x2545F4914F6CDD1DUL) >> 32);
    }

    /// <summary>llama2.c's random_f32: a float in [0, 1) from the top 24 bits of <see cref="RandomU32"/>.</summary>
    public static float RandomF32(ref ulong state) => (RandomU32(ref state) >> 8) / 16777216.0f;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int SampleCore(ReadOnlySpan<float> logits, float temperature, int topK, float topP, ref ulong rngState, Span<float> probs)
    {
        int kept = Filter(logits, temperature, topK, topP, probs, out var candidates);
        float coin = RandomF32(ref rngState);
        float cdf = 0f;
        if (kept < 0)
        {
            // Unfiltered: walk the vocabulary in index order, as llama2.c's sample_mult.
            for (int i = 0; i < probs.Length; i++)
            {
                cdf += probs[i];
                if (coin < cdf)
                {
                    return i;
                }
            }
            return probs.Length - 1; // rounding left the total just under the coin
        }
        // Filtered: walk the kept tokens by descending probability, as llama2.c's sample_topp.
        for (int c = 0; c < kept; c++)
        {
            cdf += candidates[c].P;
            if (coin < cdf)
            {
                return candidates[c].Index;
            }
        }
        return candidates[kept - 1].Index;
    }

    /// <summary>
    /// Writes softmax(logits / temperature) into probs. When top-k or top-p filters, returns how many
    /// candidates survive, sorted by descending probability and renormalised in <paramref name="candidates"/>;
    /// returns -1 when nothing was filtered (probs is then the distribution).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Filter(ReadOnlySpan<float> logits, float temperature, int topK, float topP, Span<float> probs, out Span<Candidate> candidates)
    {
        int n = logits.Length;
        Elementwise.Unary(new DivideOp(temperature), logits, probs);
        SoftmaxKernels.SoftmaxInPlace(probs);
        bool useTopK = topK > 0 && topK < n;
        bool useTopP = topP < 1f;
        candidates = default;
        if (!useTopK && !useTopP)
        {
            return -1;
        }

        var all = Buffers.Candidates(n);
        int count;
        if (useTopK)
        {
            count = SelectTopK(probs, topK, all);
        }
        else
        {
            // llama2.c's pre-filter: tokens below (1 - topP)/(n - 1) together hold less than 1 - topP,
            // so the nucleus is always complete before reaching them and they need not be sorted.
            float cutoff = (1f - topP) / (n - 1);
            count = 0;
            for (int i = 0; i < n; i++)
            {
                if (probs[i] >= cutoff)
                {
                    all[count++] = new Candidate(probs[i], i);
                }
            }
        }
        candidates = all[..count];
        candidates.Sort(default(DescendingProbability));

        if (useTopK)
        {
            Renormalise(candidates);
        }
        if (useTopP)
        {
            float cumulative = 0f;
            int keep = count;
            for (int c = 0; c < count; c++)
            {
                cumulative += candidates[c].P;
                if (cumulative >= topP)
                {
                    keep = c + 1;
                    break;
                }
            }
            candidates = candidates[..keep];
            Renormalise(candidates);
        }
        return candidates.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Renormalise(Span<Candidate> candidates)
    {
        float total = 0f;
        foreach (var c in candidates)
        {
            total += c.P;
        }
        float inv = 1f / total;
        for (int c = 0; c < candidates.Length; c++)
        {
            candidates[c] = new Candidate(candidates[c].P * inv, candidates[c].Index);
        }
    }

    // A bounded min-heap of the best k seen so far: O(n log k), no full sort of the vocabulary.
    // The root is the worst kept candidate, replaced whenever a better one arrives.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int SelectTopK(ReadOnlySpan<float> probs, int k, Span<Candidate> heap)
    {
        int size = 0;
        for (int i = 0; i < probs.Length; i++)
        {
            var c = new Candidate(probs[i], i);
            if (size < k)
            {
                int at = size++;
                while (at > 0)
                {
                    int parent = (at - 1) / 2;
                    if (!Worse(c, heap[parent]))
                    {
                        break;
                    }
                    heap[at] = heap[parent];
                    at = parent;
                }
                heap[at] = c;
            }
            else if (Worse(heap[0], c))
            {
                int at = 0;
                while (true)
                {
                    int child = 2 * at + 1;
                    if (child >= size)
                    {
                        break;
                    }
                    if (child + 1 < size && Worse(heap[child + 1], heap[child]))
                    {
                        child++;
                    }
                    if (!Worse(heap[child], c))
                    {
                        break;
                    }
                    heap[at] = heap[child];
                    at = child;
                }
                heap[at] = c;
            }
        }
        return size;
    }

    // Lower probability is worse; on equal probability the higher index is worse, so ties keep the first token.
    private static bool Worse(Candidate a, Candidate b) => a.P < b.P || (a.P == b.P && a.Index > b.Index);

    private static void Validate(ReadOnlySpan<float> logits, float temperature, int topK, float topP)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("logits must not be empty.", nameof(logits));
        }
        if (!(temperature >= 0f) || float.IsPositiveInfinity(temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be finite and ≥ 0.");
        }
        KernelArgs.RequireAtLeast(topK, 0, nameof(topK));
        if (!(topP > 0f && topP <= 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(topP), topP, "topP must be in (0, 1].");
        }
    }

    private readonly record struct Candidate(float P, int Index);

    private readonly struct DescendingProbability : IComparer<Candidate>
    {
        public int Compare(Candidate x, Candidate y) => Worse(y, x) ? -1 : Worse(x, y) ? 1 : 0;
    }

    private readonly struct DivideOp(float divisor) : IUnaryOp
    {
        public float Invoke(float x) => x / divisor;
        public Vector512<float> Invoke(Vector512<float> x) => x / Vector512.Create(divisor);
        public Vector256<float> Invoke(Vector256<float> x) => x / Vector256.Create(divisor);
    }

    /// <summary>Per-thread scratch that only ever grows, so steady-state sampling allocates nothing.</summary>
    private static class Buffers
    {
        [ThreadStatic]
        private static Candidate[]? t_candidates;

        [ThreadStatic]
        private static float[]? t_probs;

        public static Span<Candidate> Candidates(int n)
        {
            if (t_candidates is null || t_candidates.Length < n)
            {
                t_candidates = new Candidate[n];
            }
            return t_candidates.AsSpan(0, n);
        }

        public static Span<float> Probs(int n)
        {
            if (t_probs is null || t_probs.Length < n)
            {
                t_probs = new float[n];
            }
            return t_probs.AsSpan(0, n);
        }
    }
}
