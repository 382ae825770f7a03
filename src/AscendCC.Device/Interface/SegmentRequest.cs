namespace AscendCC.Device;

/// <summary>
/// One row of the host's request table for a confidential batched pass (<c>prompt_open_segments</c>):
/// 8-byte slots per segment, in the order the pass feeds them; the host's <see cref="StepBlock"/>
/// says how many (<see cref="StepBlock.Segments"/>). The host asks; the device checks every field
/// against the session's own state and computes the segment table, the tokens and the step block the
/// program reads itself.
/// </summary>
public static class SegmentRequest
{
    /// <summary>The data-owner session the segment feeds.</summary>
    public const int Session = 0;

    /// <summary><see cref="StepBlock.ModeDecode"/>, <see cref="StepBlock.ModeOpenPrompt"/> or <see cref="StepBlock.ModeContinuePrompt"/>.</summary>
    public const int Mode = 1;

    /// <summary>
    /// The KV-cache slot: for an open, the slot the host gives the session (a session that held
    /// another slot leaves it; one that held this slot is evicted and must open its prompt again);
    /// otherwise it must be the slot the session holds.
    /// </summary>
    public const int Slot = 2;

    /// <summary>Position of the segment's first token (0 for an open; the session's position otherwise).</summary>
    public const int Start = 3;

    /// <summary>Tokens the segment feeds (1 for a decode).</summary>
    public const int Seq = 4;

    /// <summary>Slots per segment.</summary>
    public const int Count = 5;
}
