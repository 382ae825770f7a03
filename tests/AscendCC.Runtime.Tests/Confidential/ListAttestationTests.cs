using System.Text.RegularExpressions;
using AscendCC.Attacks;
using AscendCC.Device;
using AscendCC.Runtime.Inference;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Confidential;

/// <summary>
/// How the firmware attests a task list the host loads in CC mode, driven through the device's raw
/// interface: what a refusal says (which task could not be measured, every signed measurement the list
/// was compared with, weights no package unlocked), that a reset forgets every package, that every
/// region an attested list names is pinned, and what an eager refusal tells the host about the lists it
/// may follow.
/// </summary>
public class ListAttestationTests
{
    [Test]
    public void AListLoadedBeforeAnyPackageIsOpenedIsRefusedAndAResetForgetsEveryPackage()
    {
        using var bed = Testbed.CreateTiny();
        MaliciousHost host = bed.Attacker;
        // A memset list: no operator handle, which a reset would forget.
        byte[] list = MemsetList(host);
        Assert.That(LoadAndRun(host, list), Does.Contain("no model package was opened since the device booted, so there is no signed measurement to compare with; measured "));

        // The provider's package stays the device's context after its model is unloaded and its
        // regions freed: a list is still compared with its signed measurement.
        using (CausalLM llama = bed.Load())
        {
        }
        list = MemsetList(host);
        string expected = Convert.ToHexString(bed.Model.Manifest.ExpectedGraphMeasurement.Span);
        Assert.That(LoadAndRun(host, list), Does.Contain($"expected {expected} (package 1), measured "));

        // A reset destroys the context with the key it was opened under: nothing is compared with it any more.
        Assert.That(bed.Device.Reset().Status, Is.EqualTo(MailboxStatus.Ok));
        list = MemsetList(host);
        Assert.That(LoadAndRun(host, list), Does.Contain("no model package was opened since the device booted"));
    }

    [Test]
    public void AListThatCannotBeMeasuredNamesTheTaskAndWhy()
    {
        using var bed = Testbed.CreateTiny();
        using CausalLM llama = bed.Load();
        MaliciousHost host = bed.Attacker;
        ulong a = host.Alloc(64, RegionTag.Activations).Result;
        ulong add = bed.Runtime.LoadOperator("add");
        var w = new TaskWriter();
        w.KernelLaunch(1, add, [new(a, 64), new(a, 64), new(a, 64)], [KernelScalar.Of(16L)]);
        w.KernelLaunch(2, add, [new(a, 64), new(0x7_0000_0000, 64), new(a, 64)], [KernelScalar.Of(16L)]);
        Assert.That(LoadAndRun(host, w.Written.ToArray()),
            Does.Contain("R4: the task list of model").And.Contain("task 1: buffer 1 at 0x700000000+64 is not inside a region the attested list binds"));
    }

    [Test]
    public void AListIsComparedWithTheSignedMeasurementOfEveryOpenPackage()
    {
        using var bed = Testbed.CreateTiny();
        using CausalLM llama = bed.Load();
        MaliciousHost host = bed.Attacker;
        // The host signs a package of its own expecting this list and has it opened (package 2).
        string hostExpected = Regex.Match(LoadAndRun(host, AddList(bed, host)), "measured ([0-9A-F]{96})").Groups[1].Value;
        (int? model, string evidence) = AttackKit.AttestAsProvider(bed, AddList(bed, host));
        Assert.That(model, Is.Not.Null, evidence);

        string refusal = LoadAndRun(host, AddList(bed, host, "mul"));
        string victimExpected = Convert.ToHexString(bed.Model.Manifest.ExpectedGraphMeasurement.Span);
        Assert.That(refusal, Does.Contain($"expected {victimExpected} (package 1) or {hostExpected} (package 2), measured "));
    }

    [Test]
    public void AListOverWeightsThatNoPackageUnlockedIsRefused()
    {
        using var bed = Testbed.CreateTiny();
        MaliciousHost host = bed.Attacker;
        // Weights the host wrote itself into a fresh weight region (born write-only for the host):
        // never unlocked, so they belong to no package and no measurement may name them.
        ulong weights = host.Alloc(64, RegionTag.Weights).Result;
        Assert.That(host.WriteDevice(weights, new byte[64]).Succeeded, Is.True);
        ulong activations = host.Alloc(64, RegionTag.Activations).Result;
        var w = new TaskWriter();
        w.CopyDeviceToDevice(1, weights, activations, 64);
        (int? model, string evidence) = AttackKit.AttestAsProvider(bed, w.Written.ToArray());
        Assert.That(model, Is.Null, evidence);
        Assert.That(evidence, Does.Contain($"context: the list binds weights '(never unlocked)' at 0x{weights:x}, which no package unlocked; a list attested against package 1 ('host-model') may bind only that package's weights and its own regions"));
    }

    [Test]
    public void AListOverAnotherPackagesWeightsIsRefusedNamingTheWeightsAndTheirPackage()
    {
        AttackResult result = AttackCatalog.Run(AttackCatalog.All.Single(a => a.Name == "Context_HostPackageBindsVictimWeights"));
        Assert.That(result.IsBlocked, Is.True, result.Evidence);
        Assert.That(result.Evidence, Does.Match("context: the list binds weights 'model\\.embed_tokens\\.weight' at 0x[0-9a-f]+, which were unlocked from package 1 \\('"));
    }

    [Test]
    public void EveryRegionAnAttestedListNamesIsPinnedAndAnEagerRefusalNamesEveryListItMayFollow()
    {
        using var bed = Testbed.CreateTiny();
        using CausalLM llama = bed.Load();
        MaliciousHost host = bed.Attacker;
        ulong Alloc() => host.Alloc(64, RegionTag.Activations).Result;
        ulong x = Alloc(), y = Alloc(), z = Alloc(), from = Alloc(), to = Alloc(), cleared = Alloc();
        // The add's element count, in memory the host may write (as a step block is).
        ulong length = host.Alloc(64, RegionTag.InputStaging).Result;
        host.WriteDevice(length, BitConverter.GetBytes(16L));
        var w = new TaskWriter();
        // The length scalar is read from a region no buffer argument names; the copy's and the memset's
        // regions are named by those tasks alone.
        w.KernelLaunch(1, bed.Runtime.LoadOperator("add"), [new(x, 64), new(y, 64), new(z, 64)], [KernelScalar.FromDevice(length)]);
        w.CopyDeviceToDevice(2, from, to, 64);
        w.Memset(3, cleared, 64, 0);
        (int? model, string evidence) = AttackKit.AttestAsProvider(bed, w.Written.ToArray());
        Assert.That(model, Is.Not.Null, evidence);

        Assert.Multiple(() =>
        {
            foreach ((string role, ulong address) in new[] { ("the scalar source", length), ("the copy's source", from), ("the copy's destination", to), ("the memset's region", cleared), ("a buffer", x) })
            {
                CompletionEntry free = host.Free(address);
                Assert.That(free.Succeeded, Is.False, role);
                Assert.That(MaliciousHost.Describe(free), Does.Contain($"R4: region 0x{address:x} is bound by a loaded confidential model"), role);
            }
        });

        // Eagerly, the list's copy and memset write locked memory only as its next tasks: out of order each
        // is refused, naming the address it would have written; in order (after its launch) each runs.
        CompletionEntry earlyCopy = host.CopyOnDevice(from, to, 64), earlyMemset = host.Memset(cleared, 64, 0);
        Assert.Multiple(() =>
        {
            Assert.That(MaliciousHost.Describe(earlyCopy), Does.Contain("R4: in confidential mode a copy into locked memory must be the next task of an attested model's list; this MemcpyDeviceToDevice is not"));
            Assert.That(earlyCopy.FaultAddress, Is.EqualTo(to), "a refused copy names its destination");
            Assert.That(MaliciousHost.Describe(earlyMemset), Does.Contain("R4: in confidential mode a memset of locked memory must be the next task of an attested model's list; this Memset is not"));
            Assert.That(earlyMemset.FaultAddress, Is.EqualTo(cleared), "a refused memset names its region");
        });
        CompletionEntry launch = host.Launch(bed.Runtime.LoadOperator("add"), [new(x, 64), new(y, 64), new(z, 64)], [KernelScalar.FromDevice(length)]);
        Assert.That(launch.Succeeded, Is.True, MaliciousHost.Describe(launch));
        Assert.That(host.CopyOnDevice(from, to, 64).Succeeded, Is.True, "the list's copy, next");
        Assert.That(host.Memset(cleared, 64, 0).Succeeded, Is.True, "the list's memset, next");

        // Two attested lists now (the provider's and the host's own): an eager launch that is the next
        // task of neither is refused with where each list stands.
        CompletionEntry stray = host.Launch(bed.Runtime.LoadOperator("mul"), [new(x, 64), new(y, 64), new(z, 64)], [KernelScalar.Of(16L)]);
        Assert.That(MaliciousHost.Describe(stray), Does.Contain($"(model {llama.Model.Id} expects task 0 of ").And.Contain($", model {model} expects task 0 of 3)"));
    }

    [Test]
    public void AnEagerLaunchOfAHandleWithNoOperatorIsRefusedInCcMode()
    {
        using var bed = Testbed.CreateTiny();
        using CausalLM llama = bed.Load();
        ulong a = bed.Attacker.Alloc(64, RegionTag.Activations).Result;
        CompletionEntry e = bed.Attacker.Launch(a, [new(a, 64)], []);
        Assert.That(e.Succeeded, Is.False);
        Assert.That(MaliciousHost.Describe(e), Does.Contain("R4: in confidential mode eager launches must follow an attested model's list in order, one whole pass at a time; this operator with these bindings"));
    }

    /// <summary>A one-launch list of <paramref name="op"/> over fresh activation regions (the same measurement on each call).</summary>
    private static byte[] AddList(Testbed bed, MaliciousHost host, string op = "add")
    {
        ulong a = host.Alloc(64, RegionTag.Activations).Result, b = host.Alloc(64, RegionTag.Activations).Result;
        var w = new TaskWriter();
        w.KernelLaunch(1, bed.Runtime.LoadOperator(op), [new(a, 64), new(b, 64), new(a, 64)], [KernelScalar.Of(16L)]);
        return w.Written.ToArray();
    }

    /// <summary>A one-memset list over a fresh activation region (the same measurement on each call).</summary>
    private static byte[] MemsetList(MaliciousHost host)
    {
        var w = new TaskWriter();
        w.Memset(1, host.Alloc(64, RegionTag.Activations).Result, 64, 0);
        return w.Written.ToArray();
    }

    /// <summary>Loads <paramref name="list"/> and runs it once: the refusal, which must come.</summary>
    private static string LoadAndRun(MaliciousHost host, byte[] list)
    {
        CompletionEntry load = host.LoadModel(list);
        Assert.That(load.Succeeded, Is.True, "load: " + MaliciousHost.Describe(load));
        CompletionEntry run = host.ExecuteModel((int)load.Result);
        Assert.That(run.Succeeded, Is.False, "the list ran");
        return MaliciousHost.Describe(run);
    }
}
