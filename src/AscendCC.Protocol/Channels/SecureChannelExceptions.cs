using System.Security.Cryptography;

namespace AscendCC.Protocol.Channels;

/// <summary>
/// Base of every secure-channel failure. After any failure the channel is closed for good: an
/// attacker must not get a second try, and the parties must run a fresh attested handshake.
/// </summary>
public class SecureChannelException : CryptographicException
{
    /// <summary>Creates the exception.</summary>
    public SecureChannelException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public SecureChannelException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public SecureChannelException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A record failed AES-GCM authentication: its header, ciphertext or tag was modified, or it belongs to another channel.</summary>
public sealed class RecordAuthenticationException : SecureChannelException
{
    /// <summary>Creates the exception.</summary>
    public RecordAuthenticationException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public RecordAuthenticationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public RecordAuthenticationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A record with an already consumed sequence number arrived: a replay.</summary>
public sealed class RecordReplayException : SecureChannelException
{
    /// <summary>Creates the exception.</summary>
    public RecordReplayException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public RecordReplayException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public RecordReplayException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>An authentic record arrived ahead of its turn: earlier records were dropped or reordered by the relay.</summary>
public sealed class RecordOutOfOrderException : SecureChannelException
{
    /// <summary>Creates the exception.</summary>
    public RecordOutOfOrderException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public RecordOutOfOrderException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public RecordOutOfOrderException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A record's framing is invalid (size, magic, version, epoch or record type).</summary>
public sealed class MalformedRecordException : SecureChannelException
{
    /// <summary>Creates the exception.</summary>
    public MalformedRecordException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public MalformedRecordException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public MalformedRecordException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The channel was used after an earlier failure or after disposal.</summary>
public sealed class ChannelClosedException : SecureChannelException
{
    /// <summary>Creates the exception.</summary>
    public ChannelClosedException()
        : base("The secure channel is closed after an earlier failure; run a new attested handshake.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ChannelClosedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public ChannelClosedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The handshake failed: unknown or consumed device key share, wrong role, or key confirmation mismatch.</summary>
public sealed class ChannelHandshakeException : SecureChannelException
{
    /// <summary>Creates the exception.</summary>
    public ChannelHandshakeException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ChannelHandshakeException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public ChannelHandshakeException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
