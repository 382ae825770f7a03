using System.Buffers.Binary;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Trusted.DataOwners;
using static AscendCC.Attacks.AttackKit;

namespace AscendCC.Attacks;

/// <summary>
/// Attacks on confidential batched decode: one program answers several data owners at once, each in
/// its own KV-cache slot, and the host writes the per-segment requests (session, mode, slot,
/// positions) and stages the prompt records. The host also plays a data owner (it opens sessions of
/// its own) and tries to point a segment at another session's slot, feed a session or a slot twice,
/// stage one party's record for another's open, resume a session where it did not stop, or keep
/// using a session it evicted.
/// </summary>
public static partial class AttackCatalog
{
    // A property, not a field: the catalog's All is built by static initialisation, whose order across
    // partial files is not defined.
    private static TestbedOptions Batched => new() { MaxSequences = 3, MaxBatchTokens = 8 };

    private static IEnumerable<Attack> Batch()
    {
        yield return BatchAttack("Batch_HostSessionDecodesInTheVictimsSlot", "Context", "holds slot",
            "A victim and the host's own data-owner session decode side by side in a batched program. The host asks for its session's next decode in the victim's slot, so that its row would attend over the victim's KV cache and sample from the victim's history.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, (host.Session, StepBlock.ModeDecode, victim.Slot, host.Position, 1)), "the host's decode in the victim's slot")));
        yield return BatchAttack("Batch_VictimDecodesInTheHostsSlot", "Context", "holds slot",
            "The host asks for the victim's next decode in the host session's slot: the victim's token would be computed over the host's cache, and sealed for the victim with a history the host chose.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, (victim.Session, StepBlock.ModeDecode, host.Slot, victim.Position, 1)), "the victim's decode in the host's slot")));
        yield return BatchAttack("Batch_SessionOpenedTwiceInOnePass", "Context", "fed twice",
            "The host, as a data owner, seals two prompts on its own session and opens both in one pass, in the free slot and in its own: one session would hold two slots, its pass would seal two records for the same positions, and the state it leaves would name one slot while the table names another.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, [(host.Session, StepBlock.ModeOpenPrompt, 2, 0, Prompt.Length), (host.Session, StepBlock.ModeOpenPrompt, host.Slot, 0, Prompt.Length)],
                    [host.Record, host.SecondRecord]), "the host's session opened twice in a pass")));
        yield return BatchAttack("Batch_SlotFedTwiceInOnePass", "Context", "fed twice",
            "In one pass the host decodes the victim in its slot and opens a prompt of its own session in that same slot: the open would evict the victim after its request was checked, and the victim's row would run over a scrubbed cache and be sealed from a slot it no longer holds.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, [(victim.Session, StepBlock.ModeDecode, victim.Slot, victim.Position, 1), (host.Session, StepBlock.ModeOpenPrompt, victim.Slot, 0, Prompt.Length)],
                    [[], host.Record]), "an open in the slot a decode of the same pass names")));
        yield return BatchAttack("Batch_VictimResumedWhereItDidNotStop", "Context", "position:",
            "The host asks for the victim's decode two positions back, to overwrite its last keys and values and sample again from an earlier point.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, (victim.Session, StepBlock.ModeDecode, victim.Slot, victim.Position - 2, 1)), "the victim's decode two positions back")));
        yield return BatchAttack("Batch_VictimRecordStagedForTheHostsOpen", "R1", "failed authentication",
            "The host opens a new prompt on its own session but stages the victim's sealed prompt record at that segment's index, hoping the device opens the victim's prompt into the host's slot.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, [(host.Session, StepBlock.ModeOpenPrompt, host.Slot, 0, Prompt.Length)], [victim.Record]), "the victim's record on the host's open")));
        yield return BatchAttack("Batch_EvictedVictimKeptDecoding", "Context", "no slot",
            "The host opens a prompt of its own session in the victim's slot (allowed: it evicts the victim, whose conversation must be opened again) and then keeps asking for the victim's decodes there, so that the victim's rows would run over the host's fresh cache and be sealed for the victim.",
            bed => OnBatch(bed, (llama, victim, host) =>
            {
                CompletionEntry evict = BatchStep(bed, llama, [(host.Session, StepBlock.ModeOpenPrompt, victim.Slot, 0, Prompt.Length)], [host.Record]);
                if (!evict.Succeeded)
                {
                    return AttackResult.NotBlocked($"setup: the host's own open in the victim's slot was refused: {MaliciousHost.Describe(evict)}");
                }
                return Refused(BatchStep(bed, llama, (victim.Session, StepBlock.ModeDecode, victim.Slot, victim.Position, 1)), "the evicted victim's decode");
            }));

        // The request rows' own checks, each made before any record is opened (the host writes the rows).
        yield return BatchAttack("Batch_MoreSegmentsThanSlots", "Context", "segments, not 4",
            "The host's step block claims four segments for a program of three slots, so that the device would read request rows past the table and feed more sequences than the context has slots.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, [(victim.Session, StepBlock.ModeDecode, victim.Slot, victim.Position, 1)], [], count: 4), "a pass of four segments")));
        yield return BatchAttack("Batch_EmptyPass", "Context", "segments, not 0",
            "The host runs the program with no segment at all: the pass would seal the previous pass's tokens again from state it did not refresh.",
            bed => OnBatch(bed, (llama, victim, host) => Refused(BatchStep(bed, llama, [], [], count: 0), "a pass of no segment")));
        yield return BatchAttack("Batch_SessionThatDoesNotExist", "Context", "does not exist",
            "A request row names session 0 (no session has it), hoping that a missing session reads as a fresh one in the victim's slot.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, (0, StepBlock.ModeDecode, victim.Slot, victim.Position, 1)), "session 0")));
        yield return BatchAttack("Batch_UnknownMode", "Context", "is not 0 (decode)",
            "A request row with mode 3, neither decode, open nor continue: a mode no rule covers would skip every rule.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, (host.Session, 3, host.Slot, host.Position, 1)), "mode 3")));
        yield return BatchAttack("Batch_SlotOutsideTheProgram", "Context", "not one of the program's",
            "The host's own session decodes in slot 3 of a three-slot program: the slot's slices of the KV cache, history and sampler would lie past the regions, in whatever follows them.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, (host.Session, StepBlock.ModeDecode, 3, host.Position, 1)), "slot 3")));
        yield return BatchAttack("Batch_SegmentPastTheContext", "Context", "do not fit the context",
            "The host's own session decodes at the last position plus one (and with zero tokens): rows past a slot's context are the next slot's, the victim's.",
            bed => OnBatch(bed, (llama, victim, host) =>
            {
                AttackResult past = Refused(BatchStep(bed, llama, (host.Session, StepBlock.ModeDecode, host.Slot, llama.MaxContext, 1)), "a decode past the context");
                return past.IsBlocked ? Refused(BatchStep(bed, llama, (host.Session, StepBlock.ModeDecode, host.Slot, host.Position, 0)), "a segment of no token") : past;
            }));
        yield return BatchAttack("Batch_PassLongerThanItHolds", "Context", "tokens a pass holds",
            "The host opens a prompt of its own session as one segment of nine tokens in a program whose passes hold eight: the rows past the pass's buffers would be read from and written to the neighbouring regions.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, [(host.Session, StepBlock.ModeOpenPrompt, host.Slot, 0, 9)], [host.Record]), "a nine-token pass")));
        yield return BatchAttack("Batch_OpenNotAtPositionZero", "Context", "opened at position 0",
            "The host opens its own prompt at position 1 of its slot, so that position 0 keeps the keys and values left there by whoever held the slot before.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, [(host.Session, StepBlock.ModeOpenPrompt, host.Slot, 1, Prompt.Length)], [host.Record]), "an open at position 1")));
        yield return BatchAttack("Batch_ContinuePastTheOpenedPrompt", "Context", "not in the opened prompt",
            "The host's own session, its prompt read, asks to continue the prompt past its end: the rows would feed tokens the data owner never sealed (the slot's stale prompt buffer) as if they were its prompt.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, (host.Session, StepBlock.ModeContinuePrompt, host.Slot, host.Position, 1)), "a continue past the prompt")));
        yield return BatchAttack("Batch_DecodeOfTwoTokens", "Context", "feeds one token",
            "The host asks for two decode rows of the victim in one segment: the second row's input would be a token the device never sampled.",
            bed => OnBatch(bed, (llama, victim, host) =>
                Refused(BatchStep(bed, llama, (victim.Session, StepBlock.ModeDecode, victim.Slot, victim.Position, 2)), "a decode of two tokens")));
    }

    private static Attack BatchAttack(string name, string requirement, string evidence, string description, Func<Testbed, AttackResult> body) =>
        new(name, requirement, evidence, description, body) { Options = Batched };

    /// <summary>One party of a batch attack: its device session, slot, position and (for opens) a fresh sealed prompt record.</summary>
    private sealed record BatchParty(int Session, int Slot, int Position, byte[] Record, byte[] SecondRecord);

    /// <summary>
    /// A batched program with the victim's session in slot 0 and the host's own data-owner session in
    /// slot 1, both decoding (their prompts read, two tokens each produced by the legitimate batch);
    /// <paramref name="attack"/> gets the model and both parties.
    /// </summary>
    private static AttackResult OnBatch(Testbed bed, Func<CausalLM, BatchParty, BatchParty, AttackResult> attack)
    {
        using CausalLM llama = bed.Load();
        (DataOwnerSession victim, int victimSession) = bed.OpenDataOwner();
        (DataOwnerSession host, int hostSession) = bed.OpenDataOwner();
        using (victim)
        using (host)
        {
            SealedBatch batch = llama.CreateSealedBatch();
            SealedSequence v = batch.Add(victimSession, victim.EncryptPrompt(Prompt), Prompt.Length, 100);
            SealedSequence h = batch.Add(hostSession, host.EncryptPrompt(Prompt), Prompt.Length, 100);
            while (v.Produced < 2 || h.Produced < 2)
            {
                foreach ((SealedSequence s, byte[] record) in batch.Step())
                {
                    (s == v ? victim : host).DecryptToken(record);
                }
                // A refused open leaves the batch instead of throwing: the setup failed.
                if ((v.Failure ?? h.Failure) is { } refused)
                {
                    throw new InvalidOperationException($"setup: the legitimate batch was refused: {refused.Message}", refused);
                }
            }
            return attack(llama, new BatchParty(victimSession, v.Slot, v.Position, victim.EncryptPrompt(Prompt), victim.EncryptPrompt(Prompt)),
                new BatchParty(hostSession, h.Slot, h.Position, host.EncryptPrompt(Prompt), host.EncryptPrompt(Prompt)));
        }
    }

    private static CompletionEntry BatchStep(Testbed bed, CausalLM llama, params (int Session, int Mode, int Slot, int Start, int Seq)[] segments) =>
        BatchStep(bed, llama, segments, []);

    /// <summary>
    /// One pass of the loaded batched program with host-written requests and staged records (graph
    /// mode); the step block's segment count is <paramref name="count"/> when given, else the rows'.
    /// </summary>
    private static CompletionEntry BatchStep(Testbed bed, CausalLM llama, (int Session, int Mode, int Slot, int Start, int Seq)[] segments, byte[][] records, int? count = null)
    {
        long recordSlot = llama.Region(llama.Layout.PromptRecord!).Bytes / llama.MaxSequences;
        for (int i = 0; i < records.Length; i++)
        {
            bed.Attacker.WriteDevice(llama.Region(llama.Layout.PromptRecord!).Address + (ulong)(i * recordSlot), records[i]);
        }
        var requests = new byte[segments.Length * SegmentRequest.Count * 8];
        for (int i = 0; i < segments.Length; i++)
        {
            Span<byte> r = requests.AsSpan(i * SegmentRequest.Count * 8);
            BinaryPrimitives.WriteInt64LittleEndian(r[(SegmentRequest.Session * 8)..], segments[i].Session);
            BinaryPrimitives.WriteInt64LittleEndian(r[(SegmentRequest.Mode * 8)..], segments[i].Mode);
            BinaryPrimitives.WriteInt64LittleEndian(r[(SegmentRequest.Slot * 8)..], segments[i].Slot);
            BinaryPrimitives.WriteInt64LittleEndian(r[(SegmentRequest.Start * 8)..], segments[i].Start);
            BinaryPrimitives.WriteInt64LittleEndian(r[(SegmentRequest.Seq * 8)..], segments[i].Seq);
        }
        bed.Attacker.WriteDevice(llama.Region(llama.Layout.Requests!).Address, requests);
        var parameters = new byte[StepBlock.Bytes];
        BinaryPrimitives.WriteInt64LittleEndian(parameters.AsSpan(StepBlock.Segments * 8), count ?? segments.Length);
        bed.Attacker.WriteDevice(llama.Region(llama.Layout.Params).Address, parameters);
        return bed.Attacker.ExecuteModel(llama.Model.Id);
    }
}
