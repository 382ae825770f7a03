namespace AscendCC.Device.Operators;

/// <summary>
/// The operator package that ships with the device (as CANN's operator package ships with an Ascend
/// card): the binaries a runtime loads into HBM, and their digests. Reading it reveals nothing of any
/// device's state; it is the published kernel library.
/// </summary>
public static class OperatorCatalog
{
    /// <summary>Names of every operator the device can execute.</summary>
    public static IReadOnlyList<string> Names { get; } = OperatorTable.Names.Order(StringComparer.Ordinal).ToArray();

    /// <summary>The binary of operator <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such operator; the message lists the known ones.</exception>
    public static ReadOnlyMemory<byte> GetBinary(string name)
    {
        if (!OperatorTable.TryGetBinary(name, out byte[] binary))
        {
            throw new KeyNotFoundException($"The device has no operator '{name}'. Known operators: {string.Join(", ", Names)}.");
        }
        return binary;
    }

    /// <summary>SHA-256 digest of operator <paramref name="name"/>'s binary.</summary>
    public static byte[] GetDigest(string name) => OperatorBinary.Digest(GetBinary(name).Span);

    /// <summary>Names of the buffer arguments of <paramref name="name"/>, in launch order.</summary>
    public static IReadOnlyList<string> GetArgumentNames(string name) =>
        (OperatorTable.FindByName(name) ?? throw new KeyNotFoundException($"The device has no operator '{name}'.")).ArgumentNames;

    /// <summary>The argument contract of <paramref name="name"/>.</summary>
    public static string GetSignature(string name) =>
        (OperatorTable.FindByName(name) ?? throw new KeyNotFoundException($"The device has no operator '{name}'.")).Signature;
}
