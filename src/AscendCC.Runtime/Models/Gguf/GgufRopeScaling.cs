namespace AscendCC.Runtime.Models.Gguf;

/// <summary>
/// RoPE scaling in a llama GGUF, as llama.cpp's converter writes it: linear scaling as
/// <c>llama.rope.scaling.type</c> "linear" and <c>llama.rope.scaling.factor</c>; Llama 3.1+'s llama3
/// scaling as a <c>rope_freqs.weight</c> tensor, one divisor per rotary frequency, from which the
/// parameters are recovered (the divisors are 1 for the frequencies kept, the factor for those
/// interpolated, and a blend whose reciprocal is linear in 1 / wavelength in between).
/// </summary>
internal static class GgufRopeScaling
{
    /// <summary>The name of llama3 scaling's per-frequency divisors.</summary>
    public const string FreqsTensor = "rope_freqs.weight";

    /// <summary>How closely recovered llama3 parameters must reproduce the file's divisors (relative).</summary>
    private const double Tolerance = 1e-4;

    /// <summary>
    /// The scaling <paramref name="file"/> declares for rotary dimension <paramref name="rotaryDim"/> and
    /// base <paramref name="theta"/>: null for none; refused, naming what the file holds, for kinds this
    /// runtime does not apply (YaRN, LongRoPE) or divisors no llama3 parameters reproduce.
    /// </summary>
    public static RopeScaling? Read(GgufFile file, string architecture, int rotaryDim, double theta)
    {
        string type = file.Metadata.GetString($"{architecture}.rope.scaling.type") ?? "none";
        GgufTensorInfo? freqs = file.FindTensor(FreqsTensor);
        if (freqs is null && type == "none")
        {
            return null;
        }
        if (freqs is null && type == RopeScaling.LinearType)
        {
            double factor = file.Metadata.GetDouble($"{architecture}.rope.scaling.factor")
                ?? throw new CheckpointFormatException(file.Path, null, $"declares linear RoPE scaling without {architecture}.rope.scaling.factor.", "The file is malformed; convert it again.");
            return RopeScaling.Linear(factor);
        }
        if (freqs is null || type != "none")
        {
            throw new CheckpointFormatException(file.Path, null, $"uses RoPE scaling '{type}'{(freqs is null ? "" : $" with {FreqsTensor}")}, which this runtime does not apply; it applies linear scaling and Llama 3's ({FreqsTensor}).",
                "Use a model without this scaling, or its Hugging Face folder if its rope_scaling is linear or llama3.");
        }
        if (freqs.ElementCount != rotaryDim / 2)
        {
            throw new CheckpointFormatException(file.Path, FreqsTensor, $"has {freqs.ElementCount} divisors; the rotary dimension {rotaryDim} has {rotaryDim / 2} frequencies.", "The file is malformed; convert it again.");
        }
        var divisors = new float[freqs.ElementCount];
        file.ReadFloat32(freqs, divisors);
        if (divisors.All(d => d == 1f))
        {
            // Every frequency kept: plain RoPE.
            return null;
        }
        return FitLlama3(divisors, rotaryDim, theta)
            ?? throw new CheckpointFormatException(file.Path, FreqsTensor, "holds per-frequency divisors that no llama3 scaling (factor, low_freq_factor, high_freq_factor, original_max_position_embeddings) reproduces.",
                "Use the model's Hugging Face folder if its rope_scaling is linear or llama3.");
    }

    /// <summary>What <see cref="GgufWriter.WriteLlama"/> writes for <paramref name="scaling"/>: metadata for linear, the divisors tensor for llama3.</summary>
    public static void Write(GgufWriter writer, string architecture, RopeScaling scaling, int rotaryDim, double theta)
    {
        if (scaling.Type == RopeScaling.LinearType)
        {
            writer.Add($"{architecture}.rope.scaling.type", RopeScaling.LinearType);
            writer.Add($"{architecture}.rope.scaling.factor", (float)scaling.Factor);
            return;
        }
        float[] divisors = Llama3Divisors(scaling, rotaryDim, theta);
        writer.AddTensor(FreqsTensor, [divisors.Length], GgufTensorType.F32, () => divisors);
    }

    /// <summary>
    /// llama3 scaling's divisor per rotary frequency, as llama.cpp's convert_hf_to_gguf.py computes them:
    /// 1 where the wavelength is below original / high_freq_factor, the factor above original /
    /// low_freq_factor, and 1 / ((1 − smooth) / factor + smooth) in between.
    /// </summary>
    public static float[] Llama3Divisors(RopeScaling scaling, int rotaryDim, double theta)
    {
        var divisors = new float[rotaryDim / 2];
        double low = scaling.OriginalMaxPositionEmbeddings / scaling.LowFreqFactor, high = scaling.OriginalMaxPositionEmbeddings / scaling.HighFreqFactor;
        for (int i = 0; i < divisors.Length; i++)
        {
            double wavelength = Wavelength(i, rotaryDim, theta);
            double smooth = ((scaling.OriginalMaxPositionEmbeddings / wavelength) - scaling.LowFreqFactor) / (scaling.HighFreqFactor - scaling.LowFreqFactor);
            divisors[i] = wavelength < high ? 1f : wavelength > low ? (float)scaling.Factor : (float)(1 / (((1 - smooth) / scaling.Factor) + smooth));
        }
        return divisors;
    }

    /// <summary>
    /// The llama3 parameters that reproduce <paramref name="divisors"/> (not all 1), or null. The factor is the
    /// largest divisor; in the blend, smooth = (1 / d − 1 / factor) / (1 − 1 / factor) = A / wavelength − B
    /// with A = original / (high − low) and B = low / (high − low), so two blended frequencies give A and
    /// B, and with low_freq_factor 1 (every llama3 configuration published) high = 1 + 1 / B and
    /// original = A / B. With fewer than two blended frequencies Llama 3.1's own (low 1, high 4,
    /// original 8192) are tried. Either way the parameters must reproduce every divisor.
    /// </summary>
    internal static RopeScaling? FitLlama3(float[] divisors, int rotaryDim, double theta)
    {
        double factor = divisors.Max();
        if (!(factor > 1) || divisors.Any(d => !(d >= 1 - Tolerance) || !float.IsFinite(d)))
        {
            return null;
        }
        var blended = Enumerable.Range(0, divisors.Length).Where(i => divisors[i] > 1 + Tolerance && divisors[i] < factor * (1 - Tolerance)).ToArray();
        RopeScaling candidate;
        if (blended.Length >= 2)
        {
            double Smooth(int i) => ((1 / (double)divisors[i]) - (1 / factor)) / (1 - (1 / factor));
            int first = blended[0], last = blended[^1];
            double x1 = 1 / Wavelength(first, rotaryDim, theta), x2 = 1 / Wavelength(last, rotaryDim, theta);
            double a = (Smooth(first) - Smooth(last)) / (x1 - x2);
            double b = (a * x1) - Smooth(first);
            if (!(a > 0) || !(b > 0))
            {
                return null;
            }
            double high = Math.Round(1 + (1 / b), 4);
            double original = Math.Round(a / b);
            if (!(original >= 1) || original > int.MaxValue)
            {
                return null;
            }
            candidate = RopeScaling.Llama3(factor, 1, high, (int)original);
        }
        else
        {
            candidate = RopeScaling.Llama3(factor, 1, 4, 8192);
        }
        float[] reproduced = Llama3Divisors(candidate, rotaryDim, theta);
        return reproduced.Zip(divisors).All(p => Math.Abs(p.First - p.Second) <= Tolerance * p.Second) ? candidate : null;
    }

    private static double Wavelength(int i, int rotaryDim, double theta)
    {
        // convert_hf_to_gguf.py: freqs = 1 / base ** (arange(0, dim, 2, float32) / dim), a float32 tensor.
        float inverseFrequency = (float)(1.0 / Math.Pow(theta, 2.0 * i / rotaryDim));
        return 2 * Math.PI / inverseFrequency;
    }
}
