using System.Buffers.Binary;
using System.Security.Cryptography;


namespace AscendCC.Protocol.Measurements;

/// <summary>
/// The canonical, address-free measurement of a task list (requirement R4). Host-chosen device
/// addresses differ from run to run, so they are not measured; instead every buffer is measured by
/// the role of the region it lies in — its tag, and either the package item it was unlocked from
/// (weights, operator binaries: the package's <see cref="Packaging.PackageIdentity"/> and the item
/// name) or its ordinal by first appearance in the list, plus its size — and
/// by the offset and extent inside that region. Operators are measured by the digest of their
/// binary. The model provider computes the same value from its own description of the program, and
/// the device computes it from the task list it was given; they agree exactly when the host changed
/// nothing that matters.
/// </summary>
public sealed class GraphMeasurement : IDisposable
{
    private static readonly byte[] Domain = System.Text.Encoding.ASCII.GetBytes("AscendCC graph measurement v2\0");

    private readonly IncrementalHash _graph = IncrementalHash.CreateHash(HashAlgorithmName.SHA384);
    private readonly IncrementalHash _task = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly Dictionary<ulong, int> _ordinals;
    private readonly bool _frozen;
    private readonly byte[] _scratch = new byte[32];
    private int _tasks;

    /// <summary>Starts a measurement; unnamed regions get ordinals in order of first appearance.</summary>
    public GraphMeasurement()
    {
        _ordinals = new Dictionary<ulong, int>();
        _graph.AppendData(Domain);
    }

    /// <summary>
    /// Starts a measurement that reuses the ordinals of an earlier one and may not add new regions:
    /// for checking single eager launches against an attested graph.
    /// </summary>
    public GraphMeasurement(IReadOnlyDictionary<ulong, int> ordinals)
    {
        ArgumentNullException.ThrowIfNull(ordinals);
        _ordinals = new Dictionary<ulong, int>(ordinals);
        _frozen = true;
        _graph.AppendData(Domain);
    }

    /// <summary>Region key → ordinal, as assigned so far.</summary>
    public IReadOnlyDictionary<ulong, int> Ordinals => _ordinals;

    /// <summary>Number of tasks measured.</summary>
    public int TaskCount => _tasks;

    /// <summary>Begins a task of kind <paramref name="kind"/> (the task ABI's kind number).</summary>
    public void BeginTask(ushort kind)
    {
        _tasks++;
        _task.GetHashAndReset();
        Tag(0x01);
        U64(kind);
    }

    /// <summary>Ends the current task and returns its digest (SHA-256 of its canonical encoding).</summary>
    public byte[] EndTask()
    {
        byte[] digest = _task.GetHashAndReset();
        _graph.AppendData(digest);
        return digest;
    }

    /// <summary>Measures the operator by the digest of its binary.</summary>
    public void Operator(ReadOnlySpan<byte> binaryDigest)
    {
        Tag(0x02);
        Bytes(binaryDigest);
    }

    /// <summary>Measures an absent optional buffer.</summary>
    public void NoBuffer() => Tag(0x03);

    /// <summary>
    /// Measures a buffer argument lying in a region. <paramref name="regionKey"/> identifies the region
    /// within this list (its base address on the device; any stable id elsewhere); <paramref name="itemName"/>
    /// is the package item the region was unlocked from, or null; <paramref name="package"/> is that
    /// package's <see cref="Packaging.PackageIdentity"/> (ignored without an item name).
    /// </summary>
    /// <returns>False when the measurement is frozen and the region is not one it knows.</returns>
    public bool Buffer(ulong regionKey, ushort tag, ReadOnlySpan<byte> package, string? itemName, long regionSize, long offset, long extent)
    {
        Tag(0x04);
        if (!Region(regionKey, tag, package, itemName, regionSize))
        {
            return false;
        }
        U64((ulong)offset);
        U64((ulong)extent);
        return true;
    }

    /// <summary>Measures an immediate scalar.</summary>
    public void Immediate(ulong value)
    {
        Tag(0x05);
        U64(value);
    }

    /// <summary>Measures a scalar read from a region at launch time (its value is data, not structure).</summary>
    /// <returns>False when the measurement is frozen and the region is not one it knows.</returns>
    public bool Indirect(ulong regionKey, ushort tag, ReadOnlySpan<byte> package, string? itemName, long regionSize, long offset)
    {
        Tag(0x06);
        if (!Region(regionKey, tag, package, itemName, regionSize))
        {
            return false;
        }
        U64((ulong)offset);
        return true;
    }

    /// <summary>Measures a plain number that belongs to the task (a copy's length, a memset value).</summary>
    public void Value(ulong value)
    {
        Tag(0x07);
        U64(value);
    }

    /// <summary>The graph measurement: SHA-384 over the domain and every task digest in order.</summary>
    public byte[] Finish()
    {
        Span<byte> count = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(count, (ulong)_tasks);
        _graph.AppendData(count);
        return _graph.GetHashAndReset();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _graph.Dispose();
        _task.Dispose();
    }

    private bool Region(ulong key, ushort tag, ReadOnlySpan<byte> package, string? itemName, long size)
    {
        U64(tag);
        U64((ulong)size);
        if (itemName is not null)
        {
            Tag(0x10);
            Bytes(package);
            Bytes(System.Text.Encoding.UTF8.GetBytes(itemName));
            return true;
        }
        if (!_ordinals.TryGetValue(key, out int ordinal))
        {
            if (_frozen)
            {
                return false;
            }
            ordinal = _ordinals.Count;
            _ordinals.Add(key, ordinal);
        }
        Tag(0x11);
        U64((ulong)ordinal);
        return true;
    }

    private void Tag(byte tag)
    {
        _scratch[0] = tag;
        _task.AppendData(_scratch, 0, 1);
    }

    private void U64(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_scratch, value);
        _task.AppendData(_scratch, 0, 8);
    }

    private void Bytes(ReadOnlySpan<byte> bytes)
    {
        U64((ulong)bytes.Length);
        _task.AppendData(bytes);
    }
}
