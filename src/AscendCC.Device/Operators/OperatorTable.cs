using System.Collections.Frozen;

namespace AscendCC.Device.Operators;

/// <summary>
/// The AI Cores' microcode table: operator-binary digest → kernel. A binary whose digest is not
/// here is not executable, whatever its name says.
/// </summary>
internal static class OperatorTable
{
    private static readonly FrozenDictionary<string, (IOperator Op, byte[] Binary)> ByName;
    private static readonly FrozenDictionary<string, IOperator> ByDigest;

    static OperatorTable()
    {
        var byName = new Dictionary<string, (IOperator, byte[])>(StringComparer.Ordinal);
        var byDigest = new Dictionary<string, IOperator>(StringComparer.Ordinal);
        foreach (IOperator op in BuiltinOperators.Create())
        {
            byte[] binary = OperatorBinary.Build(op.Name, op.Abi, op.Unit, op.Signature);
            byName.Add(op.Name, (op, binary));
            byDigest.Add(Convert.ToHexString(OperatorBinary.Digest(binary)), op);
        }
        ByName = byName.ToFrozenDictionary(StringComparer.Ordinal);
        ByDigest = byDigest.ToFrozenDictionary(StringComparer.Ordinal);
    }

    public static IEnumerable<string> Names => ByName.Keys;

    public static bool TryGetBinary(string name, out byte[] binary)
    {
        if (ByName.TryGetValue(name, out var entry))
        {
            binary = entry.Binary;
            return true;
        }
        binary = [];
        return false;
    }

    public static IOperator? FindByDigest(ReadOnlySpan<byte> digest) =>
        ByDigest.TryGetValue(Convert.ToHexString(digest), out IOperator? op) ? op : null;

    public static IOperator? FindByName(string name) => ByName.TryGetValue(name, out var e) ? e.Op : null;
}
