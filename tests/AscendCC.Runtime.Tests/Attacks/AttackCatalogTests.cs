using AscendCC.Attacks;
using NUnit.Framework;

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

    [Test]
    public void CatalogCoversEveryRequirementWithUniqueNames()
    {
        Assert.That(AttackCatalog.All.Select(a => a.Name), Is.Unique);
        Assert.That(AttackCatalog.All.Select(a => a.Requirement).Distinct(), Is.SupersetOf(new[] { "R1", "R2", "R3", "R4", "R5", "R6", "Teardown" }));
    }
}
