using System.Buffers;
using System.Buffers.Binary;
using AscendCC.Device.Scheduler;

namespace AscendCC.Device.Confidential;

/// <summary>
/// The eager tasks an attested model's list has already been found to match, by list index and exact
/// operands. Re-measuring every eager launch (a SHA-256 over its canonical form) is what made eager
/// CC slow; a launch with the same operator handle, addresses, sizes and scalars measures the same
/// for as long as the model stays loaded, because attestation pinned every region such a launch can
/// name (operator binaries, buffers, scalar sources) — none can be freed and reallocated with
/// another role while the cache exists. One key per index, so the cache never grows beyond the list.
/// The cache belongs to one model's attestation and dies with it.
/// </summary>
internal sealed class AcceptedTaskCache
{
    private const int StackKeyBytes = 512;

    private readonly byte[]?[] _keys;

    public AcceptedTaskCache(int tasks) => _keys = new byte[]?[tasks];

    /// <summary>True when the task at <paramref name="index"/> was matched before by a task with exactly <paramref name="t"/>'s operands.</summary>
    public bool Matches(int index, ref DecodedTask t)
    {
        byte[]? known = _keys[index];
        if (known is null)
        {
            return false;
        }
        int length = KeyLength(ref t);
        if (length != known.Length)
        {
            return false;
        }
        byte[]? rented = length > StackKeyBytes ? ArrayPool<byte>.Shared.Rent(length) : null;
        Span<byte> key = rented is null ? stackalloc byte[StackKeyBytes] : rented;
        key = key[..length];
        WriteKey(ref t, key);
        bool found = key.SequenceEqual(known);
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
        return found;
    }

    /// <summary>Remembers that <paramref name="t"/> matched the task at <paramref name="index"/>.</summary>
    public void Remember(int index, ref DecodedTask t)
    {
        var key = new byte[KeyLength(ref t)];
        WriteKey(ref t, key);
        _keys[index] = key;
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
}
