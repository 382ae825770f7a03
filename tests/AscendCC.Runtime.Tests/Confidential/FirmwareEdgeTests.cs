using System.Buffers.Binary;
using AscendCC.Attacks;
using AscendCC.Device;
using AscendCC.Protocol.Firmware;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Trusted.DataOwners;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Confidential;

/// <summary>
/// Edges of the confidential firmware that its mutation run found untested: a closed session stays
/// closed, each egress refusal says which rule the copy broke, the host's own (unlocked) memory stays
/// the host's in CC mode, and a package must be staged in input staging but may lie anywhere inside it.
/// </summary>
public class FirmwareEdgeTests
{
    private static readonly int[] Prompt = [1, 7, 11, 13, 17];

    [Test]
    public void AClosedSessionCanNoLongerBeAnswered()
    {
        using var bed = Testbed.CreateTiny();
        using CausalLM llama = bed.Load();
        (DataOwnerSession owner, int session) = bed.OpenDataOwner();
        using (owner)
        {
            Assert.That(llama.Generate(session, owner.EncryptPrompt(Prompt), Prompt.Length, 2).Count(), Is.EqualTo(2));
            bed.Mailbox.CloseSession(session);
            // The data owner's next record, sealed with keys the device must have destroyed.
            byte[] next = owner.EncryptPrompt(Prompt);
            var ex = Assert.Catch(() => llama.Generate(session, next, Prompt.Length, 2).ToArray())!;
            Assert.That(ex.Message, Does.Contain($"session {session} is not an open data-owner session"));
        }
    }

    [Test]
    public void EveryEgressRefusalSaysWhichRuleTheCopyBroke()
    {
        using var bed = Testbed.CreateTiny();
        using CausalLM llama = bed.Load();
        (DataOwnerSession owner, int session) = bed.OpenDataOwner();
        using (owner)
        {
            _ = llama.Generate(session, owner.EncryptPrompt(Prompt), Prompt.Length, 1).ToArray();
        }
        MaliciousHost host = bed.Attacker;
        ulong staging = host.Alloc(256, RegionTag.OutputStaging).Result;
        ulong record = llama.Region(llama.Layout.TokenRecord!).Address;
        ulong input = llama.Region(llama.Layout.PromptRecord!).Address;
        string Refusal(ulong address, long bytes)
        {
            (CompletionEntry e, _) = host.ReadDevice(address, bytes);
            Assert.That(e.Succeeded, Is.False, $"0x{address:x}+{bytes}");
            return MaliciousHost.Describe(e);
        }
        Assert.Multiple(() =>
        {
            Assert.That(Refusal(0x7_0000_0000, 16), Does.Contain("is not inside one allocated region"));
            Assert.That(Refusal(input, 16), Does.Contain("is in a InputStaging region"));
            Assert.That(Refusal(staging, 256), Does.Contain("is in an output staging region that holds no sealed record"));
            Assert.That(Refusal(record, 8), Does.Contain("is not the whole sealed record"));
            Assert.That(host.ReadDevice(record, AscendCC.Runtime.Programs.CausalLMProgram.TokenRecordBytes).Entry.Succeeded, Is.True, "the whole sealed record is what may leave");
        });
    }

    [Test]
    public void TheHostsOwnUnlockedMemoryStaysTheHostsInCcMode()
    {
        using var bed = Testbed.CreateTiny();
        MaliciousHost host = bed.Attacker;
        ulong a = host.Alloc(128, RegionTag.InputStaging).Result, b = host.Alloc(128, RegionTag.InputStaging).Result;
        Assert.Multiple(() =>
        {
            Assert.That(host.WriteDevice(a, [.. Enumerable.Range(0, 128).Select(i => (byte)i)]).Succeeded, Is.True, "write");
            Assert.That(host.CopyOnDevice(a, b, 128).Succeeded, Is.True, "a copy between the host's own regions");
            Assert.That(host.Memset(a, 64, 0xAB).Succeeded, Is.True, "a memset of the host's own region");
            Assert.That(host.SetDmaAccess(b, DmaAccess.Read).Succeeded, Is.True, "DMA access of the host's own region");
        });
    }

    [Test]
    public void TasksNamingAddressesOutsideEveryRegionAreRefusedForWhatTheyAre()
    {
        using var bed = Testbed.CreateTiny();
        MaliciousHost host = bed.Attacker;
        const ulong Nowhere = 0x7_0000_0000;
        ulong locked = host.Alloc(128, RegionTag.Activations).Result, mine = host.Alloc(128, RegionTag.InputStaging).Result;
        CompletionEntry access = host.SetDmaAccess(Nowhere, DmaAccess.Read);
        CompletionEntry fromNowhere = host.CopyOnDevice(Nowhere, mine, 64);
        CompletionEntry lockedToNowhere = host.CopyOnDevice(locked, Nowhere, 64);
        CompletionEntry memsetNowhere = host.Memset(Nowhere, 64, 0);
        Assert.Multiple(() =>
        {
            Assert.That(access.Succeeded, Is.False);
            Assert.That(fromNowhere.Succeeded, Is.False);
            Assert.That(memsetNowhere.Succeeded, Is.False);
            Assert.That(access.Status, Is.Not.EqualTo(CompletionStatus.AccessDenied), MaliciousHost.Describe(access));
            Assert.That(fromNowhere.Status, Is.Not.EqualTo(CompletionStatus.AccessDenied), MaliciousHost.Describe(fromNowhere));
            Assert.That(memsetNowhere.Status, Is.Not.EqualTo(CompletionStatus.AccessDenied), MaliciousHost.Describe(memsetNowhere));
            // Plaintext leaving locked memory for anywhere unlocked, even an address no region holds, is R3's.
            Assert.That(MaliciousHost.Describe(lockedToNowhere), Does.Contain("R3: a copy from locked Activations memory may only go to locked memory"));
        });
    }

    [Test]
    public void AWholeStagedPackageUnlocksEveryItemUpToItsLastByte()
    {
        using var bed = Testbed.CreateTiny();
        byte[] digest = bed.ReleaseKey();
        MaliciousHost host = bed.Attacker;
        ulong staging = host.Alloc(bed.Package.Length, RegionTag.InputStaging).Result;
        host.WriteDevice(staging, bed.Package);
        var items = PackageFile.ReadManifest(bed.Package).Items;
        var request = new byte[16 + digest.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(request, staging);
        BinaryPrimitives.WriteInt64LittleEndian(request.AsSpan(8), bed.Package.Length);
        digest.CopyTo(request, 16);
        (MailboxStatus status, byte[] reply, string text) = host.Mailbox(MailboxCommand.OpenPackage, request);
        Assert.That(status, Is.EqualTo(MailboxStatus.Ok), text);
        int handle = BinaryPrimitives.ReadInt32LittleEndian(reply);
        Assert.That(BinaryPrimitives.ReadInt32LittleEndian(reply.AsSpan(4)), Is.EqualTo(items.Count), "the reply names the package's item count");
        ulong unlock = bed.Runtime.LoadOperator("package_unlock");
        Assert.Multiple(() =>
        {
            // The last item's ciphertext ends where the package ends: the bound is inclusive.
            foreach (int index in new[] { 0, items.Count - 1 })
            {
                ulong region = host.Alloc(items[index].ByteLength, RegionTag.Weights).Result;
                CompletionEntry e = host.Launch(unlock, [new KernelArgument(region, items[index].ByteLength), KernelArgument.None], [KernelScalar.Of(handle), KernelScalar.Of(index)]);
                Assert.That(e.Succeeded, Is.True, $"item {index} ('{items[index].Name}'): {MaliciousHost.Describe(e)}");
            }
        });
    }

    [Test]
    public void APackageMustBeStagedInInputStagingButMayLieAnywhereInsideIt()
    {
        using var bed = Testbed.CreateTiny();
        byte[] digest = bed.ReleaseKey();
        MaliciousHost host = bed.Attacker;
        (MailboxStatus Status, string Text) Open(ulong address)
        {
            var request = new byte[16 + digest.Length];
            BinaryPrimitives.WriteUInt64LittleEndian(request, address);
            BinaryPrimitives.WriteInt64LittleEndian(request.AsSpan(8), bed.Package.Length);
            digest.CopyTo(request, 16);
            (MailboxStatus status, _, string text) = host.Mailbox(MailboxCommand.OpenPackage, request);
            return (status, text);
        }
        // An empty or negative length names no staged bytes at all, even at a staging region's start.
        ulong input = host.Alloc(bed.Package.Length, RegionTag.InputStaging).Result;
        host.WriteDevice(input, bed.Package);
        foreach (long bad in new long[] { 0, -1 })
        {
            var empty = new byte[16 + digest.Length];
            BinaryPrimitives.WriteUInt64LittleEndian(empty, input);
            BinaryPrimitives.WriteInt64LittleEndian(empty.AsSpan(8), bad);
            digest.CopyTo(empty, 16);
            (MailboxStatus s, _, string t) = host.Mailbox(MailboxCommand.OpenPackage, empty);
            Assert.That(s, Is.EqualTo(MailboxStatus.BadRequest), $"length {bad}");
            Assert.That(t, Does.Contain($"the package must be staged inside one InputStaging region; 0x{input:x}+{bad} is not"));
        }

        ulong output = host.Alloc(bed.Package.Length, RegionTag.OutputStaging).Result;
        host.WriteDevice(output, bed.Package);
        (MailboxStatus status, string text) = Open(output);
        Assert.That(status, Is.EqualTo(MailboxStatus.BadRequest));
        Assert.That(text, Does.Contain("the package must be staged inside one InputStaging region"));

        // 4 KiB into a larger input staging region: the device reads the package where it lies.
        ulong larger = host.Alloc(bed.Package.Length + 8192, RegionTag.InputStaging).Result;
        host.WriteDevice(larger + 4096, bed.Package);
        (status, text) = Open(larger + 4096);
        Assert.That(status, Is.EqualTo(MailboxStatus.Ok), text);
    }
}
