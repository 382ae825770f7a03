namespace AscendCC.Attacks;

/// <summary>Whether the system stopped an attack.</summary>
public enum AttackOutcome
{
    /// <summary>The device (or a trusted party) refused, and nothing protected reached the host.</summary>
    Blocked,
    /// <summary>The attack achieved its goal: a security requirement is broken.</summary>
    NotBlocked,
}

/// <summary>What an attack achieved, with the evidence: completion statuses and details, refusals, exceptions.</summary>
/// <param name="Outcome">Blocked or not.</param>
/// <param name="Evidence">What the device or party answered, in its own words.</param>
public sealed record AttackResult(AttackOutcome Outcome, string Evidence)
{
    /// <summary>True when blocked.</summary>
    public bool IsBlocked => Outcome == AttackOutcome.Blocked;

    /// <summary>A blocked attack.</summary>
    public static AttackResult Blocked(string evidence) => new(AttackOutcome.Blocked, evidence);

    /// <summary>A successful attack (a real vulnerability).</summary>
    public static AttackResult NotBlocked(string evidence) => new(AttackOutcome.NotBlocked, evidence);

    /// <inheritdoc />
    public override string ToString() => $"{Outcome}: {Evidence}";
}

/// <summary>One attack of a malicious host against a confidential inference.</summary>
public interface IAttack
{
    /// <summary>A unique name (also the test name).</summary>
    string Name { get; }

    /// <summary>The requirement it attacks: R1..R6, or Teardown.</summary>
    string Requirement { get; }

    /// <summary>What the host does and what it hopes to get.</summary>
    string Description { get; }

    /// <summary>
    /// Text the evidence of a correct refusal must contain — the rule the device or verifier names
    /// (e.g. "R3:" or "Freshness"), so that a refusal for an unrelated reason does not count.
    /// </summary>
    string ExpectedEvidence { get; }

    /// <summary>Runs the attack on a fresh testbed (it may first set up legitimate state).</summary>
    AttackResult Run(Testbed testbed);
}

/// <summary>An attack given by a delegate: the catalog's entries.</summary>
/// <param name="Name">Unique name.</param>
/// <param name="Requirement">R1..R6 or Teardown.</param>
/// <param name="ExpectedEvidence">What a correct refusal names.</param>
/// <param name="Description">What the host does.</param>
/// <param name="Body">The attack.</param>
public sealed record Attack(string Name, string Requirement, string ExpectedEvidence, string Description, Func<Testbed, AttackResult> Body) : IAttack
{
    /// <summary>Options of the testbed this attack needs (null: the default tiny CC-On graph testbed).</summary>
    public TestbedOptions? Options { get; init; }

    /// <inheritdoc />
    public AttackResult Run(Testbed testbed)
    {
        ArgumentNullException.ThrowIfNull(testbed);
        return Body(testbed);
    }

    /// <inheritdoc />
    public override string ToString() => Name;
}
