using AscendCC.Device.Hbm;
using AscendCC.Protocol.Packaging;

namespace AscendCC.Device.Confidential;

/// <summary>
/// A confidential context: one opened model package and everything that may hold plaintext because of
/// it — the weights unlocked from it, the activations, KV cache and workspace its attested task lists
/// bind, and the data-owner session whose prompt those regions currently hold. Security state lives
/// here, never in the device as a whole: a task list attested against this package's measurement may
/// bind only this context's regions, a session bound to this context is answered only here, and the
/// regions are scrubbed before they hold another session's data.
/// </summary>
internal sealed class ConfidentialContext
{
    private readonly List<HbmRegion> _regions = new();

    public ConfidentialContext(int id, byte[] identity, byte[] expectedMeasurement, string modelName)
    {
        Id = id;
        Identity = identity;
        ExpectedMeasurement = expectedMeasurement;
        ModelName = modelName;
    }

    /// <summary>The package handle the host opened it under.</summary>
    public int Id { get; }

    /// <summary>The package's <see cref="PackageIdentity"/> (provider key and model name): how the graph measurement names its weights.</summary>
    public byte[] Identity { get; }

    /// <summary>The graph measurement the provider signed: the only task list this context runs.</summary>
    public byte[] ExpectedMeasurement { get; }

    /// <summary>The manifest's model name (for messages).</summary>
    public string ModelName { get; }

    /// <summary>The package reader while the package is open (unlocks need it); null after ClosePackage.</summary>
    public ModelPackageReader? Reader { get; set; }

    /// <summary>The staged package bytes the reader reads in place, while open.</summary>
    public UnmanagedMemoryStream? Stream { get; set; }

    /// <summary>The staging region pinned while the package is open.</summary>
    public HbmRegion? Staging { get; set; }

    /// <summary>The data-owner session whose data the context's regions hold, or null.</summary>
    public DataSessionState? Active { get; set; }

    /// <summary>The pass in progress: set by prompt_open, committed by token_seal; null between passes.</summary>
    public PendingStep? Pending { get; set; }

    /// <summary>
    /// Batched programs: the session each KV-cache slot holds (null: free), sized by the first batched
    /// pass; null for a single-sequence context, which holds <see cref="Active"/> instead.
    /// </summary>
    public DataSessionState?[]? Slots { get; set; }

    /// <summary>Batched programs: the regions laid out one slice per slot (prompt, history, generator, settings, last token), with the slice's bytes.</summary>
    public List<(HbmRegion Region, long SliceBytes)> SlotRegions { get; } = new();

    /// <summary>Batched programs: the pass in progress, one entry per segment in table order (set by prompt_open_segments, committed by token_seal_segments).</summary>
    public PendingStep[]? PendingSegments { get; set; }

    /// <summary>
    /// Zeroes slot <paramref name="slot"/> of a batched program: its slice of every KV-cache region of
    /// the context and of every <see cref="SlotRegions"/> entry, so nothing of the session that held the
    /// slot reaches the next one (the other slots' sessions are untouched).
    /// </summary>
    public void ScrubSlot(int slot)
    {
        int slots = Slots!.Length;
        foreach (HbmRegion r in _regions)
        {
            if (r.Tag == Device.RegionTag.KvCache && r.Size % slots == 0)
            {
                Clear(r, slot * (r.Size / slots), r.Size / slots);
            }
        }
        foreach ((HbmRegion r, long slice) in SlotRegions)
        {
            Clear(r, slot * slice, slice);
        }

        static unsafe void Clear(HbmRegion r, long offset, long bytes) => System.Runtime.InteropServices.NativeMemory.Clear(r.Data + offset, (nuint)bytes);
    }

    /// <summary>Regions owned by this context.</summary>
    public IReadOnlyList<HbmRegion> Regions => _regions;

    /// <summary>Makes <paramref name="region"/> this context's.</summary>
    public void Claim(HbmRegion region)
    {
        region.Owner = this;
        _regions.Add(region);
    }

    /// <summary>Forgets a freed region.</summary>
    public void Forget(HbmRegion region) => _regions.Remove(region);

    /// <summary>
    /// Zeroes everything the context computed for a session (activations, KV cache, workspace; not the
    /// weights), so nothing of one session's prompt, cache or sampled token reaches the next session.
    /// </summary>
    public void ScrubSessionState()
    {
        foreach (HbmRegion r in _regions)
        {
            if (r.Tag != Device.RegionTag.Weights && r.Tag != Device.RegionTag.OperatorBinary)
            {
                r.Scrub();
            }
        }
        Pending = null;
        PendingSegments = null;
    }

    /// <summary>Closes the package (the regions stay owned until freed).</summary>
    public void ClosePackage()
    {
        Reader?.Dispose();
        Reader = null;
        Stream?.Dispose();
        Stream = null;
        if (Staging is not null)
        {
            Staging.PinCount--;
            Staging = null;
        }
    }
}

/// <summary>A data-owner session as the firmware tracks it.</summary>
internal sealed class DataSessionState
{
    public DataSessionState(int id) => Id = id;

    /// <summary>The security engine's session id.</summary>
    public int Id { get; }

    /// <summary>The context the session is bound to for its lifetime (null until its first prompt is opened).</summary>
    public ConfidentialContext? Context { get; set; }

    /// <summary>Tokens of the prompt opened last.</summary>
    public int PromptLength { get; set; }

    /// <summary>The next position the session's context continues from.</summary>
    public int Position { get; set; }

    /// <summary>Batched programs: the KV-cache slot it holds in its context, or −1 (none: its next prompt must be opened).</summary>
    public int Slot { get; set; } = -1;

    /// <summary>The data owner's sampling settings, from its sealed prompt.</summary>
    public Protocol.Messages.PromptSampling Sampling { get; set; }
}

/// <summary>A pass prompt_open began and token_seal has not yet ended.</summary>
/// <param name="Session">The session it answers.</param>
/// <param name="Start">First position fed.</param>
/// <param name="Seq">Tokens fed.</param>
/// <param name="Emit">Whether it ends in a token for the data owner.</param>
internal sealed record PendingStep(DataSessionState Session, int Start, int Seq, bool Emit);
