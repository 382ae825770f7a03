namespace LlamaChat.Attacks;

/// <summary>One attack the sample can list or run.</summary>
/// <param name="Name">Name for --attack.</param>
/// <param name="Requirement">The security requirement it tests (R1..R6).</param>
/// <param name="Description">What the malicious host tries.</param>
internal sealed record AttackInfo(string Name, string Requirement, string Description);

/// <summary>The outcome of running one attack.</summary>
/// <param name="Blocked">True when the defence held.</param>
/// <param name="Evidence">What the device or a party did that shows it.</param>
internal sealed record AttackOutcome(bool Blocked, string Evidence);

/// <summary>
/// The sample's view of an attack catalog; the project's catalog (src/AscendCC.Attacks) plugs in
/// behind it, and tests may substitute their own.
/// </summary>
internal interface IAttackCatalog
{
    IReadOnlyList<AttackInfo> Attacks { get; }

    AttackOutcome Run(string name);
}

/// <summary>Where --attack finds its catalog.</summary>
internal static class AttackCatalogs
{
    /// <summary>The catalog --attack runs: the project's, unless a test substitutes its own.</summary>
    public static IAttackCatalog Current { get; set; } = new ProjectAttackCatalog();
}
