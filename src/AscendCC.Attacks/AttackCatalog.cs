namespace AscendCC.Attacks;

/// <summary>
/// Every attack of the malicious host, by requirement. Each runs on its own fresh testbed (see
/// <see cref="Attack.Options"/>); the regression suite asserts each is blocked with the right rule named.
/// </summary>
public static partial class AttackCatalog
{
    /// <summary>All attacks, R1 to R6, teardown, then the attacks on confidential contexts (the host also playing a party).</summary>
    public static IReadOnlyList<Attack> All { get; } = [.. R1(), .. R2(), .. R3(), .. R4(), .. R5(), .. R6(), .. Teardown(), .. Contexts(), .. Batch()];

    /// <summary>Creates the testbed an attack expects (tiny random model unless it says otherwise).</summary>
    public static Testbed CreateTestbed(Attack attack)
    {
        ArgumentNullException.ThrowIfNull(attack);
        return Testbed.CreateTiny(attack.Options);
    }

    /// <summary>Runs one attack on a fresh testbed; an exception thrown by the attack's setup surfaces as is.</summary>
    public static AttackResult Run(Attack attack)
    {
        using Testbed bed = CreateTestbed(attack);
        return attack.Run(bed);
    }
}
