using AscendCC.Attacks;
using AscendCC.Protocol.Attestation;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Llama;
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
        using ConfidentialLlama llama = bed.Load();
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
        using (LlamaDeviceModel model = clear.LoadPlaintext())
        {
            plain = model.Generate(PromptA, 8, sampling).ToArray();
        }
        using var bed = Testbed.CreateTiny(new TestbedOptions { Mode = mode });
        using ConfidentialLlama llama = bed.Load();
        int[] greedy = bed.Generate(llama, PromptA, 8);
        int[] sampled = bed.Generate(llama, PromptA, 8, sampling);
        Assert.That(sampled, Is.EqualTo(plain), "the device samples with the settings sealed in the prompt");
        Assert.That(sampled, Is.Not.EqualTo(greedy), "the tiny model's distribution is wide enough that sampling differs from greedy");
    }

    [Test]
    public void AResetForgetsTheDataProfile()
    {
        using var bed = Testbed.CreateTiny(new TestbedOptions { CcMode = CcMode.Off });
        Assert.That(bed.Device.EnableDataProfiling(true), Is.EqualTo(AscendCC.Device.DebugStatus.Ok));
        using (LlamaDeviceModel model = bed.LoadPlaintext())
        {
            model.Forward(PromptB, 0);
        }
        Assert.That(bed.Device.ReadProfile(), Is.Not.Empty);
        bed.Device.Reset(new AscendCC.Device.DeviceBootOptions(bed.SignedFirmware, CcMode.Off));
        Assert.That(bed.Device.ReadProfile(), Is.Empty, "output bytes of the last boot's kernels must not survive a reset");
    }
}
