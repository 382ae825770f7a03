using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace AscendCC.Device.Operators;

/// <summary>Which compute unit runs an operator.</summary>
public enum ExecutionUnit : ushort
{
    /// <summary>The DaVinci AI Cores (cube and vector units).</summary>
    AiCore = 0,
    /// <summary>The general-purpose AI CPUs (custom operators such as AES-GCM).</summary>
    AiCpu = 1,
}

/// <summary>
/// The operator-binary format: what the runtime copies into HBM and the AI Cores execute.
/// <code>
/// "ACCOPBIN" | u32 format (1) | u32 kernel ABI | u16 unit | u16 name length | name (UTF-8)
///            | u16 signature length | signature (UTF-8) | u32 code length | code
/// </code>
/// The code section is the kernel's microcode: the device runs a binary only if the SHA-256 of all
/// its bytes is in the AI Cores' microcode table, so any changed byte makes it a different, unknown
/// operator. That digest is what task attestation measures.
/// </summary>
public static class OperatorBinary
{
    private static ReadOnlySpan<byte> Magic => "ACCOPBIN"u8;

    /// <summary>The current format version.</summary>
    public const uint FormatVersion = 1;

    /// <summary>Largest binary the device accepts.</summary>
    public const int MaxSize = 1 << 20;

    /// <summary>SHA-256 of an operator binary: its identity for execution and attestation.</summary>
    public static byte[] Digest(ReadOnlySpan<byte> binary) => SHA256.HashData(binary);

    internal static byte[] Build(string name, uint abi, ExecutionUnit unit, string signature)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        byte[] sigBytes = Encoding.UTF8.GetBytes(signature);
        // The simulated microcode: deterministic bytes derived from the kernel's identity, standing in
        // for the instruction stream a real compiler would emit for this kernel version.
        byte[] code = new byte[256];
        byte[] seed = SHA256.HashData(Encoding.UTF8.GetBytes($"AscendCC.Device microcode|{name}|abi {abi}|{unit}|{signature}"));
        for (int i = 0; i < code.Length; i += 32)
        {
            seed = SHA256.HashData(seed);
            seed.CopyTo(code, i);
        }
        var buffer = new byte[8 + 4 + 4 + 2 + 2 + nameBytes.Length + 2 + sigBytes.Length + 4 + code.Length];
        Span<byte> s = buffer;
        Magic.CopyTo(s);
        int o = 8;
        BinaryPrimitives.WriteUInt32LittleEndian(s[o..], FormatVersion); o += 4;
        BinaryPrimitives.WriteUInt32LittleEndian(s[o..], abi); o += 4;
        BinaryPrimitives.WriteUInt16LittleEndian(s[o..], (ushort)unit); o += 2;
        BinaryPrimitives.WriteUInt16LittleEndian(s[o..], (ushort)nameBytes.Length); o += 2;
        nameBytes.CopyTo(s[o..]); o += nameBytes.Length;
        BinaryPrimitives.WriteUInt16LittleEndian(s[o..], (ushort)sigBytes.Length); o += 2;
        sigBytes.CopyTo(s[o..]); o += sigBytes.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(s[o..], (uint)code.Length); o += 4;
        code.CopyTo(s[o..]);
        return buffer;
    }

    /// <summary>Reads the name of an operator binary, checking its framing; null when the bytes are not a well-formed binary.</summary>
    public static string? TryReadName(ReadOnlySpan<byte> binary)
    {
        if (binary.Length < 22 || binary.Length > MaxSize || !binary[..8].SequenceEqual(Magic)
            || BinaryPrimitives.ReadUInt32LittleEndian(binary[8..]) != FormatVersion)
        {
            return null;
        }
        int o = 20;
        int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(binary[18..]);
        if (o + nameLength + 2 > binary.Length)
        {
            return null;
        }
        string name = Encoding.UTF8.GetString(binary.Slice(o, nameLength));
        o += nameLength;
        int sigLength = BinaryPrimitives.ReadUInt16LittleEndian(binary[o..]);
        o += 2 + sigLength;
        if (o + 4 > binary.Length)
        {
            return null;
        }
        long codeLength = BinaryPrimitives.ReadUInt32LittleEndian(binary[o..]);
        return o + 4 + codeLength == binary.Length ? name : null;
    }
}
