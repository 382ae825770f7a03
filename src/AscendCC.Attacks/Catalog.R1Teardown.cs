using System.Buffers.Binary;
using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Packaging;
using AscendCC.Protocol.Channels;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Driver;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.ModelProviders;
using static AscendCC.Attacks.AttackKit;
using AscendCC.Runtime.Inference;

namespace AscendCC.Attacks;

public static partial class AttackCatalog
{
    private static IEnumerable<Attack> R1()
    {
        yield return new Attack("R1_TamperedStagedChunk", "R1", "model.embed_tokens.weight",
            "Open the staged package, then flip one ciphertext byte of the first tensor in HBM staging before the device unlocks it.",
            bed =>
            {
                Staged p = Stage(bed, bed.Package, bed.ReleaseKey());
                int index = p.Manifest.IndexOf("model.embed_tokens.weight");
                ulong at = p.Address + (ulong)p.ItemOffset(index) + 5;
                bed.Attacker.WriteDevice(at, [(byte)(bed.Package[(long)(at - p.Address)] ^ 0x01)]);
                return UnlockRefused(bed, p, index, "tampered byte");
            });
        yield return new Attack("R1_ChunksSwappedBetweenTensors", "R1", "layernorm",
            "Swap the (equal-sized) ciphertexts of two tensors in HBM staging, so each unlock reads the other tensor's chunk.",
            bed =>
            {
                Staged p = Stage(bed, bed.Package, bed.ReleaseKey());
                int a = p.Manifest.IndexOf("model.layers.0.input_layernorm.weight"), b = p.Manifest.IndexOf("model.layers.0.post_attention_layernorm.weight");
                long size = p.Manifest.Items[a].ByteLength + 16L * p.Manifest.Items[a].ChunkCount;
                byte[] ca = bed.Package.AsSpan((int)p.ItemOffset(a), (int)size).ToArray(), cb = bed.Package.AsSpan((int)p.ItemOffset(b), (int)size).ToArray();
                bed.Attacker.WriteDevice(p.Address + (ulong)p.ItemOffset(a), cb);
                bed.Attacker.WriteDevice(p.Address + (ulong)p.ItemOffset(b), ca);
                return All(UnlockRefused(bed, p, a, "swapped chunk"), UnlockRefused(bed, p, b, "swapped chunk"));
            });
        yield return new Attack("R1_TruncatedPackage", "R1", "ends inside",
            "Open the package with a length that cuts the last tensor short, then unlock that tensor.",
            bed =>
            {
                byte[] digest = bed.ReleaseKey();
                Staged p = Stage(bed, bed.Package, digest, length: bed.Package.Length - 40);
                if (p.Refusal is not null)
                {
                    return AttackResult.Blocked($"OpenPackage of a truncated package: {p.Refusal}");
                }
                return UnlockRefused(bed, p, p.Manifest.Items.Count - 1, "truncated item");
            });
        yield return new Attack("R1_UnlockIntoALargerRegion", "R1", "must fill a region of exactly that size",
            "Unlock a tensor into a weight region larger than the tensor (the rest would be bytes nobody attested, in a region the device then treats as that tensor), and into part of a region.",
            bed =>
            {
                Staged p = Stage(bed, bed.Package, bed.ReleaseKey());
                PackageItem item = p.Manifest.Items[0];
                ulong larger = bed.Attacker.Alloc(item.ByteLength + 64, RegionTag.Weights).Result;
                ulong exact = bed.Attacker.Alloc(item.ByteLength, RegionTag.Weights).Result;
                return All(UnlockInto(bed, p, 0, larger, item.ByteLength + 64, "into a larger region"),
                           UnlockInto(bed, p, 0, exact + 8, item.ByteLength - 8, "into part of a region"));
            });
        yield return new Attack("R1_UnlockIntoAnActivationsRegion", "R1", "must be unlocked into a Weights region",
            "Unlock a tensor into an activations region of exactly its size: weights must live in weight regions, which only attested lists bind as weights.",
            bed =>
            {
                Staged p = Stage(bed, bed.Package, bed.ReleaseKey());
                PackageItem item = p.Manifest.Items[0];
                return UnlockInto(bed, p, 0, bed.Attacker.Alloc(item.ByteLength, RegionTag.Activations).Result, item.ByteLength, "into an activations region");
            });
        yield return new Attack("R1_UnlockTwiceIntoOneRegion", "R1", "already holds",
            "Unlock a tensor into a weight region, then unlock another tensor of the same size over it: a region holds one item for good.",
            bed =>
            {
                Staged p = Stage(bed, bed.Package, bed.ReleaseKey());
                int a = p.Manifest.IndexOf("model.layers.0.input_layernorm.weight"), b = p.Manifest.IndexOf("model.layers.0.post_attention_layernorm.weight");
                PackageItem item = p.Manifest.Items[a];
                ulong region = bed.Attacker.Alloc(item.ByteLength, RegionTag.Weights).Result;
                ulong unlock = bed.Runtime.LoadOperator("package_unlock");
                CompletionEntry first = bed.Attacker.Launch(unlock, [new KernelArgument(region, item.ByteLength), KernelArgument.None], [KernelScalar.Of(p.Handle), KernelScalar.Of(a)]);
                return first.Succeeded
                    ? UnlockInto(bed, p, b, region, item.ByteLength, "a second tensor over the first")
                    : AttackResult.NotBlocked($"setup: the first unlock failed, so the second was not tried: {MaliciousHost.Describe(first)}");
            });
        yield return new Attack("R1_TamperedInPlaceCiphertext", "R1", "model.embed_tokens.weight",
            "Write a tensor's ciphertext into its (still host-writable) weight region with one byte flipped, then have the device lock and decrypt it in place.",
            bed =>
            {
                Staged p = Stage(bed, bed.Package, bed.ReleaseKey(), headerOnly: true);
                int index = p.Manifest.IndexOf("model.embed_tokens.weight");
                return UnlockInPlaceRefused(bed, p, index, index, ciphertext => ciphertext[5] ^= 0x01, "flipped byte");
            });
        yield return new Attack("R1_InPlaceTagsOfAnotherTensor", "R1", "layernorm",
            "Decrypt a tensor in place with the chunk tags of another tensor of the same size.",
            bed =>
            {
                Staged p = Stage(bed, bed.Package, bed.ReleaseKey(), headerOnly: true);
                int a = p.Manifest.IndexOf("model.layers.0.input_layernorm.weight"), b = p.Manifest.IndexOf("model.layers.0.post_attention_layernorm.weight");
                return UnlockInPlaceRefused(bed, p, a, b, _ => { }, "another tensor's tags");
            });
        yield return new Attack("R1_PackageOfAnotherProvider", "R1", "No model key has been released",
            "Stage a package exported by another model provider (another key, another manifest digest) and open it with the released key's digest, then with its own.",
            bed =>
            {
                byte[] digest = bed.ReleaseKey();
                using ModelProvider other = ModelProvider.CreateDeterministic("another provider's signing seed, 32+ bytes"u8);
                using var stream = new MemoryStream();
                using ProtectedModel foreign = ModelPackageExporter.Export(other, bed.Deployment, bed.Weights, bed.Policy, stream, "other");
                byte[] package = stream.ToArray();
                Staged withReleased = Stage(bed, package, digest);
                Staged withOwn = Stage(bed, package, foreign.Manifest.Digest.ToArray());
                return All(
                    withReleased.Refusal is null ? AttackResult.NotBlocked("the foreign package opened under the released key's manifest digest") : AttackResult.Blocked($"OpenPackage(foreign, released digest): {withReleased.Refusal}"),
                    withOwn.Refusal is null ? AttackResult.NotBlocked("the foreign package opened without its key being released") : AttackResult.Blocked($"OpenPackage(foreign, its own digest): {withOwn.Refusal}"));
            });
        yield return new Attack("R1_ReplayedPromptRecord", "R1", "replay",
            "After a generation, stage the same sealed prompt record again on the same session and run.",
            bed =>
            {
                using CausalLM llama = bed.Load();
                (DataOwnerSession owner, int session) = bed.OpenDataOwner();
                using (owner)
                {
                    byte[] record = owner.EncryptPrompt(Prompt);
                    foreach (byte[] r in llama.Generate(session, record, Prompt.Length, 2))
                    {
                        owner.DecryptToken(r);
                    }
                    try
                    {
                        int n = llama.Generate(session, record, Prompt.Length, 2).Count();
                        return AttackResult.NotBlocked($"the replayed prompt record produced {n} sealed tokens");
                    }
                    catch (NpuException ex)
                    {
                        return AttackResult.Blocked($"replayed prompt: {ex.Message}");
                    }
                }
            });
        yield return new Attack("R1_PromptRecordOnAnotherSession", "R1", "prompt_open",
            "Stage data owner A's sealed prompt on data owner B's device session.",
            bed =>
            {
                using CausalLM llama = bed.Load();
                (DataOwnerSession a, _) = bed.OpenDataOwner();
                (DataOwnerSession b, int sessionB) = bed.OpenDataOwner();
                using (a)
                using (b)
                {
                    try
                    {
                        int n = llama.Generate(sessionB, a.EncryptPrompt(Prompt), Prompt.Length, 2).Count();
                        return AttackResult.NotBlocked($"A's prompt ran on B's session ({n} tokens)");
                    }
                    catch (NpuException ex)
                    {
                        return AttackResult.Blocked($"A's prompt on B's session: {ex.Message}");
                    }
                }
            });
        yield return new Attack("R1_DroppedTokenRecord", "R1", "dropped or reordered",
            "Relay the sealed token records but drop the second one; the data owner must notice the gap.",
            bed => Relay(bed, records => [records[0], records[2], records[3]]));
        yield return new Attack("R1_ReplayedTokenRecord", "R1", "replayed",
            "Relay the first sealed token record twice.",
            bed => Relay(bed, records => [records[0], records[0], records[1]]));
        yield return new Attack("R1_ReorderedTokenRecords", "R1", "dropped or reordered",
            "Relay the second and third sealed token records in swapped order.",
            bed => Relay(bed, records => [records[0], records[2], records[1], records[3]]));
    }

    private static AttackResult Relay(Testbed bed, Func<List<byte[]>, byte[][]> tamper)
    {
        using CausalLM llama = bed.Load();
        (DataOwnerSession owner, int session) = bed.OpenDataOwner();
        using (owner)
        {
            List<byte[]> records = llama.Generate(session, owner.EncryptPrompt(Prompt), Prompt.Length, 4).ToList();
            int accepted = 0;
            try
            {
                foreach (byte[] r in tamper(records))
                {
                    owner.DecryptToken(r);
                    accepted++;
                }
                return AttackResult.NotBlocked($"the data owner accepted all {accepted} relayed records");
            }
            catch (SecureChannelException ex)
            {
                return AttackResult.Blocked($"data owner accepted {accepted} record(s), then: {ex.GetType().Name}: {ex.Message}");
            }
        }
    }

    private sealed record Staged(ulong Address, int Handle, ModelManifest Manifest, long DataStart, string? Refusal)
    {
        public long ItemOffset(int index) => DataStart + Manifest.Items.Take(index).Sum(i => i.ByteLength + 16L * i.ChunkCount);
    }

    /// <summary>The host stages a package (or only its signed header) in input staging and asks the firmware to open it (raw mailbox bytes).</summary>
    private static Staged Stage(Testbed bed, byte[] package, byte[] digest, long? length = null, bool headerOnly = false)
    {
        MaliciousHost host = bed.Attacker;
        if (headerOnly)
        {
            int header = PackageFile.ReadLayout(package).HeaderLength;
            package = package[..header];
            length = header;
        }
        ulong address = host.Alloc(package.Length, RegionTag.InputStaging).Result;
        host.WriteDevice(address, package);
        var request = new byte[16 + digest.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(request, address);
        BinaryPrimitives.WriteInt64LittleEndian(request.AsSpan(8), length ?? package.Length);
        digest.CopyTo(request, 16);
        var (status, payload, text) = host.Mailbox(MailboxCommand.OpenPackage, request);
        ModelManifest manifest = PackageFile.ReadManifest(package);
        long dataStart = 12 + manifest.Encoded.Length + 96;
        return status == MailboxStatus.Ok
            ? new Staged(address, BinaryPrimitives.ReadInt32LittleEndian(payload), manifest, dataStart, null)
            : new Staged(address, 0, manifest, dataStart, $"{status}: {text}");
    }

    /// <summary>The host asks the device to unlock item <paramref name="index"/> into a fresh weight region; blocked when refused.</summary>
    private static AttackResult UnlockRefused(Testbed bed, Staged p, int index, string what)
    {
        PackageItem item = p.Manifest.Items[index];
        ulong region = bed.Attacker.Alloc(item.ByteLength, RegionTag.Weights).Result;
        ulong unlock = bed.Runtime.LoadOperator("package_unlock");
        CompletionEntry e = bed.Attacker.Launch(unlock, [new KernelArgument(region, item.ByteLength), KernelArgument.None], [KernelScalar.Of(p.Handle), KernelScalar.Of(index)]);
        return Refused(e, $"package_unlock of '{item.Name}' ({what})");
    }

    /// <summary>The host asks the device to unlock item <paramref name="index"/> into <paramref name="bytes"/> at <paramref name="address"/>; blocked when refused.</summary>
    private static AttackResult UnlockInto(Testbed bed, Staged p, int index, ulong address, long bytes, string what)
    {
        ulong unlock = bed.Runtime.LoadOperator("package_unlock");
        CompletionEntry e = bed.Attacker.Launch(unlock, [new KernelArgument(address, bytes), KernelArgument.None], [KernelScalar.Of(p.Handle), KernelScalar.Of(index)]);
        return Refused(e, $"package_unlock of '{p.Manifest.Items[index].Name}' ({what})");
    }

    /// <summary>
    /// The in-place unlock as the host drives it: item <paramref name="index"/>'s chunk ciphertexts
    /// (after <paramref name="tamper"/>) into a fresh weight region, the tags of item
    /// <paramref name="tagsOf"/> into staging, then package_unlock; blocked when refused.
    /// </summary>
    private static AttackResult UnlockInPlaceRefused(Testbed bed, Staged p, int index, int tagsOf, Action<byte[]> tamper, string what)
    {
        PackageLayout layout = PackageFile.ReadLayout(bed.Package);
        PackageItem item = p.Manifest.Items[index];
        var ciphertext = new byte[item.ByteLength];
        for (int chunk = 0; chunk < item.ChunkCount; chunk++)
        {
            (long from, int length, long to) = layout.ChunkCiphertext(index, chunk);
            bed.Package.AsSpan((int)from, length).CopyTo(ciphertext.AsSpan((int)to));
        }
        tamper(ciphertext);
        byte[] tags = layout.GatherTags(bed.Package).AsSpan((int)layout.TagOffset(tagsOf), (int)layout.TagLength(tagsOf)).ToArray();
        MaliciousHost host = bed.Attacker;
        ulong region = host.Alloc(item.ByteLength, RegionTag.Weights).Result;
        ulong tagRegion = host.Alloc(tags.Length, RegionTag.InputStaging).Result;
        AttackResult? notWritten = host.WriteDevice(region, ciphertext) is { Status: CompletionStatus.Success } ? null
            : AttackResult.NotBlocked("setup: the host could not write the ciphertext into a fresh weight region, so the in-place path was not exercised");
        host.WriteDevice(tagRegion, tags);
        ulong unlock = bed.Runtime.LoadOperator("package_unlock");
        CompletionEntry e = host.Launch(unlock, [new KernelArgument(region, item.ByteLength), new KernelArgument(tagRegion, tags.Length)], [KernelScalar.Of(p.Handle), KernelScalar.Of(index)]);
        return notWritten ?? Refused(e, $"in-place package_unlock of '{item.Name}' ({what})");
    }

    private static IEnumerable<Attack> Teardown()
    {
        yield return new Attack("Teardown_FreeThenResetReadsZeros", "Teardown", "all zero",
            "After a session the host frees every region, reallocates over the same addresses (still in CC mode, then after a reset to CC off) and reads them back.",
            bed => Scrubbed(bed, freeFirst: true));
        yield return new Attack("Teardown_ResetWithLiveRegionsReadsZeros", "Teardown", "all zero",
            "With the model still loaded (regions live and pinned), reset the device into CC off, reallocate over the same addresses and read them back.",
            bed => Scrubbed(bed, freeFirst: false));
    }

    private static AttackResult Scrubbed(Testbed bed, bool freeFirst)
    {
        CausalLM llama = LoadAndGenerate(bed);
        var regions = llama.Layout.Program.Buffers.Select(b => llama.Region(b)).Append(llama.StagedPackage).ToList();
        ulong low = regions.Min(r => r.Address), high = regions.Max(r => r.Address + (ulong)r.Bytes);
        var steps = new List<AttackResult>();
        MaliciousHost host = bed.Attacker;
        if (freeFirst)
        {
            llama.Dispose();
            bed.Runtime.Synchronize();
            // Still in CC mode: the reallocated range is an output staging region without a sealed record.
            long size = (long)(high - low);
            CompletionEntry again = host.Alloc(size, RegionTag.OutputStaging);
            steps.Add(again.Succeeded ? ReadRegion(host, again.Result, size, $"CC on: D2H of a {size}-byte region reallocated at 0x{again.Result:x} after the free") : Refused(again, "CC on realloc"));
        }
        (MailboxStatus status, string? message) = bed.Device.Reset(new DeviceBootOptions(bed.SignedFirmware, CcMode.Off));
        if (status != MailboxStatus.Ok)
        {
            return AttackResult.NotBlocked($"setup: reset to CC off failed: {message}");
        }
        CompletionEntry alloc = host.Alloc((long)high - (long)0x1_0000_0000UL, RegionTag.General);
        if (!alloc.Succeeded || alloc.Result > low)
        {
            return AttackResult.NotBlocked($"setup: could not reallocate over 0x{low:x}..0x{high:x}: {MaliciousHost.Describe(alloc)}");
        }
        (CompletionEntry read, byte[] data) = host.ReadDevice(alloc.Result, (long)(high - alloc.Result));
        var debug = new byte[data.Length];
        DebugStatus ds = bed.Device.DebugReadMemory(alloc.Result, debug);
        bool zero = read.Succeeded && AllZero(data) && ds == DebugStatus.Ok && AllZero(debug);
        steps.Add(new AttackResult(zero ? AttackOutcome.Blocked : AttackOutcome.NotBlocked,
            $"CC off after reset: reallocated 0x{alloc.Result:x}..0x{high:x} covering all {regions.Count} former regions; D2H {read.Status}, debug read {ds}: {(zero ? "all zero" : "NON-ZERO bytes of the previous session")}"));
        return All([.. steps]);
    }
}
