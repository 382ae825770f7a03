namespace AscendCC.Device;

/// <summary>
/// The parameter block of one forward pass ("step"): 8-byte slots that a program's launches read as
/// scalars, so one task list serves prefill chunks and decode steps. Outside confidential mode the host
/// writes it and the program reads it directly. In a confidential program the host still writes one
/// (it asks for a session, a mode and the positions), but <c>prompt_open</c> checks the request against
/// the session's state on the device and writes the block the program actually reads into locked
/// memory, computing every other slot itself: the host cannot change positions, lengths or sampling
/// between the launches of a pass.
/// </summary>
public static class StepBlock
{
    /// <summary>Tokens fed in this pass.</summary>
    public const int Seq = 0;

    /// <summary>Position of the first fed token.</summary>
    public const int Start = 1;

    /// <summary>Index of the last fed row (Seq − 1).</summary>
    public const int Last = 2;

    /// <summary>Seq × hidden size (element count of the residual stream).</summary>
    public const int SeqDim = 3;

    /// <summary>Seq × intermediate size (element count of the MLP's hidden activations).</summary>
    public const int SeqHidden = 4;

    /// <summary>Sampling temperature (a double's bits).</summary>
    public const int Temperature = 5;

    /// <summary>Top-k (0 = all).</summary>
    public const int TopK = 6;

    /// <summary>Top-p (a double's bits).</summary>
    public const int TopP = 7;

    /// <summary>Confidential: the data-owner session the pass is for.</summary>
    public const int Session = 8;

    /// <summary>Confidential: <see cref="ModeDecode"/>, <see cref="ModeOpenPrompt"/> or <see cref="ModeContinuePrompt"/>.</summary>
    public const int Mode = 9;

    /// <summary>Min-p (a double's bits; 0 = off).</summary>
    public const int MinP = 10;

    /// <summary>Repetition penalty (a double's bits; 1 = off, and 0, so that a block left zero samples without penalties).</summary>
    public const int RepeatPenalty = 11;

    /// <summary>How many of the most recent tokens the penalties look at (−1 = the whole context, 0 = none).</summary>
    public const int RepeatLastN = 12;

    /// <summary>Frequency penalty (a double's bits; 0 = off).</summary>
    public const int FrequencyPenalty = 13;

    /// <summary>Presence penalty (a double's bits; 0 = off).</summary>
    public const int PresencePenalty = 14;

    /// <summary>
    /// Batched programs: how many segments (sequences) the pass feeds, each with its own slot and
    /// positions in the pass's segment table; <see cref="Seq"/> is then the rows of all of them.
    /// </summary>
    public const int Segments = 15;

    /// <summary>Number of slots.</summary>
    public const int Count = 16;

    /// <summary>Bytes of the block.</summary>
    public const int Bytes = Count * 8;

    /// <summary>Decode: feed back the token the previous pass sampled.</summary>
    public const int ModeDecode = 0;

    /// <summary>Open the data owner's prompt record and feed its first chunk.</summary>
    public const int ModeOpenPrompt = 1;

    /// <summary>Feed the next chunk of the opened prompt.</summary>
    public const int ModeContinuePrompt = 2;
}
