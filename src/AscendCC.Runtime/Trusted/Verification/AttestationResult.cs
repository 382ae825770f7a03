using System.Text;
using AscendCC.Protocol.Attestation;

namespace AscendCC.Runtime.Trusted.Verification;

/// <summary>
/// Every check's result plus the overall verdict. There is no token to forward: a relying party that
/// needs a decision verifies the report itself, offline.
/// </summary>
public sealed class AttestationResult
{
    internal AttestationResult(IReadOnlyList<CheckResult> checks, AttestationReport? report)
    {
        Checks = checks;
        Report = report;
        PolicySatisfied = checks.Count == Enum.GetValues<AttestationCheck>().Length && checks.All(c => c.Passed);
    }

    /// <summary>Results of all checks, in <see cref="AttestationCheck"/> order.</summary>
    public IReadOnlyList<CheckResult> Checks { get; }

    /// <summary>True only if every check passed.</summary>
    public bool PolicySatisfied { get; }

    /// <summary>The parsed report, or null if it was malformed. Trust its contents only if <see cref="PolicySatisfied"/>.</summary>
    public AttestationReport? Report { get; }

    /// <summary>The result of one check.</summary>
    public CheckResult this[AttestationCheck check] => Checks.First(c => c.Check == check);

    /// <summary>The failed checks.</summary>
    public IEnumerable<CheckResult> Failures => Checks.Where(c => !c.Passed);

    /// <inheritdoc />
    public override string ToString()
    {
        var text = new StringBuilder();
        text.AppendLine(PolicySatisfied ? "Attestation: policy satisfied" : "Attestation: policy NOT satisfied");
        foreach (CheckResult check in Checks)
        {
            text.AppendLine(check.ToString());
        }
        return text.ToString();
    }
}
