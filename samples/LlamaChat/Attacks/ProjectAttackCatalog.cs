using AscendCC.Attacks;

namespace LlamaChat.Attacks;

/// <summary>The project's malicious-host catalog (src/AscendCC.Attacks) behind the sample's --attack.</summary>
internal sealed class ProjectAttackCatalog : IAttackCatalog
{
    public IReadOnlyList<AttackInfo> Attacks { get; } =
        AttackCatalog.All.Select(a => new AttackInfo(a.Name, a.Requirement, a.Description)).ToArray();

    public AttackOutcome Run(string name)
    {
        AttackResult result = AttackCatalog.Run(AttackCatalog.All.Single(a => a.Name == name));
        return new AttackOutcome(result.IsBlocked, result.Evidence);
    }
}
