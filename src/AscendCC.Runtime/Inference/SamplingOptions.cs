namespace AscendCC.Runtime.Inference;

/// <summary>
/// How the next token is chosen, on the device: the repetition penalties and min-p first (as llama.cpp
/// applies them), then greedy or temperature / top-k / top-p sampling.
/// </summary>
/// <param name="Temperature">0 for greedy (argmax).</param>
/// <param name="TopK">Keep the k most likely tokens; 0 = off.</param>
/// <param name="TopP">Nucleus threshold; 1 = off.</param>
/// <param name="Seed">Seed of the device's generator.</param>
/// <param name="MinP">Drop tokens less likely than this fraction of the most likely one (before temperature); 0 = off.</param>
/// <param name="RepeatPenalty">Divides a recent token's positive logit and multiplies a negative one; 1 = off.</param>
/// <param name="RepeatLastN">How many of the most recent tokens (prompt and reply) the penalties look at; −1 = the whole context.</param>
/// <param name="FrequencyPenalty">Subtracted from a recent token's logit per occurrence; 0 = off.</param>
/// <param name="PresencePenalty">Subtracted once from every recent token's logit; 0 = off.</param>
public sealed record SamplingOptions(float Temperature = 0f, int TopK = 0, float TopP = 1f, ulong Seed = 42,
    float MinP = 0f, float RepeatPenalty = 1f, int RepeatLastN = 64, float FrequencyPenalty = 0f, float PresencePenalty = 0f)
{
    /// <summary>Greedy decoding.</summary>
    public static SamplingOptions Greedy { get; } = new();

    /// <summary>Throws when a setting is outside its range (the same rules the device's prompt decoder applies).</summary>
    /// <exception cref="ArgumentException">A setting is out of range; the message names it and its range.</exception>
    public void Validate() => ToPromptSampling().Validate();

    /// <summary>The settings as they travel sealed in a data owner's prompt.</summary>
    public Protocol.Messages.PromptSampling ToPromptSampling() =>
        new(Temperature, TopK, TopP, Seed, MinP, RepeatPenalty, RepeatLastN, FrequencyPenalty, PresencePenalty);
}
