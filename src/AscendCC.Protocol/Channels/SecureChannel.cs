using System.Buffers.Binary;
using System.Security.Cryptography;

namespace AscendCC.Protocol.Channels;

/// <summary>
/// One end of an established secure channel: AES-256-GCM with a separate key and IV per direction,
/// a 64-bit sequence number per direction that is part of both the nonce and the associated data, and
/// key rotation by HKDF ratchet. Records must arrive exactly in order; a replay, a gap (drop or
/// reorder) or a modification ends the channel with a typed exception.
/// </summary>
/// <remarks>
/// Record: header (20 bytes: 0xAC 0xC1, version 1, type u8, key epoch u32, sequence u64, plaintext
/// length u32), ciphertext, 16-byte tag. Associated data = header. Nonce = IV(epoch) XOR (0^32 || sequence).
/// Not thread-safe: one sender and one receiver thread may use it only with external locking.
/// </remarks>
public sealed class SecureChannel : IDisposable
{
    /// <summary>Size of the record header.</summary>
    public const int HeaderSize = 20;

    /// <summary>Size of the AES-GCM tag.</summary>
    public const int TagSize = 16;

    /// <summary>Bytes a record adds to its plaintext.</summary>
    public const int Overhead = HeaderSize + TagSize;

    private const byte Magic0 = 0xAC;
    private const byte Magic1 = 0xC1;
    private const byte Version = 1;

    private readonly SecureChannelOptions _options;
    private readonly DirectionState _send;
    private readonly DirectionState _receive;
    private bool _closed;

    internal SecureChannel(ChannelRole role, ReadOnlySpan<byte> sendSecret, ReadOnlySpan<byte> receiveSecret, SecureChannelOptions options)
    {
        options.Validate();
        Role = role;
        _options = options;
        _send = new DirectionState(sendSecret);
        _receive = new DirectionState(receiveSecret);
    }

    /// <summary>The trusted party this channel belongs to.</summary>
    public ChannelRole Role { get; }

    /// <summary>Key epoch used for sending (increments on every rotation).</summary>
    public uint SendEpoch => _send.Epoch;

    /// <summary>Key epoch of the last record received.</summary>
    public uint ReceiveEpoch => _receive.Epoch;

    /// <summary>Size of the record for a plaintext of <paramref name="plaintextLength"/> bytes.</summary>
    public static int RecordSize(int plaintextLength) => checked(plaintextLength + Overhead);

    /// <summary>Encrypts a record into <paramref name="destination"/>; returns the record size.</summary>
    /// <exception cref="ChannelClosedException">The channel failed earlier or was disposed.</exception>
    public int Seal(RecordType type, ReadOnlySpan<byte> plaintext, Span<byte> destination)
    {
        ThrowIfClosed();
        if (plaintext.Length > _options.MaxRecordPlaintext)
        {
            throw new ArgumentException("Plaintext exceeds the record limit; split it.", nameof(plaintext));
        }
        int size = RecordSize(plaintext.Length);
        if (destination.Length < size)
        {
            throw new ArgumentException("Destination too small for the record.", nameof(destination));
        }
        if (_send.Records >= _options.MaxRecordsPerKey || _send.Bytes + plaintext.Length > _options.MaxBytesPerKey)
        {
            _send.Ratchet();
        }
        if (_send.Sequence == ulong.MaxValue)
        {
            Close();
            throw new ChannelClosedException("The channel's sequence space is exhausted; run a new handshake.");
        }

        ulong sequence = _send.Sequence;
        Span<byte> header = destination[..HeaderSize];
        WriteHeader(header, type, _send.Epoch, sequence, plaintext.Length);
        Span<byte> nonce = stackalloc byte[12];
        _send.Nonce(sequence, nonce);
        _send.Aead.Encrypt(nonce, plaintext, destination.Slice(HeaderSize, plaintext.Length), destination.Slice(HeaderSize + plaintext.Length, TagSize), header);
        _send.Sequence++;
        _send.Records++;
        _send.Bytes += plaintext.Length;
        return size;
    }

    /// <summary>Encrypts a record into a new array.</summary>
    public byte[] Seal(RecordType type, ReadOnlySpan<byte> plaintext)
    {
        byte[] record = new byte[RecordSize(plaintext.Length)];
        Seal(type, plaintext, record);
        return record;
    }

    /// <summary>The plaintext length a record declares (header only; not yet authenticated).</summary>
    /// <exception cref="MalformedRecordException">The record is too short or its length field disagrees with its size.</exception>
    public static int PeekPlaintextLength(ReadOnlySpan<byte> record)
    {
        if (record.Length < Overhead)
        {
            throw new MalformedRecordException($"A record is at least {Overhead} bytes; got {record.Length}.");
        }
        uint length = BinaryPrimitives.ReadUInt32BigEndian(record.Slice(16, 4));
        if ((long)length + Overhead != record.Length)
        {
            throw new MalformedRecordException("The record's length field does not match its size: truncated or padded by the relay.");
        }
        return (int)length;
    }

    /// <summary>Authenticates and decrypts the next record into <paramref name="destination"/>.</summary>
    /// <returns>The plaintext length.</returns>
    /// <exception cref="RecordAuthenticationException">The record was modified or is not from this channel.</exception>
    /// <exception cref="RecordReplayException">The record was already received.</exception>
    /// <exception cref="RecordOutOfOrderException">Earlier records are missing (dropped or reordered).</exception>
    /// <exception cref="MalformedRecordException">Invalid framing.</exception>
    /// <exception cref="ChannelClosedException">The channel failed earlier or was disposed.</exception>
    public int Open(ReadOnlySpan<byte> record, Span<byte> destination, out RecordType type)
    {
        ThrowIfClosed();
        try
        {
            return OpenCore(record, destination, out type);
        }
        catch (SecureChannelException)
        {
            Close();
            throw;
        }
    }

    /// <summary>Authenticates and decrypts the next record, which must be of <paramref name="expectedType"/>.</summary>
    /// <exception cref="MalformedRecordException">The record is of another type.</exception>
    public byte[] Open(ReadOnlySpan<byte> record, RecordType expectedType)
    {
        byte[] plaintext = new byte[PeekPlaintextLengthOrClose(record)];
        Open(record, plaintext, out RecordType type);
        if (type != expectedType)
        {
            Close();
            CryptographicOperations.ZeroMemory(plaintext);
            throw new MalformedRecordException($"Expected a {expectedType} record, received {type}.");
        }
        return plaintext;
    }

    /// <summary>Destroys the keys.</summary>
    public void Dispose() => Close();

    private int OpenCore(ReadOnlySpan<byte> record, Span<byte> destination, out RecordType type)
    {
        int length = PeekPlaintextLength(record);
        if (length > _options.MaxRecordPlaintext)
        {
            throw new MalformedRecordException("The record exceeds the channel's size limit.");
        }
        if (destination.Length < length)
        {
            throw new ArgumentException("Destination too small for the plaintext.", nameof(destination));
        }
        ReadOnlySpan<byte> header = record[..HeaderSize];
        if (header[0] != Magic0 || header[1] != Magic1 || header[2] != Version)
        {
            throw new MalformedRecordException("The record header has the wrong magic or version.");
        }
        type = (RecordType)header[3];
        if (!Enum.IsDefined(type))
        {
            throw new MalformedRecordException($"Unknown record type {header[3]}.");
        }
        uint epoch = BinaryPrimitives.ReadUInt32BigEndian(header.Slice(4, 4));
        ulong sequence = BinaryPrimitives.ReadUInt64BigEndian(header.Slice(8, 8));

        if (sequence < _receive.Sequence)
        {
            throw new RecordReplayException($"Record {sequence} was already received (next expected: {_receive.Sequence}); the relay replayed it.");
        }

        DirectionState keys = _receive;
        DirectionState? next = null;
        if (epoch == _receive.Epoch + 1)
        {
            next = _receive.PeekNext();
            keys = next;
        }
        else if (epoch != _receive.Epoch)
        {
            throw new MalformedRecordException($"Record key epoch {epoch} is not the current ({_receive.Epoch}) or next one.");
        }
        else if (_receive.Records >= _options.MaxRecordsPerKey || _receive.Bytes + length > _options.MaxBytesPerKey)
        {
            throw new MalformedRecordException("The sender exceeded the records or bytes allowed under one key without rotating.");
        }

        try
        {
            Span<byte> nonce = stackalloc byte[12];
            keys.Nonce(sequence, nonce);
            try
            {
                keys.Aead.Decrypt(nonce, record.Slice(HeaderSize, length), record.Slice(HeaderSize + length, TagSize), destination[..length], header);
            }
            catch (AuthenticationTagMismatchException ex)
            {
                CryptographicOperations.ZeroMemory(destination[..length]);
                throw new RecordAuthenticationException($"Record {sequence} failed authentication: it was modified in transit or belongs to another channel.", ex);
            }

            if (sequence != _receive.Sequence)
            {
                CryptographicOperations.ZeroMemory(destination[..length]);
                throw new RecordOutOfOrderException($"Received record {sequence} while record {_receive.Sequence} was expected: {sequence - _receive.Sequence} record(s) were dropped or reordered by the relay.");
            }

            if (next is not null)
            {
                _receive.AdoptNext(next);
                next = null;
            }
            _receive.Sequence++;
            _receive.Records++;
            _receive.Bytes += length;
            return length;
        }
        finally
        {
            next?.Dispose();
        }
    }

    private static void WriteHeader(Span<byte> header, RecordType type, uint epoch, ulong sequence, int length)
    {
        header[0] = Magic0;
        header[1] = Magic1;
        header[2] = Version;
        header[3] = (byte)type;
        BinaryPrimitives.WriteUInt32BigEndian(header.Slice(4, 4), epoch);
        BinaryPrimitives.WriteUInt64BigEndian(header.Slice(8, 8), sequence);
        BinaryPrimitives.WriteUInt32BigEndian(header.Slice(16, 4), (uint)length);
    }

    private void ThrowIfClosed()
    {
        if (_closed)
        {
            throw new ChannelClosedException();
        }
    }

    private void Close()
    {
        if (!_closed)
        {
            _closed = true;
            _send.Dispose();
            _receive.Dispose();
        }
    }

    /// <summary>Key material and counters of one direction.</summary>
    private sealed class DirectionState : IDisposable
    {
        private readonly byte[] _secret = new byte[SHA384.HashSizeInBytes];
        private readonly byte[] _iv = new byte[12];
        private AesGcm _aead;

        public DirectionState(ReadOnlySpan<byte> trafficSecret, uint epoch = 0)
        {
            trafficSecret.CopyTo(_secret);
            Epoch = epoch;
            _aead = CreateAead(_secret, _iv);
        }

        public AesGcm Aead => _aead;

        public uint Epoch { get; private set; }

        public ulong Sequence { get; set; }

        public long Records { get; set; }

        public long Bytes { get; set; }

        public void Nonce(ulong sequence, Span<byte> nonce)
        {
            _iv.CopyTo(nonce);
            ulong mixed = BinaryPrimitives.ReadUInt64BigEndian(nonce.Slice(4)) ^ sequence;
            BinaryPrimitives.WriteUInt64BigEndian(nonce.Slice(4), mixed);
        }

        /// <summary>Derives the next epoch's state without committing (the receiver commits only after authentication).</summary>
        public DirectionState PeekNext()
        {
            if (Epoch == uint.MaxValue)
            {
                throw new MalformedRecordException("Key epoch space exhausted.");
            }
            Span<byte> nextSecret = stackalloc byte[SHA384.HashSizeInBytes];
            HKDF.Expand(HashAlgorithmName.SHA384, _secret, nextSecret, "AscendCC channel v1 rekey"u8);
            try
            {
                return new DirectionState(nextSecret, Epoch + 1);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(nextSecret);
            }
        }

        public void Ratchet()
        {
            using DirectionState next = PeekNext();
            AdoptNext(next);
        }

        public void AdoptNext(DirectionState next)
        {
            next._secret.CopyTo(_secret);
            next._iv.CopyTo(_iv);
            _aead.Dispose();
            _aead = CreateAead(_secret, _iv);
            Epoch = next.Epoch;
            Records = 0;
            Bytes = 0;
        }

        public void Dispose()
        {
            _aead.Dispose();
            CryptographicOperations.ZeroMemory(_secret);
            CryptographicOperations.ZeroMemory(_iv);
        }

        private static AesGcm CreateAead(ReadOnlySpan<byte> secret, Span<byte> iv)
        {
            Span<byte> key = stackalloc byte[32];
            try
            {
                HKDF.Expand(HashAlgorithmName.SHA384, secret, key, "AscendCC channel v1 key"u8);
                HKDF.Expand(HashAlgorithmName.SHA384, secret, iv, "AscendCC channel v1 iv"u8);
                return new AesGcm(key, TagSize);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(key);
            }
        }
    }

    // A record whose framing is wrong ends the channel like every other bad record (OpenCore checks
    // the framing again, inside the handler that closes the channel).
    private int PeekPlaintextLengthOrClose(ReadOnlySpan<byte> record)
    {
        ThrowIfClosed();
        try
        {
            return PeekPlaintextLength(record);
        }
        catch (MalformedRecordException)
        {
            Close();
            throw;
        }
    }
}
