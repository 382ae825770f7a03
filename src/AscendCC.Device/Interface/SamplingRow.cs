namespace AscendCC.Device;

/// <summary>
/// One sequence's row of a batched program's sampling table (<c>sample_segments</c>): 8-byte slots,
/// reals as a double's bits, as in <see cref="StepBlock"/>. Outside confidential mode the host writes
/// the row when a sequence joins; in a confidential program the device writes it from the data
/// owner's sealed prompt.
/// </summary>
public static class SamplingRow
{
    /// <summary>Sampling temperature (a double's bits; 0 = greedy).</summary>
    public const int Temperature = 0;

    /// <summary>Top-k (0 = all).</summary>
    public const int TopK = 1;

    /// <summary>Top-p (a double's bits).</summary>
    public const int TopP = 2;

    /// <summary>Min-p (a double's bits; 0 = off).</summary>
    public const int MinP = 3;

    /// <summary>Repetition penalty (a double's bits; 1 = off, and 0).</summary>
    public const int RepeatPenalty = 4;

    /// <summary>How many of the most recent tokens the penalties look at (−1 = the whole context).</summary>
    public const int RepeatLastN = 5;

    /// <summary>Frequency penalty (a double's bits; 0 = off).</summary>
    public const int FrequencyPenalty = 6;

    /// <summary>Presence penalty (a double's bits; 0 = off).</summary>
    public const int PresencePenalty = 7;

    /// <summary>Slots per row.</summary>
    public const int Count = 8;

    /// <summary>Writes <paramref name="sampling"/> as a row (the host's, CC off, and the device's, from a sealed prompt, alike).</summary>
    public static void Write(Span<long> row, Protocol.Messages.PromptSampling sampling)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(row.Length, Count, nameof(row));
        row[Temperature] = BitConverter.DoubleToInt64Bits(sampling.Temperature);
        row[TopK] = sampling.TopK;
        row[TopP] = BitConverter.DoubleToInt64Bits(sampling.TopP);
        row[MinP] = BitConverter.DoubleToInt64Bits(sampling.MinP);
        row[RepeatPenalty] = BitConverter.DoubleToInt64Bits(sampling.RepeatPenalty);
        row[RepeatLastN] = sampling.RepeatLastN;
        row[FrequencyPenalty] = BitConverter.DoubleToInt64Bits(sampling.FrequencyPenalty);
        row[PresencePenalty] = BitConverter.DoubleToInt64Bits(sampling.PresencePenalty);
    }
}
