using AscendCC.Protocol.Packaging;
using AscendCC.Attacks;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Trusted.Verification;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Tests.Models;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Confidential;

/// <summary>Confidential inference end to end: the same tokens as llama2.c, with the host relaying only ciphertext.</summary>
public class ConfidentialInferenceTests
{
    /// <summary>
    /// Both layouts: the Hugging Face folder (half-rotation RoPE) and llama2.c's .bin (interleaved RoPE).
    /// With a context of 512 the prompt staging region is sized for a 512-token bucket while the
    /// prompt's record holds a 256-token one: prompt_open reads the record's own length.
    /// </summary>
    [TestCase(ExecutionMode.Graph, "", 512)]
    [TestCase(ExecutionMode.Eager, "", 128)]
    [TestCase(ExecutionMode.Graph, "stories260K.bin", 128)]
    [TestCase(ExecutionMode.Eager, "stories260K.bin", 128)]
    public void ConfidentialGreedyGenerationReproducesTheReference(ExecutionMode mode, string layout, int maxContext)
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs reference = ReferenceOutputs.Load(folder, "once_upon_a_time");
        using var world = Testbed.FromCheckpoint(Path.Combine(folder, layout), new TestbedOptions { Mode = mode, MaxContext = maxContext, MaxBatchTokens = 3 });
        using CausalLM llama = world.Load();
        int[] tokens = world.Generate(llama, reference.PromptTokens, reference.GeneratedTokens.Length);
        Assert.That(tokens, Is.EqualTo(reference.GeneratedTokens));
    }

    [TestCase(ExecutionMode.Graph)]
    [TestCase(ExecutionMode.Eager)]
    public void EveryTokenRecordNamesItsPositionAndNeverEndOfSequence(ExecutionMode mode)
    {
        // The position in a token record is where the token goes: the prompt's length for the first,
        // then one more per decode step. End of sequence is the data owner's to recognise (the device
        // does not know the model's EOS ids, and the host must not learn it): the device never sets it.
        using Testbed bed = Testbed.CreateTiny(new TestbedOptions { Mode = mode, MaxBatchTokens = 2 });
        using CausalLM llama = bed.Load();
        (Runtime.Trusted.DataOwners.DataOwnerSession owner, int session) = bed.OpenDataOwner(requiredModel: llama.Manifest!.ExpectedGraphMeasurement);
        using (owner)
        {
            int[] prompt = [1, 5, 9, 4, 7];
            Protocol.Messages.TokenMessage[] tokens = [.. llama.Generate(session, owner.EncryptPrompt(prompt), prompt.Length, 6).Select(r => owner.DecryptToken(r))];
            Assert.That(tokens.Select(t => t.Position), Is.EqualTo(new[] { 5, 6, 7, 8, 9, 10 }));
            Assert.That(tokens.Select(t => t.EndOfSequence), Is.All.False);
        }
    }

    [Test]
    public void ATruncatedPackageIsRefusedBeforeAnythingIsStagedAndTheDeviceStaysUsable()
    {
        using var world = Testbed.CreateTiny();
        byte[] digest = world.ReleaseKey();
        long allocatedBefore = world.Runtime.MemoryInfo.Allocated;
        var ex = Assert.Throws<FormatException>(() => CausalLM.LoadConfidential(world.Runtime, world.Deployment, world.Package.AsMemory(..^40), digest));
        Assert.That(ex!.Message, Does.Contain("truncated").And.Contain("copy the whole file again"));
        Assert.That(world.Runtime.MemoryInfo.Allocated, Is.EqualTo(allocatedBefore), "a refused load must leave no HBM behind");
        using CausalLM llama = CausalLM.LoadConfidential(world.Runtime, world.Deployment, world.Package, digest);
        Assert.That(world.Generate(llama, [1, 5, 9], 2), Has.Length.EqualTo(2));
    }

    [Test]
    public void ATamperedCiphertextFailsTheLoadNamingTheTensorAndFreesEverything()
    {
        using var world = Testbed.CreateTiny();
        byte[] digest = world.ReleaseKey();
        // One good load first: the runtime keeps the operator binaries it loaded (a cache), which is not a leak.
        CausalLM.LoadConfidential(world.Runtime, world.Deployment, world.Package, digest).Dispose();
        long allocatedBefore = world.Runtime.MemoryInfo.Allocated;
        PackageLayout layout = PackageFile.ReadLayout(world.Package);
        int index = layout.Manifest.IndexOf("model.norm.weight");
        byte[] tampered = [.. world.Package];
        tampered[layout.ChunkCiphertext(index, 0).PackageOffset + 3] ^= 0x80;
        var ex = Assert.Catch<Exception>(() => CausalLM.LoadConfidential(world.Runtime, world.Deployment, tampered, digest));
        Assert.That(ex!.Message, Does.Contain("model.norm.weight"));
        Assert.That(world.Runtime.MemoryInfo.Allocated, Is.EqualTo(allocatedBefore), "a failed load must free what it allocated");
    }

    [Test]
    public void FreeingTheStagingOfAnOpenPackageIsRefusedSayingWhatToCloseFirst()
    {
        using var world = Testbed.CreateTiny();
        world.Load().Dispose();
        long allocatedBefore = world.Runtime.MemoryInfo.Allocated;
        CausalLM llama = world.Load();
        var refusal = Assert.Throws<Driver.NpuException>(() => llama.StagedPackage.Dispose());
        Assert.That(refusal!.Message, Does.Contain("open model package").And.Contain("ClosePackage"));
        // The refused free did not lose the region: disposing the model closes the package and frees it.
        llama.Dispose();
        Assert.That(world.Runtime.MemoryInfo.Allocated, Is.EqualTo(allocatedBefore));
    }

    [Test]
    public void ProviderAndDeviceAgreeOnTheGraphMeasurement()
    {
        string folder = TestData.RequireModel("stories260K");
        using var world = Testbed.FromCheckpoint(folder, new TestbedOptions { MaxContext = 128, MaxBatchTokens = 64 });
        Assert.That(world.Model.Manifest.ExpectedGraphMeasurement.ToArray(), Is.EqualTo(world.Deployment.Measure(world.Provider.VerificationKey, world.Model.Manifest.ModelName)));
        using CausalLM llama = world.Load();
        // The device accepted the task list: a generation runs.
        Assert.That(world.Generate(llama, [1, 403], 2), Has.Length.EqualTo(2));
    }

    [Test]
    public void TheDataOwnerCanRequireTheModelTheDeviceRuns()
    {
        // A generated tiny Llama: this check needs no shared model.
        using var world = Testbed.CreateTiny();
        using CausalLM llama = world.Load();
        byte[] expected = world.Model.Manifest.ExpectedGraphMeasurement.ToArray();

        (var owner, int _) = world.OpenDataOwner(new VerificationPolicy { ExpectedModelMeasurement = expected });
        owner.Dispose();

        byte[] other = (byte[])expected.Clone();
        other[0] ^= 1;
        var ex = Assert.Throws<AttestationFailedException>(() => world.OpenDataOwner(new VerificationPolicy { ExpectedModelMeasurement = other }));
        CheckResult check = ex!.Result![AttestationCheck.ModelMeasurement];
        Assert.That(check.Passed, Is.False);
        Assert.That(check.Detail, Does.Contain("Model register"));
    }
}
