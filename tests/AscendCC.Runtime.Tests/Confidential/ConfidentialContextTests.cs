using System.Buffers.Binary;
using System.Reflection;
using AscendCC.Attacks;
using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Trusted.DataOwners;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Confidential;

/// <summary>
/// Confidential contexts as a legitimate service uses them: several data owners taking turns on one
/// model, each with its own sampling settings; and the device state that must not outlive a boot.
/// The attacks on the same rules are in the catalog (Context_*).
/// </summary>
public class ConfidentialContextTests
{
    private static readonly int[] PromptA = [1, 7, 11, 13, 17], PromptB = [1, 3, 5];

    [TestCase(ExecutionMode.Graph)]
    [TestCase(ExecutionMode.Eager)]
    public void DataOwnersTakingTurnsEachGetTheirOwnAnswer(ExecutionMode mode)
    {
        using var bed = Testbed.CreateTiny(new TestbedOptions { Mode = mode });
        using CausalLM llama = bed.Load();
        (DataOwnerSession a, int sessionA) = bed.OpenDataOwner();
        (DataOwnerSession b, int sessionB) = bed.OpenDataOwner();
        using (a)
        using (b)
        {
            int[] Run(DataOwnerSession owner, int session, int[] prompt) =>
                llama.Generate(session, owner.EncryptPrompt(prompt), prompt.Length, 6).Select(r => owner.DecryptToken(r).TokenId).ToArray();
            int[] firstA = Run(a, sessionA, PromptA), firstB = Run(b, sessionB, PromptB);
            Assert.That(Run(a, sessionA, PromptA), Is.EqualTo(firstA), "A again, after B used the context");
            Assert.That(Run(b, sessionB, PromptB), Is.EqualTo(firstB), "B again, after A used the context");
            Assert.That(a.BoundModel!.Value.ToArray(), Is.EqualTo(bed.Model.Manifest.ExpectedGraphMeasurement.ToArray()), "every token names the model that produced it");

        }
    }

    [TestCase(ExecutionMode.Graph)]
    [TestCase(ExecutionMode.Eager)]
    public void TheDataOwnersSealedSamplingMatchesThePlainDeviceWithTheSameSettings(ExecutionMode mode)
    {
        var sampling = new SamplingOptions(Temperature: 0.9f, TopK: 0, TopP: 0.95f, Seed: 7);
        int[] plain;
        using (var clear = Testbed.CreateTiny(new TestbedOptions { CcMode = CcMode.Off, Mode = mode }))
        using (CausalLM model = clear.LoadPlaintext())
        {
            plain = model.Generate(PromptA, 8, sampling).ToArray();
        }
        using var bed = Testbed.CreateTiny(new TestbedOptions { Mode = mode });
        using CausalLM llama = bed.Load();
        int[] greedy = bed.Generate(llama, PromptA, 8);
        int[] sampled = bed.Generate(llama, PromptA, 8, sampling);
        Assert.That(sampled, Is.EqualTo(plain), "the device samples with the settings sealed in the prompt");
        Assert.That(sampled, Is.Not.EqualTo(greedy), "the tiny model's distribution is wide enough that sampling differs from greedy");
    }

    [TestCase(ExecutionMode.Graph)]
    [TestCase(ExecutionMode.Eager)]
    public void TheDataOwnersSealedPenaltiesMatchThePlainDevice(ExecutionMode mode)
    {
        int[] prompt = [1, 7, 11, 7, 11, 13];
        var sampling = new SamplingOptions(Temperature: 0.8f, Seed: 5, MinP: 0.05f, RepeatPenalty: 1.8f, RepeatLastN: 16, FrequencyPenalty: 0.3f, PresencePenalty: 0.2f);
        int[] plain, plainWithout;
        using (var clear = Testbed.CreateTiny(new TestbedOptions { CcMode = CcMode.Off, Mode = mode }))
        using (CausalLM model = clear.LoadPlaintext())
        {
            plain = model.Generate(prompt, 12, sampling, stopTokens: []).ToArray();
            plainWithout = model.Generate(prompt, 12, sampling with { MinP = 0f, RepeatPenalty = 1f, FrequencyPenalty = 0f, PresencePenalty = 0f }, stopTokens: []).ToArray();
        }
        using var bed = Testbed.CreateTiny(new TestbedOptions { Mode = mode });
        using CausalLM llama = bed.Load();
        Assert.That(bed.Generate(llama, prompt, 12, sampling), Is.EqualTo(plain), "the device applies the penalties sealed in the prompt");
        Assert.That(plain, Is.Not.EqualTo(plainWithout), "the penalties change this reply (else the test shows nothing)");
    }

    [Test]
    public void ADataOwnerWhoseSessionIsTheDevicesFirstIsServed()
    {
        // Session ids start at 1: a data owner may attest and open its channel before any model
        // provider has released a key, and is served once the model is loaded.
        using var bed = Testbed.CreateTiny();
        (DataOwnerSession first, int session) = bed.OpenDataOwner();
        using (first)
        {
            Assert.That(session, Is.EqualTo(1));
            using CausalLM llama = bed.Load();
            int[] tokens = llama.Generate(session, first.EncryptPrompt(PromptA), PromptA.Length, 4).Select(r => first.DecryptToken(r).TokenId).ToArray();
            Assert.That(tokens, Is.EqualTo(bed.Generate(llama, PromptA, 4)));
        }
    }

    [Test]
    public void APromptThatFillsTheWholeContextIsOpenedAndAnswered()
    {
        // The last position of the context holds the prompt's last token; its answer is the one token
        // the context has room to sample (the next step would be position MaxContext).
        using var bed = Testbed.CreateTiny();
        using CausalLM llama = bed.Load();
        int[] full = [.. Enumerable.Range(0, bed.Options.MaxContext).Select(i => 1 + (i % 50))];
        int[] reply = bed.Generate(llama, full, 1);
        Assert.That(reply, Has.Length.EqualTo(1));
        using var clear = Testbed.CreateTiny(new TestbedOptions { CcMode = CcMode.Off });
        using CausalLM plain = clear.LoadPlaintext();
        int last = 0;
        for (int pos = 0; pos < full.Length; pos += bed.Options.MaxBatchTokens)
        {
            last = plain.Forward(full.AsSpan(pos, Math.Min(bed.Options.MaxBatchTokens, full.Length - pos)), pos);
        }
        Assert.That(reply[0], Is.EqualTo(last), "the same token as the plain device at the last position");
    }

    [Test]
    public void AResetForgetsTheDataProfile()
    {
        using var bed = Testbed.CreateTiny(new TestbedOptions { CcMode = CcMode.Off });
        Assert.That(bed.Device.EnableDataProfiling(true), Is.EqualTo(AscendCC.Device.DebugStatus.Ok));
        using (CausalLM model = bed.LoadPlaintext())
        {
            model.Forward(PromptB, 0);
        }
        Assert.That(bed.Device.ReadProfile(), Is.Not.Empty);
        bed.Device.Reset(new AscendCC.Device.DeviceBootOptions(bed.SignedFirmware, CcMode.Off));
        Assert.That(bed.Device.ReadProfile(), Is.Empty, "output bytes of the last boot's kernels must not survive a reset");
    }
    [Test]
    public void AFailedOpenOfAnotherSessionLeavesTheConversationIntact()
    {
        using var bed = Testbed.CreateTiny();
        using CausalLM llama = bed.Load();
        int[] uninterrupted = bed.Generate(llama, PromptA, 6);
        (DataOwnerSession a, int sessionA) = bed.OpenDataOwner();
        (DataOwnerSession host, int hostSession) = bed.OpenDataOwner();
        using (a)
        using (host)
        {
            var tokens = new List<int>();
            using IEnumerator<byte[]> records = llama.Generate(sessionA, a.EncryptPrompt(PromptA), PromptA.Length, 6).GetEnumerator();
            for (int i = 0; i < 3 && records.MoveNext(); i++)
            {
                tokens.Add(a.DecryptToken(records.Current).TokenId);
            }
            // Between two of A's steps, a step that opens another session's prompt and fails a later
            // check (a prompt opens at position 0, not 5).
            bed.Attacker.WriteDevice(llama.Region(llama.Layout.PromptRecord!).Address, host.EncryptPrompt([1, 2]));
            bed.Attacker.WriteDevice(llama.Region(llama.Layout.Params).Address, StepRequest(hostSession, StepBlock.ModeOpenPrompt, 5, 1));
            Assert.That(bed.Attacker.ExecuteModel(llama.Model.Id).Succeeded, Is.False, "the open at position 5 is refused");
            while (records.MoveNext())
            {
                tokens.Add(a.DecryptToken(records.Current).TokenId);
            }
            Assert.That(tokens, Is.EqualTo(uninterrupted), "the refused step neither took the context from A nor touched its KV cache");
        }
    }

    [Test]
    public void ASessionSwitchScrubsTheKvCacheBeforeTheNewSessionsFirstLaunch()
    {
        using var bed = Testbed.CreateTiny(new TestbedOptions { Mode = ExecutionMode.Eager });
        using CausalLM llama = bed.Load();
        bed.Generate(llama, PromptA, 4);
        DeviceBuffer kCache = llama.Region(AttackKit.Buffer(llama, "k_cache.0"));
        Assert.That(ReadBehindTheSmmu(bed.Device, kCache.Address, kCache.Bytes).Any(b => b != 0), Is.True, "the first conversation left keys in the cache");

        (DataOwnerSession b, int sessionB) = bed.OpenDataOwner();
        using (b)
        {
            // Only prompt_open of B's step runs: nothing after it writes the cache, so whatever the
            // cache holds now is what the switch left of A's conversation.
            LaunchSpec open = AttackKit.TaskList(bed, llama)[0];
            bed.Attacker.WriteDevice(llama.Region(llama.Layout.PromptRecord!).Address, b.EncryptPrompt(PromptB));
            bed.Attacker.WriteDevice(llama.Region(llama.Layout.Params).Address, StepRequest(sessionB, StepBlock.ModeOpenPrompt, 0, PromptB.Length));
            Assert.That(bed.Attacker.Launch(open.Handle, open.Args, open.Scalars).Succeeded, Is.True, "B's prompt opens");
        }
        Assert.That(ReadBehindTheSmmu(bed.Device, kCache.Address, kCache.Bytes).All(b => b == 0), Is.True, "nothing of A's keys is left once B's session holds the context");
    }

    [Test]
    public void ClosingTheActiveSessionScrubsTheContextAtOnce()
    {
        using var bed = Testbed.CreateTiny();
        using CausalLM llama = bed.Load();
        DeviceBuffer kCache = llama.Region(AttackKit.Buffer(llama, "k_cache.0"));
        (DataOwnerSession a, int sessionA) = bed.OpenDataOwner();
        using (a)
        {
            Assert.That(llama.Generate(sessionA, a.EncryptPrompt(PromptA), PromptA.Length, 3).Count(), Is.EqualTo(3));
            Assert.That(ReadBehindTheSmmu(bed.Device, kCache.Address, kCache.Bytes).Any(b => b != 0), Is.True, "the conversation left keys in the cache");
            bed.Mailbox.CloseSession(sessionA);
        }
        Assert.That(ReadBehindTheSmmu(bed.Device, kCache.Address, kCache.Bytes).All(b => b == 0), Is.True,
            "a closed session's keys do not wait in HBM for the next session or the region's free");
    }

    private static byte[] StepRequest(int session, int mode, int start, int seq)
    {
        var p = new byte[StepBlock.Bytes];
        BinaryPrimitives.WriteInt64LittleEndian(p.AsSpan(StepBlock.Session * 8), session);
        BinaryPrimitives.WriteInt64LittleEndian(p.AsSpan(StepBlock.Mode * 8), mode);
        BinaryPrimitives.WriteInt64LittleEndian(p.AsSpan(StepBlock.Start * 8), start);
        BinaryPrimitives.WriteInt64LittleEndian(p.AsSpan(StepBlock.Seq * 8), seq);
        return p;
    }

    /// <summary>
    /// HBM as the silicon holds it, past the SMMU and the debug lock: the test's view of device state,
    /// which no host interface offers (white-box, through the device model's internals).
    /// </summary>
    private static unsafe byte[] ReadBehindTheSmmu(NpuDevice device, ulong address, long bytes)
    {
        const BindingFlags Flags = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;
        object hbm = typeof(NpuDevice).GetField("_hbm", Flags)!.GetValue(device)!;
        object region = hbm.GetType().GetMethod("Find", Flags)!.Invoke(hbm, [address, bytes])!;
        var start = (ulong)region.GetType().GetProperty("Address", Flags)!.GetValue(region)!;
        byte* data = (byte*)Pointer.Unbox(region.GetType().GetProperty("Data", Flags)!.GetValue(region)!);
        return new ReadOnlySpan<byte>(data + (long)(address - start), checked((int)bytes)).ToArray();
    }
}
