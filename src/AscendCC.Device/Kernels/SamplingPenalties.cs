using System.Runtime.CompilerServices;

namespace AscendCC.Device.Kernels;

/// <summary>
/// Logit adjustments applied before <see cref="Sampling"/> draws, as llama.cpp's sampler chain applies
/// them: the repetition penalties over the most recent tokens, then min-p. Both work in place on a copy
/// of the logits (the sampler's scratch), so the logits themselves stay what the classifier wrote.
/// Nothing is allocated: repeated tokens are found by searching the window itself.
/// </summary>
internal static class SamplingPenalties
{
    /// <summary>
    /// llama.cpp's penalties: every distinct token in <paramref name="recent"/> has its logit divided by
    /// <paramref name="repeatPenalty"/> when positive and multiplied by it otherwise (CTRL's repetition
    /// penalty), then lowered by count × <paramref name="frequencyPenalty"/> + <paramref name="presencePenalty"/>
    /// (OpenAI's penalties). Tokens outside the vocabulary are ignored (they cannot have been fed).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Apply(Span<float> logits, ReadOnlySpan<int> recent, float repeatPenalty, float frequencyPenalty, float presencePenalty)
    {
        Validate(repeatPenalty, frequencyPenalty, presencePenalty);
        if (!IsActive(repeatPenalty, frequencyPenalty, presencePenalty))
        {
            return;
        }
        for (int i = 0; i < recent.Length; i++)
        {
            int token = recent[i];
            // Each distinct token once, at its first occurrence in the window.
            if ((uint)token >= (uint)logits.Length || recent[..i].Contains(token))
            {
                continue;
            }
            int count = 1 + recent[(i + 1)..].Count(token);
            ref float logit = ref logits[token];
            logit = logit <= 0f ? logit * repeatPenalty : logit / repeatPenalty;
            logit -= (count * frequencyPenalty) + presencePenalty;
        }
    }

    /// <summary>
    /// Min-p: removes (sets to −∞) every token whose probability is below <paramref name="minP"/> times the
    /// most likely token's, on the distribution before temperature, as llama.cpp orders it. Since
    /// p_i / p_max = exp(l_i − l_max), that is every logit below l_max + ln(minP); the most likely token
    /// always stays. 0 keeps every token.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ApplyMinP(Span<float> logits, float minP)
    {
        if (!(minP >= 0f && minP <= 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(minP), minP, "min-p must be in [0, 1].");
        }
        if (minP == 0f || logits.IsEmpty)
        {
            return;
        }
        float max = Reductions.Max(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(logits), logits.Length);
        float threshold = max + MathF.Log(minP);
        for (int i = 0; i < logits.Length; i++)
        {
            if (logits[i] < threshold)
            {
                logits[i] = float.NegativeInfinity;
            }
        }
    }

    /// <summary>True when <see cref="Apply"/> changes anything.</summary>
    public static bool IsActive(float repeatPenalty, float frequencyPenalty, float presencePenalty) =>
        repeatPenalty != 1f || frequencyPenalty != 0f || presencePenalty != 0f;

    private static void Validate(float repeatPenalty, float frequencyPenalty, float presencePenalty)
    {
        if (!(repeatPenalty > 0f) || !float.IsFinite(repeatPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(repeatPenalty), repeatPenalty, "the repeat penalty must be finite and > 0 (1 = off).");
        }
        if (!float.IsFinite(frequencyPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(frequencyPenalty), frequencyPenalty, "the frequency penalty must be finite (0 = off).");
        }
        if (!float.IsFinite(presencePenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(presencePenalty), presencePenalty, "the presence penalty must be finite (0 = off).");
        }
    }
}
