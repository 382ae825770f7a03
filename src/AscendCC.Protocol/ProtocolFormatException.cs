namespace AscendCC.Protocol;

/// <summary>
/// A protocol message could not be parsed: it is truncated, too long, has trailing bytes, an unknown
/// version or a field outside its allowed range. The message is rejected as a whole; nothing in it
/// should be trusted.
/// </summary>
public sealed class ProtocolFormatException : FormatException
{
    /// <summary>Creates the exception for <paramref name="messageType"/> and the offending <paramref name="field"/>.</summary>
    public ProtocolFormatException(string messageType, string field, string problem)
        : base($"Malformed {messageType}: field '{field}' {problem}. The message was rejected; request a fresh one from its sender.")
    {
        MessageType = messageType;
        Field = field;
    }

    /// <summary>Creates the exception with a plain message (for serializers).</summary>
    public ProtocolFormatException()
        : this("message", "(unknown)", "is invalid")
    {
    }

    /// <summary>Creates the exception with a plain message (for serializers).</summary>
    public ProtocolFormatException(string message)
        : base(message)
    {
        MessageType = "message";
        Field = "(unknown)";
    }

    /// <summary>Creates the exception with a plain message and inner exception.</summary>
    public ProtocolFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
        MessageType = "message";
        Field = "(unknown)";
    }

    /// <summary>The kind of message that failed to parse, e.g. "attestation report".</summary>
    public string MessageType { get; }

    /// <summary>The field at which parsing stopped.</summary>
    public string Field { get; }
}
