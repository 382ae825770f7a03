namespace AscendCC.Protocol.Channels;

/// <summary>
/// Key-rotation limits. Both ends must use the same values. The defaults rekey after 2^24 records or
/// 2^32 bytes per key, orders of magnitude below AES-GCM's limits for a single key (2^32 invocations;
/// confidentiality advantage bounds around 2^36 blocks).
/// </summary>
public sealed class SecureChannelOptions
{
    /// <summary>The defaults.</summary>
    public static SecureChannelOptions Default { get; } = new();

    /// <summary>Records sealed under one key before the sender rotates.</summary>
    public long MaxRecordsPerKey { get; init; } = 1L << 24;

    /// <summary>Plaintext bytes sealed under one key before the sender rotates.</summary>
    public long MaxBytesPerKey { get; init; } = 1L << 32;

    /// <summary>Largest plaintext in one record.</summary>
    public int MaxRecordPlaintext { get; init; } = 16 * 1024 * 1024;

    internal void Validate()
    {
        if (MaxRecordsPerKey < 1 || MaxRecordsPerKey > (1L << 32) || MaxBytesPerKey < 1 || MaxRecordPlaintext < 1 || MaxRecordPlaintext > int.MaxValue - 64)
        {
            throw new ArgumentOutOfRangeException(nameof(SecureChannelOptions), "Secure-channel limits out of range.");
        }
    }
}
