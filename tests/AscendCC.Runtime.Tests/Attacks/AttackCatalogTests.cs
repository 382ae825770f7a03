using AscendCC.Attacks;
using NUnit.Framework;
using AscendCC.Runtime.Inference;

namespace AscendCC.Runtime.Tests.Attacks;

/// <summary>
/// Every attack of the catalog, each on a fresh tiny-model testbed, must be blocked — and blocked for
/// the right reason: the evidence must name the rule the attack runs into (see docs/security.md).
/// </summary>
public class AttackCatalogTests
{
    private static IEnumerable<TestCaseData> Attacks() =>
        AttackCatalog.All.Select(a => new TestCaseData(a).SetName(a.Name).SetCategory(a.Requirement));

    [TestCaseSource(nameof(Attacks))]
    public void AttackIsBlocked(Attack attack)
    {
        AttackResult result = AttackCatalog.Run(attack);
        TestContext.Out.WriteLine($"{attack.Name} [{attack.Requirement}]: {result}");
        Assert.That(result.Outcome, Is.EqualTo(AttackOutcome.Blocked), result.Evidence);
        Assert.That(result.Evidence, Does.Contain(attack.ExpectedEvidence), "blocked, but not by the rule this attack targets");
    }

    private static IEnumerable<TestCaseData> EagerAttacks() =>
        AttackCatalog.All.Where(a => a.Name.StartsWith("R4_Eager", StringComparison.Ordinal))
            .Select(a => new TestCaseData(a).SetName(a.Name + "_OnAnEagerTestbed").SetCategory(a.Requirement));

    /// <summary>
    /// On an eager testbed the model's own launches ran (and were remembered as accepted) before the
    /// attack: a launch that differs from one of them only in a binding must still be refused.
    /// </summary>
    [TestCaseSource(nameof(EagerAttacks))]
    public void EagerAttackIsBlockedAfterTheModelsOwnLaunchesWereAccepted(Attack attack)
    {
        using Testbed bed = Testbed.CreateTiny((attack.Options ?? new TestbedOptions()) with { Mode = AscendCC.Runtime.Inference.ExecutionMode.Eager });
        AttackResult result = attack.Run(bed);
        TestContext.Out.WriteLine($"{attack.Name} [{attack.Requirement}] eager: {result}");
        Assert.That(result.Outcome, Is.EqualTo(AttackOutcome.Blocked), result.Evidence);
        Assert.That(result.Evidence, Does.Contain(attack.ExpectedEvidence), "blocked, but not by the rule this attack targets");
    }

    [Test]
    public void CatalogCoversEveryRequirementWithUniqueNames()
    {
        Assert.That(AttackCatalog.All.Select(a => a.Name), Is.Unique);
        Assert.That(AttackCatalog.All.Select(a => a.Requirement).Distinct(), Is.SupersetOf(new[] { "R1", "R2", "R3", "R4", "R5", "R6", "Teardown" }));
    }
}
