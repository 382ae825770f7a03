namespace AscendCC.Device.Kernels;

/// <summary>Which rescaling of RoPE's inverse frequencies to apply (Hugging Face rope_scaling.rope_type).</summary>
internal enum RopeScalingKind
{
    /// <summary>Plain RoPE: the frequencies as computed.</summary>
    None = 0,

    /// <summary>"linear" (position interpolation): every frequency divided by the factor.</summary>
    Linear = 1,

    /// <summary>"llama3": low frequencies divided by the factor, high ones kept, a smooth blend between.</summary>
    Llama3 = 2,
}

/// <summary>
/// Rescaling of RoPE's inverse frequencies for a context longer than the model was pre-trained on, as
/// Hugging Face transformers' <c>_compute_linear_scaling_rope_parameters</c> and
/// <c>_compute_llama3_parameters</c> do. Neither type rescales attention (attention_factor = 1).
/// <c>default</c> is <see cref="RopeScalingKind.None"/>.
/// </summary>
/// <param name="Kind">The rescaling.</param>
/// <param name="Factor">The context extension factor (both kinds).</param>
/// <param name="LowFreqFactor">llama3: wavelengths above original / low_freq_factor are fully scaled.</param>
/// <param name="HighFreqFactor">llama3: wavelengths below original / high_freq_factor are kept.</param>
/// <param name="OriginalMaxPositions">llama3: original_max_position_embeddings, the pre-training context.</param>
internal readonly record struct RopeFrequencyScaling(RopeScalingKind Kind, double Factor, double LowFreqFactor, double HighFreqFactor, double OriginalMaxPositions)
{
    /// <summary>"linear" scaling by <paramref name="factor"/>.</summary>
    public static RopeFrequencyScaling Linear(double factor) => new(RopeScalingKind.Linear, factor, 0, 0, 0);

    /// <summary>"llama3" scaling (Llama 3.1: factor 8, low 1, high 4, original 8192).</summary>
    public static RopeFrequencyScaling Llama3(double factor, double lowFreqFactor, double highFreqFactor, double originalMaxPositions) =>
        new(RopeScalingKind.Llama3, factor, lowFreqFactor, highFreqFactor, originalMaxPositions);

    /// <summary>Throws unless the parameters make sense for <see cref="Kind"/>.</summary>
    public void Validate()
    {
        static void Positive(double value, string name)
        {
            if (!(value > 0) || !double.IsFinite(value))
            {
                throw new ArgumentOutOfRangeException(name, value, $"RoPE scaling {name} must be a positive finite number (got {value}).");
            }
        }
        switch (Kind)
        {
            case RopeScalingKind.None:
                return;
            case RopeScalingKind.Linear:
                Positive(Factor, "factor");
                return;
            case RopeScalingKind.Llama3:
                Positive(Factor, "factor");
                Positive(LowFreqFactor, "low_freq_factor");
                Positive(HighFreqFactor, "high_freq_factor");
                Positive(OriginalMaxPositions, "original_max_position_embeddings");
                // The blend divides by high - low; equal factors leave no band to blend over.
                if (!(HighFreqFactor > LowFreqFactor))
                {
                    throw new ArgumentOutOfRangeException(nameof(HighFreqFactor), HighFreqFactor, $"llama3 RoPE scaling needs high_freq_factor > low_freq_factor (got {HighFreqFactor} and {LowFreqFactor}).");
                }
                return;
            default:
                throw new ArgumentOutOfRangeException(nameof(Kind), Kind, $"Unknown RoPE scaling kind {(int)Kind}; known: 0 none, 1 linear, 2 llama3.");
        }
    }

    /// <summary>
    /// The rescaled inverse frequency. Computed in double and rounded once to float; transformers
    /// computes the same in float32, so the two agree to about an ulp.
    /// </summary>
    public float Apply(float invFreq)
    {
        switch (Kind)
        {
            case RopeScalingKind.Linear:
                return (float)(invFreq / Factor);
            case RopeScalingKind.Llama3:
            {
                double inv = invFreq;
                double wavelen = 2 * Math.PI / inv;
                double lowFreqWavelen = OriginalMaxPositions / LowFreqFactor;
                double highFreqWavelen = OriginalMaxPositions / HighFreqFactor;
                if (wavelen < highFreqWavelen)
                {
                    // High frequencies turn many times within the original context: kept.
                    return invFreq;
                }
                if (wavelen > lowFreqWavelen)
                {
                    // Low frequencies never completed a turn in pre-training: interpolated like linear.
                    return (float)(inv / Factor);
                }
                // In between (bounds included, as transformers' ~(w < high) & ~(w > low)): blend.
                double smooth = (OriginalMaxPositions / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
                return (float)((1 - smooth) * inv / Factor + smooth * inv);
            }
            default:
                return invFreq;
        }
    }
}
