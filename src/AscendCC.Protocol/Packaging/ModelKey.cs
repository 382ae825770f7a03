using System.Security.Cryptography;

namespace AscendCC.Protocol.Packaging;

/// <summary>
/// The 256-bit key that protects one model package. Held in a pinned array (so the GC never leaves
/// copies behind) and zeroed on disposal. There is no public accessor for the bytes: the key leaves its
/// owner only inside a secure-channel record to an attested device.
/// </summary>
public sealed class ModelKey : IDisposable
{
    /// <summary>Key size in bytes.</summary>
    public const int Size = 32;

    private readonly byte[] _key = GC.AllocateArray<byte>(Size, pinned: true);
    private bool _disposed;

    private ModelKey()
    {
    }

    /// <summary>Generates a fresh random key.</summary>
    public static ModelKey Generate()
    {
        var key = new ModelKey();
        RandomNumberGenerator.Fill(key._key);
        return key;
    }

    /// <summary>Imports key bytes (device side, after unwrapping from a channel record).</summary>
    internal static ModelKey Import(ReadOnlySpan<byte> key)
    {
        if (key.Length != Size)
        {
            throw new ArgumentException("A model key is 32 bytes.", nameof(key));
        }
        var result = new ModelKey();
        key.CopyTo(result._key);
        return result;
    }

    /// <summary>The key bytes, for in-process cryptography only.</summary>
    internal ReadOnlySpan<byte> Bytes
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _key;
        }
    }

    /// <summary>Zeroes the key.</summary>
    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_key);
        _disposed = true;
    }
}
