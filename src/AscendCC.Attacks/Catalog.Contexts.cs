using System.Buffers.Binary;
using System.Text.RegularExpressions;
using AscendCC.Device;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Driver;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.ModelProviders;
using static AscendCC.Attacks.AttackKit;

namespace AscendCC.Attacks;

/// <summary>
/// Attacks in which the host also plays a party (BRIEF §7): it signs a package of its own and has its
/// key released into the same NPU, opens data-owner sessions of its own, and combines steps that are
/// each legal — to read another party's weights, prompt or tokens through the device's confidential
/// contexts. See docs/security.md, "Confidential contexts".
/// </summary>
public static partial class AttackCatalog
{
    private static readonly TestbedOptions Eager = new() { Mode = ExecutionMode.Eager };

    private static IEnumerable<Attack> Contexts()
    {
        yield return new Attack("Context_HostPackageBindsVictimWeights", "Context", "which were unlocked from package 1 ('",
            "The host signs a package of its own whose expected measurement is a task list it wrote: prompt_open on its own session, a copy of the victim provider's unlocked embedding into its output staging region, token_seal. Its key is released into the same NPU; it loads the list and copies the region out.",
            bed => HostProgram(bed, "host list over the victim's weights", victimRequiresModel: false, RegionTag.Activations, CausalLMProgram.TokenRecordBytes,
                beforeSeal: null,
                afterSeal: (w, r, llama, id) =>
                {
                    DeviceBuffer embedding = llama.Region(Buffer(llama, "model.embed_tokens.weight"));
                    w.CopyDeviceToDevice(id(), embedding.Address, r.TokenRecord, Math.Min(embedding.Bytes, r.TokenRecordBytes));
                },
                leaked: (bed, data) => ContainsWindowOf(data, EmbeddingBytes(bed)) ? "the victim's embedding weights" : null));
        yield return new Attack("Context_HostPackageReadsVictimKvCache", "Context", "context:",
            "The host's own package's list copies four bytes of the victim model's KV cache into the sampled-token buffer its token_seal reads, so each run seals four bytes of the victim's keys for a data-owner session the host holds.",
            bed => HostProgram(bed, "host list over the victim's KV cache", victimRequiresModel: false, RegionTag.Activations, CausalLMProgram.TokenRecordBytes,
                beforeSeal: (w, r, llama, id) => w.CopyDeviceToDevice(id(), llama.Region(Buffer(llama, "k_cache.0")).Address, r.Next, 4),
                afterSeal: null,
                leaked: null, succeededIsLeak: "a list attested against the host's package ran over the victim's KV cache and sealed part of it for the host's session"));
        yield return new Attack("Context_HostProgramOpensVictimPrompt", "Context", "context:",
            "The host relays a data owner's sealed prompt (the data owner requires the provider's model) to a program of the host's own package, which copies the opened prompt over its sealed record.",
            bed => HostProgram(bed, "host list on the victim's prompt", victimRequiresModel: true, RegionTag.Activations, CausalLMProgram.TokenRecordBytes,
                beforeSeal: null,
                afterSeal: (w, r, llama, id) => w.CopyDeviceToDevice(id(), r.Prompt, r.TokenRecord, Math.Min(r.PromptBytes, r.TokenRecordBytes)),
                leaked: PromptLeaked));
        yield return new Attack("Context_UnboundPromptCopiedOverItsSealedRecord", "Context", "R3:",
            "A data owner that names no model has its prompt opened in the host's own program (allowed: its session binds to that model); the program seals a token, then copies the plaintext prompt over the sealed record, and the host copies the record out.",
            bed => HostProgram(bed, "device copy over the sealed record", victimRequiresModel: false, RegionTag.Activations, CausalLMProgram.TokenRecordBytes,
                beforeSeal: null,
                afterSeal: (w, r, llama, id) => w.CopyDeviceToDevice(id(), r.Prompt, r.TokenRecord, Math.Min(r.PromptBytes, r.TokenRecordBytes)),
                leaked: PromptLeaked));
        yield return new Attack("Context_UnboundPromptWrittenOverRecordByKernel", "Context", "R3:",
            "As above, but a kernel (slice_rows, which copies rows bit for bit) writes the plaintext prompt over the sealed record.",
            bed => HostProgram(bed, "kernel output over the sealed record", victimRequiresModel: false, RegionTag.Activations, CausalLMProgram.TokenRecordBytes,
                beforeSeal: null,
                afterSeal: (w, r, llama, id) => w.KernelLaunch(id(), bed.Runtime.LoadOperator("slice_rows"),
                    [new KernelArgument(r.Prompt, r.PromptBytes), new KernelArgument(r.TokenRecord, r.TokenRecordBytes)],
                    [KernelScalar.Of(0L), KernelScalar.Of(1L), KernelScalar.Of(Math.Min(r.PromptBytes, r.TokenRecordBytes) / 4)]),
                leaked: PromptLeaked));
        yield return new Attack("Context_SealedRecordMemsetThenCopied", "Context", "R3:",
            "The host's own program seals a record and then memsets it; the host copies the region out (any write after the seal must revoke its egress).",
            bed => HostProgram(bed, "memset over the sealed record", victimRequiresModel: false, RegionTag.Activations, CausalLMProgram.TokenRecordBytes,
                beforeSeal: null,
                afterSeal: (w, r, llama, id) => w.Memset(id(), r.TokenRecord, r.TokenRecordBytes, 0x5a),
                leaked: (bed, data) => data.AsSpan().IndexOf((byte)0x5a) >= 0 ? "bytes written after the seal" : null));
        yield return new Attack("Context_SealedRecordHostWrittenThenCopied", "Context", "R3:",
            "After a legitimate step sealed a token, the host DMAs bytes of its own into part of the token record region and copies the whole region back.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                DeviceBuffer record = llama.Region(llama.Layout.TokenRecord!);
                MaliciousHost host = bed.Attacker;
                CompletionEntry write = host.WriteDevice(record.Address, [0x5a, 0x5a, 0x5a, 0x5a]);
                return write.Succeeded
                    ? ReadRegion(host, record.Address, record.Bytes, "D2H of the token record after a host write")
                    : AttackResult.Blocked($"host write into the record: {MaliciousHost.Describe(write)}");
            });
        yield return new Attack("Context_PartOfASealedRecordCopied", "Context", "R3:",
            "After a legitimate step sealed a token, copy out only part of the token record, and a range running past it.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                DeviceBuffer record = llama.Region(llama.Layout.TokenRecord!);
                return All(ReadRegion(bed.Attacker, record.Address + 8, record.Bytes - 8, "D2H of the record's tail"),
                           ReadRegion(bed.Attacker, record.Address, record.Bytes - 1, "D2H of the record less its last byte"));
            });
        yield return new Attack("Context_PlaintextBesideTheSealedRecord", "Context", "R3:",
            "The host's own program copies the victim's opened prompt into the tail of a large output staging region, then token_seal writes its head (token_seal once marked the whole region ciphertext).",
            bed => HostProgram(bed, "prompt in the tail of the record region", victimRequiresModel: false, RegionTag.Activations, 4096,
                beforeSeal: (w, r, llama, id) => w.CopyDeviceToDevice(id(), r.Prompt, r.TokenRecord + 1024, r.PromptBytes),
                afterSeal: null,
                leaked: PromptLeaked));
        yield return new Attack("Context_TokenSealIntoAnotherKindOfRegion", "Context", "R3:",
            "The host's own program gives token_seal a whole region of exactly a record's size that is not output staging (workspace): the seal must refuse, since sealing is what makes a region copyable to the host.",
            bed => HostProgram(bed, "token record in a workspace region", victimRequiresModel: false, RegionTag.Activations, CausalLMProgram.TokenRecordBytes,
                beforeSeal: null, afterSeal: null, leaked: null, succeededIsLeak: "token_seal sealed a record into a region that is not output staging", recordTag: RegionTag.Workspace));
        yield return new Attack("Context_PromptOpenedIntoHostMappedMemory", "Context", "R2:",
            "The host's own program binds prompt_open's prompt buffer to a General region (host-mapped), then relays an any-model data owner's prompt to it.",
            bed => HostProgram(bed, "prompt buffer in host-mapped memory", victimRequiresModel: false, RegionTag.General, CausalLMProgram.TokenRecordBytes,
                beforeSeal: null, afterSeal: null, leaked: null, succeededIsLeak: "prompt_open decrypted the data owner's prompt into a region mapped for host DMA"));
        yield return new Attack("Context_TokenSealWithoutAPass", "Context", "no pass is in progress",
            "The host's own program (attested against its own package) opens an any-model data owner's prompt and then seals twice: the second record would hand the data owner a token at the next position for which no pass ran.",
            bed => HostProgram(bed, "a second token_seal without a pass", victimRequiresModel: false, RegionTag.Activations, CausalLMProgram.TokenRecordBytes,
                beforeSeal: null,
                afterSeal: (w, r, llama, id) => w.KernelLaunch(id(), bed.Runtime.LoadOperator("token_seal"), [new(r.Next, 4), new(r.TokenRecord, r.TokenRecordBytes)], []),
                leaked: null, succeededIsLeak: "the device sealed a token for which no pass ran"));
        yield return new Attack("Context_NextSessionReadsStaleKvCache", "Context", "scrubbed",
            "The host, as a model provider, signs a program that keeps each pass's tokens in its KV cache (kv_cache_write at the pass's positions) and seals the entry at position 1. An any-model data owner's five-token prompt runs on it; then a session of the host's own opens a one-token prompt on the same program, hoping position 1 still holds the data owner's token.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                MaliciousHost host = bed.Attacker;
                int maxContext = bed.Options.MaxContext;
                ulong Alloc(long bytes, RegionTag tag) => host.Alloc(bytes, tag).Result;
                long recordBytes = CausalLMProgram.PromptRecordBytes(maxContext);
                ulong promptRecord = Alloc(recordBytes, RegionTag.InputStaging), prompt = Alloc(maxContext * 4L, RegionTag.Activations), next = Alloc(8, RegionTag.Activations);
                ulong request = Alloc(StepBlock.Bytes, RegionTag.InputStaging), tokens = Alloc(8 * 4, RegionTag.Activations), step = Alloc(StepBlock.Bytes, RegionTag.Activations);
                ulong rng = Alloc(8, RegionTag.Activations), kCache = Alloc(maxContext * 4L, RegionTag.KvCache), vCache = Alloc(maxContext * 4L, RegionTag.KvCache);
                ulong record = Alloc(CausalLMProgram.TokenRecordBytes, RegionTag.OutputStaging);
                var w = new TaskWriter();
                w.KernelLaunch(0, bed.Runtime.LoadOperator("prompt_open"),
                    [new(promptRecord, recordBytes), new(prompt, maxContext * 4L), new(next, 8), new(request, StepBlock.Bytes), new(tokens, 8 * 4), new(step, StepBlock.Bytes), new(rng, 8)],
                    [KernelScalar.Of((long)bed.Config.HiddenSize), KernelScalar.Of((long)bed.Config.IntermediateSize)]);
                // One f32 head of width one (kv_dtype 0): the cache is the list of token ids fed so far, by position.
                w.KernelLaunch(1, bed.Runtime.LoadOperator("kv_cache_write"), [new(tokens, 8 * 4), new(tokens, 8 * 4), new(kCache, maxContext * 4L), new(vCache, maxContext * 4L)],
                    [KernelScalar.FromDevice(step + StepBlock.Seq * 8), KernelScalar.FromDevice(step + StepBlock.Start * 8), KernelScalar.Of(1L), KernelScalar.Of(1L), KernelScalar.Of((long)maxContext), KernelScalar.Of(0L)]);
                w.CopyDeviceToDevice(2, kCache + 4, next, 4);
                w.KernelLaunch(3, bed.Runtime.LoadOperator("token_seal"), [new(next, 4), new(record, CausalLMProgram.TokenRecordBytes)], []);
                (int? model, string attested) = AttestAsProvider(bed, w.Written.ToArray());
                if (model is null)
                {
                    return AttackResult.NotBlocked($"the host's own program was not attested, so the scrub was not tested: {attested}");
                }
                (DataOwnerSession victim, int victimSession) = bed.OpenDataOwner(requiredModel: ReadOnlyMemory<byte>.Empty);
                (DataOwnerSession mine, int mySession) = bed.OpenDataOwner(requiredModel: ReadOnlyMemory<byte>.Empty);
                using (victim)
                using (mine)
                {
                    host.WriteDevice(promptRecord, victim.EncryptPrompt(Prompt));
                    host.WriteDevice(request, Params(victimSession, StepBlock.ModeOpenPrompt, 0, Prompt.Length, biased: false));
                    CompletionEntry victimRun = host.ExecuteModel(model.Value);
                    host.WriteDevice(promptRecord, mine.EncryptPrompt([3]));
                    host.WriteDevice(request, Params(mySession, StepBlock.ModeOpenPrompt, 0, 1, biased: false));
                    CompletionEntry myRun = host.ExecuteModel(model.Value);
                    (CompletionEntry read, byte[] bytes) = host.ReadDevice(record, CausalLMProgram.TokenRecordBytes);
                    if (!victimRun.Succeeded || !myRun.Succeeded || !read.Succeeded)
                    {
                        return AttackResult.NotBlocked($"a legitimate step of the host's own program failed, so the scrub was not tested: data owner's run {MaliciousHost.Describe(victimRun)}; host's run {MaliciousHost.Describe(myRun)}; D2H {MaliciousHost.Describe(read)}");
                    }
                    int seen = mine.DecryptToken(bytes).TokenId;
                    return seen == Prompt[1]
                        ? AttackResult.NotBlocked($"the host's session read the data owner's prompt token {seen} from position 1 of the KV cache")
                        : AttackResult.Blocked($"{attested}; the host's session read {seen} at position 1: the switch to its session scrubbed the data owner's KV cache");
                }
            });
        yield return new Attack("Context_SessionHijackAfterFailedOpen", "Context", "context:",
            "Mid-conversation, the host opens a data-owner session of its own and runs a step that opens its own prompt and then fails (start 5); then it runs the victim's decode steps naming its own session, hoping they seal the victim's continuation for it.",
            bed =>
            {
                using CausalLM llama = bed.Load();
                (DataOwnerSession victim, int victimSession) = bed.OpenDataOwner();
                (DataOwnerSession mine, int mySession) = bed.OpenDataOwner();
                using (victim)
                using (mine)
                {
                    int position = GenerateTo(llama, victim, victimSession, 3);
                    CompletionEntry open = Step(bed, llama, mySession, StepBlock.ModeOpenPrompt, 5, 1, mine.EncryptPrompt([1, 2]));
                    CompletionEntry decode = Step(bed, llama, mySession, StepBlock.ModeDecode, position, 1);
                    AttackResult read = TryOpenRecord(bed, llama, mine, decode, "decode naming the host's session");
                    // Had the failed open made the host's session the context's, a decode at the new
                    // session's position 0 would pass every position check.
                    CompletionEntry fresh = Step(bed, llama, mySession, StepBlock.ModeDecode, 0, 1);
                    AttackResult freshRead = TryOpenRecord(bed, llama, mine, fresh, "decode naming the host's session at its position 0");
                    return All(Refused(open, "open the host's prompt at position 5"), Refused(decode, "decode naming the host's session"), read,
                        Refused(fresh, "decode naming the host's session at its position 0"), freshRead);
                }
            });
        yield return new Attack("Context_EagerResealForHostSession", "Context", "R4:",
            "Eager mode: after the victim's step, launch prompt_open on the host's own session and prompt, then token_seal alone, hoping it seals the victim's last sampled token for the host.",
            bed =>
            {
                using CausalLM llama = bed.Load();
                int[] victimTokens = bed.Generate(llama, Prompt, 3);
                (DataOwnerSession mine, int mySession) = bed.OpenDataOwner();
                using (mine)
                {
                    List<LaunchSpec> list = TaskList(bed, llama);
                    WriteParams(bed, llama, mySession, StepBlock.ModeOpenPrompt, 0, 1);
                    bed.Attacker.WriteDevice(llama.Region(llama.Layout.PromptRecord!).Address, mine.EncryptPrompt([1]));
                    CompletionEntry open = Launch(bed, list[0]);
                    CompletionEntry seal = Launch(bed, list[^1]);
                    AttackResult read = TryOpenRecord(bed, llama, mine, seal, "token_seal right after prompt_open", t => t == victimTokens[^1] ? $"the victim's last token {t}" : null);
                    return All(Refused(seal, "token_seal right after prompt_open"), read);
                }
            }) { Options = Eager };
        yield return new Attack("Context_KvCacheProbeAfterVictim", "Context", "position:",
            "After the victim's conversation, the host runs its own prompt at positions after the victim's context (open at position p, or continue the victim's session's positions with the host's session).",
            bed =>
            {
                using CausalLM llama = bed.Load();
                (DataOwnerSession victim, int victimSession) = bed.OpenDataOwner();
                (DataOwnerSession mine, int mySession) = bed.OpenDataOwner();
                using (victim)
                using (mine)
                {
                    int position = GenerateTo(llama, victim, victimSession, 3);
                    CompletionEntry open = Step(bed, llama, mySession, StepBlock.ModeOpenPrompt, position, 1, mine.EncryptPrompt([5]));
                    CompletionEntry decode = Step(bed, llama, mySession, StepBlock.ModeDecode, position, 1);
                    return All(Refused(open, $"open the host's prompt at position {position}"), Refused(decode, $"decode the host's session at position {position}"),
                        TryOpenRecord(bed, llama, mine, decode, "probe step"));
                }
            });
        yield return new Attack("Context_VictimSessionStepOutOfPosition", "Context", "position:",
            "The host runs the victim's own session out of place: a decode two positions past where the conversation stands (a gap in its KV cache), one position back (re-sampling a position already answered), and a prompt continuation after the whole prompt was fed.",
            bed => OnVictimConversation(bed, 3, (llama, victim, session, position) =>
            {
                CompletionEntry ahead = Step(bed, llama, session, StepBlock.ModeDecode, position + 2, 1);
                CompletionEntry back = Step(bed, llama, session, StepBlock.ModeDecode, position - 1, 1);
                CompletionEntry refeed = Step(bed, llama, session, StepBlock.ModeContinuePrompt, position, 1);
                // A new prompt of the same session, fed in part and then decoded as if it were whole.
                CompletionEntry part = Step(bed, llama, session, StepBlock.ModeOpenPrompt, 0, 2, victim.EncryptPrompt(Prompt));
                CompletionEntry early = Step(bed, llama, session, StepBlock.ModeDecode, 2, 1);
                return part.Succeeded
                    ? All(Refused(ahead, $"decode at {position + 2} where the session stands at {position}"),
                          Refused(back, $"decode at {position - 1} where the session stands at {position}"),
                          Refused(refeed, $"prompt continuation at {position}, past the prompt's {Prompt.Length} tokens"),
                          Refused(early, $"decode at 2 with the prompt of {Prompt.Length} tokens fed up to 2"))
                    : AttackResult.NotBlocked($"the legitimate partial open was refused: {MaliciousHost.Describe(part)}");
            }));
        yield return new Attack("Context_HostWritesTheTokenHistory", "Context", "not mapped for host DMA",
            "In the middle of the victim's conversation the host writes its own token ids into the history the device's sampler keeps of the context (the tokens the data owner's repetition penalties look at), hoping to steer the victim's sampling, and reads it back hoping for the victim's tokens: the history is the context's locked memory, so both DMAs must be refused.",
            bed => OnVictimConversation(bed, 3, (llama, victim, session, position) =>
            {
                ProgramBuffer history = llama.Layout.Program.Buffers.Single(b => b.Name == "history");
                ulong address = llama.Region(history).Address;
                CompletionEntry write = bed.Attacker.WriteDevice(address, new byte[64]);
                (CompletionEntry read, _) = bed.Attacker.ReadDevice(address, 64);
                return All(Refused(write, "a DMA write into the token history"), Refused(read, "a DMA read of the token history"));
            }));
        yield return new Attack("Context_StepRequestOutOfBounds", "Context", "does not fit",
            "The host asks for passes that do not fit the program: no tokens, a negative start, a decode at the end of the context and a pass longer than the token buffer — each must be refused by prompt_open's bounds check itself, before any session state is read.",
            bed => OnVictimConversation(bed, 3, (llama, victim, session, position) =>
            {
                int capacity = bed.Options.MaxContext, batch = bed.Options.MaxBatchTokens;
                (string What, CompletionEntry Entry)[] requests =
                [
                    ("a pass of 0 tokens", Step(bed, llama, session, StepBlock.ModeDecode, position, 0)),
                    ("a pass from position -1", Step(bed, llama, session, StepBlock.ModeDecode, -1, 1)),
                    ($"a decode at position {capacity}, the end of the context", Step(bed, llama, session, StepBlock.ModeDecode, capacity, 1)),
                    ($"a prompt pass of {batch + 1} tokens, more than the token buffer holds", Step(bed, llama, session, StepBlock.ModeContinuePrompt, position, batch + 1)),
                ];
                // Each must fail at the bounds check: a later check refusing it instead means the bounds check is not doing its job.
                var wrong = requests.Where(r => r.Entry.Succeeded || !MaliciousHost.Describe(r.Entry).Contains("does not fit", StringComparison.Ordinal)).ToArray();
                return wrong.Length == 0
                    ? All([.. requests.Select(r => Refused(r.Entry, r.What))])
                    : AttackResult.NotBlocked(string.Join("; ", wrong.Select(r => $"{r.What}: {MaliciousHost.Describe(r.Entry)}")));
            }));
        yield return new Attack("Context_StepRequestMalformed", "Context", "does not exist",
            "In the middle of the victim's conversation the host asks prompt_open for passes that are malformed: an unknown mode, sessions that cannot exist (0, 2^31) and the largest that can, the model provider's key-release session as a data owner's, a staged prompt record whose header claims more bytes than its region; then, as a data owner itself, a prompt longer than the context, a first chunk longer than its prompt and a chunk past its prompt's end. Each must be refused by its own check (a later check refusing it means the first is not doing its job) and none may disturb the victim's session.",
            bed => OnVictimConversation(bed, 3, (llama, victim, session, position) =>
            {
                int capacity = bed.Options.MaxContext;
                // A decode step of the victim's: it must still run after every refused request.
                (string, CompletionEntry, string) VictimStep(string after)
                {
                    CompletionEntry e = Step(bed, llama, session, StepBlock.ModeDecode, position++, 1);
                    return ($"the victim's next decode after {after}", e, "");
                }
                byte[] overclaiming = new byte[64];
                BinaryPrimitives.WriteUInt32BigEndian(overclaiming.AsSpan(16), uint.MaxValue - 64);
                var requests = new List<(string What, CompletionEntry Entry, string Expected)>
                {
                    ("mode 3", Step(bed, llama, session, 3, position, 1), "is not 0 (decode), 1 (open) or 2 (continue)"),
                    ("session 0", Step(bed, llama, 0, StepBlock.ModeDecode, position, 1), "session 0 does not exist"),
                    ("session 2^31", Step(bed, llama, 1L << 31, StepBlock.ModeDecode, position, 1), "session 2147483648 does not exist"),
                    // The largest id a session can have passes the range check and is refused as not the context's.
                    ("session 2^31 - 1", Step(bed, llama, int.MaxValue, StepBlock.ModeDecode, position, 1), "not session 2147483647"),
                    // The session opened just before the victim's is the provider's key-release channel.
                    ("the model provider's session as a data owner's", Step(bed, llama, session - 1, StepBlock.ModeOpenPrompt, 0, 1), $"session {session - 1} is not an open data-owner session"),
                    ("a staged record claiming more bytes than its region", Step(bed, llama, session, StepBlock.ModeOpenPrompt, 0, 1, overclaiming), "the staged prompt record is truncated"),
                };
                requests.Add(VictimStep("the requests above"));
                (DataOwnerSession host, int hostSession) = bed.OpenDataOwner();
                using (host)
                {
                    int[] tooLong = [.. Enumerable.Range(1, capacity + 1)];
                    requests.Add(("the host's prompt one token longer than the context", Step(bed, llama, hostSession, StepBlock.ModeOpenPrompt, 0, 1, host.EncryptPrompt(tooLong)), $"the prompt has {capacity + 1} tokens; the context holds 1..{capacity}"));
                    requests.Add(VictimStep("the host's over-long prompt"));
                    requests.Add(("a first chunk of 4 tokens of the host's 3-token prompt", Step(bed, llama, hostSession, StepBlock.ModeOpenPrompt, 0, 4, host.EncryptPrompt([1, 2, 3])), "tokens 0..3 are not in the opened prompt of 3 tokens"));
                    requests.Add(VictimStep("the host's over-long first chunk"));
                    // Last: a successful open of the host's prompt makes the host's session the context's.
                    CompletionEntry opened = Step(bed, llama, hostSession, StepBlock.ModeOpenPrompt, 0, 2, host.EncryptPrompt([1, 2, 3]));
                    if (!opened.Succeeded)
                    {
                        return AttackResult.NotBlocked($"setup: the host's legitimate open of its own 3-token prompt failed: {MaliciousHost.Describe(opened)}");
                    }
                    requests.Add(("a chunk of 2 tokens from position 2 of the host's 3-token prompt", Step(bed, llama, hostSession, StepBlock.ModeContinuePrompt, 2, 2), "tokens 2..3 are not in the opened prompt of 3 tokens"));
                }
                var wrong = requests.Where(r => r.Expected.Length == 0
                    ? !r.Entry.Succeeded
                    : r.Entry.Succeeded || !MaliciousHost.Describe(r.Entry).Contains(r.Expected, StringComparison.Ordinal)).ToArray();
                return wrong.Length == 0
                    ? All([.. requests.Where(r => r.Expected.Length > 0).Select(r => Refused(r.Entry, r.What))])
                    : AttackResult.NotBlocked(string.Join("; ", wrong.Select(r => $"{r.What}: {MaliciousHost.Describe(r.Entry)}")));
            }));
        yield return new Attack("Context_ModelSwapAfterAttestation", "Context", "context:",
            "A data owner attested the device and requires the provider's model. The host loads a package of its own (its own weights, the same deployment and model name) and answers the data owner's prompts with it: a fresh session's, one already bound to the provider's model, and the next prompt of a session that named no model but whose first prompt the provider's model answered.",
            bed =>
            {
                using CausalLM llama = bed.Load();
                (DataOwnerSession bound, int boundSession) = bed.OpenDataOwner();
                (DataOwnerSession fresh, int freshSession) = bed.OpenDataOwner();
                (DataOwnerSession unnamed, int unnamedSession) = bed.OpenDataOwner(requiredModel: ReadOnlyMemory<byte>.Empty);
                using (bound)
                using (fresh)
                using (unnamed)
                {
                    GenerateTo(llama, bound, boundSession, 2);
                    GenerateTo(llama, unnamed, unnamedSession, 2);
                    using ModelProvider hostProvider = ModelProvider.CreateDeterministic("the host, playing a model provider, 32+ bytes"u8);
                    using var stream = new MemoryStream();
                    using ProtectedModel hostModel = ModelPackageExporter.Export(hostProvider, bed.Deployment, TinyLlama.Weights(bed.Config, seed: 99), bed.Policy, stream, bed.Model.Manifest.ModelName);
                    using CausalLM swapped = CausalLM.LoadConfidential(bed.Runtime, bed.Deployment, stream.ToArray(), ReleaseHostKey(bed, hostProvider, hostModel), bed.Options.Mode);
                    return All(Answer(swapped, fresh, freshSession, "the host's model answering a fresh session that requires the provider's"),
                               Answer(swapped, bound, boundSession, "the host's model answering a session bound to the provider's"),
                               // Only the device's session binding stops this one: the prompt names no model.
                               Answer(swapped, unnamed, unnamedSession, "the host's model answering the next prompt of a session the provider's model answered first"));
                }
            });
        yield return new Attack("Context_EagerFirstAndLastLaunchOnly", "Context", "R4:",
            "Eager mode: for a decode step of the victim's session, launch only the first (prompt_open) and last (token_seal) launches of the attested list, dropping every layer.",
            bed => OnVictimConversation(bed, 2, (llama, victim, session, position) =>
            {
                List<LaunchSpec> list = TaskList(bed, llama);
                WriteParams(bed, llama, session, StepBlock.ModeDecode, position, 1);
                CompletionEntry first = Launch(bed, list[0]);
                CompletionEntry last = Launch(bed, list[^1]);
                return first.Succeeded ? Refused(last, "token_seal straight after prompt_open") : AttackResult.NotBlocked($"the legitimate first launch was refused: {MaliciousHost.Describe(first)}");
            })) { Options = Eager };
        yield return new Attack("Context_EagerRepeatedOrReorderedLaunch", "Context", "R4:",
            "Eager mode: launch prompt_open, then the embedding twice; and, on a fresh pass, the second layer launch before the first.",
            bed => OnVictimConversation(bed, 2, (llama, victim, session, position) =>
            {
                List<LaunchSpec> list = TaskList(bed, llama);
                WriteParams(bed, llama, session, StepBlock.ModeDecode, position, 1);
                Launch(bed, list[0]);
                Launch(bed, list[1]);
                CompletionEntry repeated = Launch(bed, list[1]);
                Launch(bed, list[0]);
                Launch(bed, list[1]);
                CompletionEntry reordered = Launch(bed, list[3]);
                return All(Refused(repeated, $"'{list[1].Operator}' launched twice"), Refused(reordered, $"'{list[3].Operator}' before '{list[2].Operator}'"));
            })) { Options = Eager };
        yield return new Attack("Context_EagerCachedLaunchWithAnOperandChanged", "Context", "R4:",
            "Eager mode: the device remembers the exact operands of each list task it has already matched, so a repeated launch skips re-measuring. At the list's first residual add of a decode step (matched and remembered in the victim's earlier steps), the host launches it with its two inputs swapped, with one input a float short, with its length read from another slot or given as an immediate, and as a different operator of the same shape (mul): each must miss the memory, be measured and be refused; the unchanged launch then runs.",
            bed => OnVictimConversation(bed, 2, (llama, victim, session, position) =>
            {
                List<LaunchSpec> list = TaskList(bed, llama);
                int add = list.FindIndex(l => l.Operator == "add");
                WriteParams(bed, llama, session, StepBlock.ModeDecode, position, 1);
                // The host's own launches up to and including the add, so the device remembers exactly
                // these operands; then the list's first launch again, which abandons that pass and
                // begins a new one, and the launches up to the add.
                foreach (int i in Enumerable.Range(0, add + 1).Concat(Enumerable.Range(0, add)))
                {
                    CompletionEntry e = Launch(bed, list[i]);
                    if (!e.Succeeded)
                    {
                        return AttackResult.NotBlocked($"setup: the legitimate launch {i} ('{list[i].Operator}') failed: {MaliciousHost.Describe(e)}");
                    }
                }
                LaunchSpec original = list[add];
                KernelArgument[] swapped = [original.Args[1], original.Args[0], .. original.Args[2..]];
                KernelArgument[] shorter = [new(original.Args[0].Address, original.Args[0].Bytes - 4), .. original.Args[1..]];
                KernelScalar[] otherSlot = [.. original.Scalars.Select(sc => sc.Source == ScalarSource.DeviceMemory ? KernelScalar.FromDevice(sc.Value + 8) : sc)];
                // The same 8 bytes as an immediate: the host, not the step block, would choose the length.
                KernelScalar[] immediate = [.. original.Scalars.Select(sc => sc.Source == ScalarSource.DeviceMemory ? new KernelScalar(ScalarSource.Immediate, sc.Value) : sc)];
                ulong mul = bed.Runtime.LoadOperator("mul");
                AttackResult result = All(
                    Refused(Launch(bed, original with { Args = swapped }), "the cached add with its inputs swapped"),
                    Refused(Launch(bed, original with { Args = shorter }), "the cached add with its first input one float short"),
                    Refused(Launch(bed, original with { Scalars = otherSlot }), "the cached add with its length read from the next step-block slot"),
                    Refused(Launch(bed, original with { Scalars = immediate }), "the cached add with its length an immediate instead of a step-block read"),
                    Refused(Launch(bed, original with { Handle = mul }), "mul in place of the cached add"));
                if (!result.IsBlocked)
                {
                    return result;
                }
                CompletionEntry unchanged = Launch(bed, original);
                return unchanged.Succeeded ? result : AttackResult.NotBlocked($"setup: the unchanged add was refused after the variants: {MaliciousHost.Describe(unchanged)}");
            })) { Options = Eager };
        yield return new Attack("Context_EagerLaunchAfterARefusedOpen", "Context", "R4:",
            "Eager mode: prompt_open is refused (the host asks for a position the session is not at); the host goes on with the list's next launch, hoping the pass counts as begun and the layers rerun on the last step's state.",
            bed => OnVictimConversation(bed, 2, (llama, victim, session, position) =>
            {
                List<LaunchSpec> list = TaskList(bed, llama);
                WriteParams(bed, llama, session, StepBlock.ModeDecode, position + 5, 1);
                CompletionEntry open = Launch(bed, list[0]);
                CompletionEntry next = Launch(bed, list[1]);
                return All(Refused(open, $"prompt_open at position {position + 5}"), Refused(next, $"'{list[1].Operator}' after the refused prompt_open"));
            })) { Options = Eager };
        yield return new Attack("Context_EagerPassResumedAcrossAGraphPass", "Context", "expects task 0 of",
            "Eager mode: the host begins a decode step of the victim's session eagerly (prompt_open, the embedding), runs the attested list whole with executeModel in between, then resumes its eager pass at the list's third launch, so the layers would run on what the graph pass left behind.",
            bed => OnVictimConversation(bed, 2, (llama, victim, session, position) =>
            {
                List<LaunchSpec> list = TaskList(bed, llama);
                WriteParams(bed, llama, session, StepBlock.ModeDecode, position, 1);
                CompletionEntry open = Launch(bed, list[0]), embedding = Launch(bed, list[1]);
                if (!open.Succeeded || !embedding.Succeeded)
                {
                    return AttackResult.NotBlocked($"setup: the legitimate first launches were refused: {MaliciousHost.Describe(open)}; {MaliciousHost.Describe(embedding)}");
                }
                CompletionEntry graph = bed.Attacker.ExecuteModel(llama.Model.Id);
                return Refused(Launch(bed, list[2]), $"'{list[2].Operator}' after an executeModel ({MaliciousHost.Describe(graph)}) interrupted the eager pass");
            })) { Options = Eager };
        yield return new Attack("Context_HostBiasesSampling", "Context", "data owner's settings",
            "The data owner asks for greedy decoding; the host writes temperature 1, top-p 1 and a seed of its choice into every step's parameter block.",
            bed =>
            {
                using CausalLM llama = bed.Load();
                int[] greedy = bed.Generate(llama, Prompt, 6);
                (DataOwnerSession owner, int session) = bed.OpenDataOwner();
                using (owner)
                {
                    var tokens = new List<int>();
                    byte[] record = owner.EncryptPrompt(Prompt);
                    int position = 0;
                    for (int step = 0; step < 6; step++)
                    {
                        int mode = step == 0 ? StepBlock.ModeOpenPrompt : position < Prompt.Length ? StepBlock.ModeContinuePrompt : StepBlock.ModeDecode;
                        int seq = mode == StepBlock.ModeDecode ? 1 : Math.Min(bed.Options.MaxBatchTokens, Prompt.Length - position);
                        CompletionEntry e = Step(bed, llama, session, mode, position, seq, step == 0 ? record : null, biased: true);
                        if (!e.Succeeded)
                        {
                            return AttackResult.NotBlocked($"the legitimate step was refused: {MaliciousHost.Describe(e)}");
                        }
                        position += seq;
                        if (position >= Prompt.Length)
                        {
                            (CompletionEntry read, byte[] bytes) = bed.Attacker.ReadDevice(llama.Region(llama.Layout.TokenRecord!).Address, CausalLMProgram.TokenRecordBytes);
                            if (read.Succeeded)
                            {
                                tokens.Add(owner.DecryptToken(bytes).TokenId);
                            }
                        }
                    }
                    int[] got = tokens.Take(greedy.Length).ToArray();
                    return got.SequenceEqual(greedy.Take(got.Length)) && got.Length > 1
                        ? AttackResult.Blocked($"the device sampled with the data owner's settings: {got.Length} tokens equal its greedy tokens [{string.Join(' ', got)}] although the host asked for temperature 1")
                        : AttackResult.NotBlocked($"the host's sampling settings changed the tokens: [{string.Join(' ', got)}] instead of greedy [{string.Join(' ', greedy)}]");
                }
            });
        yield return new Attack("R6_KernelErrorDetailQuotesData", "R6", "withheld",
            "A data owner's prompt holds a token id outside the vocabulary; the embedding kernel rejects it, and the host reads the completion's detail hoping it quotes the id.",
            bed =>
            {
                const int secret = 987654;
                using CausalLM llama = bed.Load();
                (DataOwnerSession owner, int session) = bed.OpenDataOwner();
                using (owner)
                {
                    try
                    {
                        int n = llama.Generate(session, owner.EncryptPrompt([1, secret]), 2, 2).Count();
                        return AttackResult.NotBlocked($"an out-of-vocabulary prompt generated {n} tokens");
                    }
                    catch (NpuException ex)
                    {
                        return ex.Message.Contains(secret.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
                            ? AttackResult.NotBlocked($"the completion quotes the data owner's token id: {ex.Message}")
                            : AttackResult.Blocked($"kernel error without the value: {ex.Message}");
                    }
                }
            });
    }

    /// <summary>The host's regions for a program of its own, shaped like the victim deployment's.</summary>
    private sealed record HostRegions(ulong PromptRecord, ulong Prompt, long PromptBytes, ulong Next, ulong Params, ulong Tokens, long TokensBytes, ulong Step, ulong Rng, ulong TokenRecord, long TokenRecordBytes);

    private delegate void HostTasks(TaskWriter w, HostRegions r, CausalLM victim, Func<ulong> nextId);

    /// <summary>
    /// The host as a model provider: it writes a program of its own (prompt_open, its payload, token_seal),
    /// signs a package whose expected measurement is that program's, has the key released into the
    /// victim's NPU, loads the program, relays a victim data owner's sealed prompt to it and copies the
    /// record region out.
    /// </summary>
    private static AttackResult HostProgram(Testbed bed, string what, bool victimRequiresModel, RegionTag promptTag, long recordBytes,
        HostTasks? beforeSeal, HostTasks? afterSeal, Func<Testbed, byte[], string?>? leaked, string? succeededIsLeak = null, RegionTag recordTag = RegionTag.OutputStaging)
    {
        using CausalLM llama = LoadAndGenerate(bed);
        (DataOwnerSession owner, int session) = bed.OpenDataOwner(requiredModel: victimRequiresModel ? bed.Model.Manifest.ExpectedGraphMeasurement : ReadOnlyMemory<byte>.Empty);
        using (owner)
        {
            MaliciousHost host = bed.Attacker;
            long promptBytes = bed.Options.MaxContext * 4L, tokensBytes = 8 * 4;
            ulong Alloc(long bytes, RegionTag tag) => host.Alloc(bytes, tag).Result;
            var r = new HostRegions(Alloc(CausalLMProgram.PromptRecordBytes(bed.Options.MaxContext), RegionTag.InputStaging), Alloc(promptBytes, promptTag), promptBytes,
                Alloc(8, RegionTag.Activations), Alloc(StepBlock.Bytes, RegionTag.InputStaging), Alloc(tokensBytes, RegionTag.Activations), tokensBytes,
                Alloc(StepBlock.Bytes, RegionTag.Activations), Alloc(8, RegionTag.Activations), Alloc(recordBytes, recordTag), recordBytes);
            var w = new TaskWriter();
            ulong id = 0;
            ulong NextId() => id++;
            w.KernelLaunch(NextId(), bed.Runtime.LoadOperator("prompt_open"),
                [new(r.PromptRecord, CausalLMProgram.PromptRecordBytes(bed.Options.MaxContext)), new(r.Prompt, r.PromptBytes), new(r.Next, 8), new(r.Params, StepBlock.Bytes),
                 new(r.Tokens, r.TokensBytes), new(r.Step, StepBlock.Bytes), new(r.Rng, 8)],
                [KernelScalar.Of((long)bed.Config.HiddenSize), KernelScalar.Of((long)bed.Config.IntermediateSize)]);
            beforeSeal?.Invoke(w, r, llama, NextId);
            w.KernelLaunch(NextId(), bed.Runtime.LoadOperator("token_seal"), [new(r.Next, 4), new(r.TokenRecord, r.TokenRecordBytes)], []);
            afterSeal?.Invoke(w, r, llama, NextId);
            (int? model, string attested) = AttestAsProvider(bed, w.Written.ToArray());
            if (model is null)
            {
                return AttackResult.Blocked($"{what}: {attested}");
            }
            host.WriteDevice(r.PromptRecord, owner.EncryptPrompt(Prompt));
            host.WriteDevice(r.Params, Params(session, StepBlock.ModeOpenPrompt, 0, Prompt.Length, biased: false));
            CompletionEntry run = host.ExecuteModel(model.Value);
            (CompletionEntry read, byte[] data) = host.ReadDevice(r.TokenRecord, r.TokenRecordBytes);
            string evidence = $"{what}: {attested}; executeModel {MaliciousHost.Describe(run)}; D2H of the record region {MaliciousHost.Describe(read)}";
            if (succeededIsLeak is not null && run.Succeeded)
            {
                return AttackResult.NotBlocked($"{succeededIsLeak} ({evidence})");
            }
            string? secret = read.Succeeded ? leaked?.Invoke(bed, data) : null;
            if (secret is not null || (read.Succeeded && afterSeal is not null))
            {
                return AttackResult.NotBlocked($"{secret ?? "bytes written after the seal"} reached the host ({evidence})");
            }
            return read.Succeeded && succeededIsLeak is null && !run.Succeeded
                ? AttackResult.NotBlocked($"the step failed but the region was copied out ({evidence})")
                : AttackResult.Blocked(evidence);
        }
    }


    private static byte[] Params(long session, int mode, int start, int seq, bool biased)
    {
        var p = new byte[StepBlock.Bytes];
        void Slot(int slot, long value) => BinaryPrimitives.WriteInt64LittleEndian(p.AsSpan(slot * 8), value);
        Slot(StepBlock.Session, session);
        Slot(StepBlock.Mode, mode);
        Slot(StepBlock.Start, start);
        Slot(StepBlock.Seq, seq);
        if (biased)
        {
            // What a host that wants to bias or replay sampling writes: ignored in CC mode.
            Slot(StepBlock.Temperature, BitConverter.DoubleToInt64Bits(1.0));
            Slot(StepBlock.TopK, 0);
            Slot(StepBlock.TopP, BitConverter.DoubleToInt64Bits(1.0));
        }
        return p;
    }

    private static void WriteParams(Testbed bed, CausalLM llama, int session, int mode, int start, int seq) =>
        bed.Attacker.WriteDevice(llama.Region(llama.Layout.Params).Address, Params(session, mode, start, seq, biased: false));

    /// <summary>One step of the victim's loaded program with host-chosen parameters (graph mode).</summary>
    private static CompletionEntry Step(Testbed bed, CausalLM llama, long session, int mode, int start, int seq, byte[]? promptRecord = null, bool biased = false)
    {
        if (promptRecord is not null)
        {
            bed.Attacker.WriteDevice(llama.Region(llama.Layout.PromptRecord!).Address, promptRecord);
        }
        bed.Attacker.WriteDevice(llama.Region(llama.Layout.Params).Address, Params(session, mode, start, seq, biased));
        return bed.Attacker.ExecuteModel(llama.Model.Id);
    }

    /// <summary>
    /// Attacks on a victim's conversation in progress: the model loaded, the victim's session
    /// <paramref name="tokens"/> tokens in; <paramref name="attack"/> gets the model, the victim, its
    /// session and the position the conversation stands at.
    /// </summary>
    private static AttackResult OnVictimConversation(Testbed bed, int tokens, Func<CausalLM, DataOwnerSession, int, int, AttackResult> attack)
    {
        using CausalLM llama = bed.Load();
        (DataOwnerSession victim, int session) = bed.OpenDataOwner();
        using (victim)
        {
            return attack(llama, victim, session, GenerateTo(llama, victim, session, tokens));
        }
    }

    /// <summary>One launch of the host's copy of the list, eagerly.</summary>
    private static CompletionEntry Launch(Testbed bed, LaunchSpec launch) => bed.Attacker.Launch(launch.Handle, launch.Args, launch.Scalars);

    /// <summary>A legitimate generation of <paramref name="tokens"/> tokens on a session; returns the next position.</summary>
    private static int GenerateTo(CausalLM llama, DataOwnerSession owner, int session, int tokens)
    {
        int position = 0;
        foreach (byte[] record in llama.Generate(session, owner.EncryptPrompt(Prompt), Prompt.Length, tokens))
        {
            position = owner.DecryptToken(record).Position;
        }
        return position;
    }

    /// <summary>After a step the host ran, it copies the token record out and tries to open it with its own session.</summary>
    private static AttackResult TryOpenRecord(Testbed bed, CausalLM llama, DataOwnerSession mine, in CompletionEntry step, string what, Func<int, string?>? secret = null)
    {
        if (!step.Succeeded)
        {
            return AttackResult.Blocked($"{what}: nothing was sealed");
        }
        (CompletionEntry read, byte[] bytes) = bed.Attacker.ReadDevice(llama.Region(llama.Layout.TokenRecord!).Address, CausalLMProgram.TokenRecordBytes);
        if (!read.Succeeded)
        {
            return AttackResult.Blocked($"{what}: D2H {MaliciousHost.Describe(read)}");
        }
        try
        {
            TokenMessage t = mine.DecryptToken(bytes);
            return AttackResult.NotBlocked($"{what}: the host opened a token sealed for its session: {secret?.Invoke(t.TokenId) ?? $"token {t.TokenId} at position {t.Position}"}");
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or UnexpectedModelException)
        {
            return AttackResult.Blocked($"{what}: the record is not the host's to open ({ex.GetType().Name})");
        }
    }

    private static AttackResult Answer(CausalLM swapped, DataOwnerSession owner, int session, string what)
    {
        try
        {
            int[] tokens = swapped.Generate(session, owner.EncryptPrompt(Prompt), Prompt.Length, 2).Select(r => owner.DecryptToken(r).TokenId).ToArray();
            return AttackResult.NotBlocked($"{what}: the data owner accepted {tokens.Length} tokens");
        }
        catch (NpuException ex)
        {
            return AttackResult.Blocked($"{what}: {ex.Message}");
        }
        catch (UnexpectedModelException ex)
        {
            return AttackResult.NotBlocked($"{what}: the device ran it; only the data owner's own check caught it ({ex.Message})");
        }
    }

    private static string? PromptLeaked(Testbed bed, byte[] data)
    {
        byte[] ids = new byte[Prompt.Length * 4];
        for (int i = 0; i < Prompt.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(ids.AsSpan(i * 4), Prompt[i]);
        }
        return data.AsSpan().IndexOf(ids) >= 0 ? "the data owner's plaintext prompt" : null;
    }

    private static byte[] EmbeddingBytes(Testbed bed) => WeightConversion.Convert(bed.Weights("model.embed_tokens.weight"), bed.Options.Precision);
}
