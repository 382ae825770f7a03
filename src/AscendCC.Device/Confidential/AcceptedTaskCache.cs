using System.Buffers;
using System.Buffers.Binary;
using AscendCC.Device.Scheduler;

namespace AscendCC.Device.Confidential;

/// <summary>
/// The eager tasks an attested model's list has already been found to contain, by their exact
/// operands. Re-measuring every eager launch (a SHA-256 over its canonical form) is what made eager
/// CC slow; a launch with the same operator handle, addresses, sizes and scalars measures the same
/// for as long as the model stays loaded, because attestation pinned every region such a launch can
/// name (operator binaries, buffers, scalar sources) — none can be freed and reallocated with
/// another role while the cache exists. The cache belongs to one model's attestation and dies with it.
/// </summary>
internal sealed class AcceptedTaskCache
{
    // Bounded so a host cannot grow firmware memory without limit; past it, launches are still
    // checked, only measured each time.
    private const int Capacity = 8192;
    private const int StackKeyBytes = 512;

    private readonly HashSet<byte[]> _keys = new(KeyComparer.Instance);
    private readonly HashSet<byte[]>.AlternateLookup<ReadOnlySpan<byte>> _lookup;

    public AcceptedTaskCache() => _lookup = _keys.GetAlternateLookup<ReadOnlySpan<byte>>();

    /// <summary>Entries held.</summary>
    public int Count => _keys.Count;

    /// <summary>True when a task with exactly <paramref name="t"/>'s operands was accepted before.</summary>
    public bool Contains(ref DecodedTask t)
    {
        int length = KeyLength(ref t);
        byte[]? rented = length > StackKeyBytes ? ArrayPool<byte>.Shared.Rent(length) : null;
        Span<byte> key = rented is null ? stackalloc byte[StackKeyBytes] : rented;
        key = key[..length];
        WriteKey(ref t, key);
        bool found = _lookup.Contains(key);
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
        return found;
    }

    /// <summary>Remembers that <paramref name="t"/> matched the attested list.</summary>
    public void Add(ref DecodedTask t)
    {
        if (_keys.Count >= Capacity)
        {
            return;
        }
        var key = new byte[KeyLength(ref t)];
        WriteKey(ref t, key);
        _keys.Add(key);
    }

    // Task id and flags are left out: the measurement ignores them too.
    private static int KeyLength(ref DecodedTask t) => 2 + (4 * 8) + (t.ArgCount * 16) + (t.ScalarCount * 9);

    private static void WriteKey(ref DecodedTask t, Span<byte> key)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(key, (ushort)t.Kind);
        BinaryPrimitives.WriteUInt64LittleEndian(key[2..], t.A);
        BinaryPrimitives.WriteUInt64LittleEndian(key[10..], t.B);
        BinaryPrimitives.WriteUInt64LittleEndian(key[18..], t.C);
        BinaryPrimitives.WriteUInt64LittleEndian(key[26..], t.D);
        int at = 34;
        for (int i = 0; i < t.ArgCount; i++, at += 16)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(key[at..], t.Args![i].Address);
            BinaryPrimitives.WriteInt64LittleEndian(key[(at + 8)..], t.Args[i].Bytes);
        }
        for (int i = 0; i < t.ScalarCount; i++, at += 9)
        {
            key[at] = (byte)t.Scalars![i].Source;
            BinaryPrimitives.WriteUInt64LittleEndian(key[(at + 1)..], t.Scalars[i].Value);
        }
    }

    private sealed class KeyComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly KeyComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj) => GetHashCode((ReadOnlySpan<byte>)obj);

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> alternate)
        {
            var hash = new HashCode();
            hash.AddBytes(alternate);
            return hash.ToHashCode();
        }

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
    }
}
