namespace AscendCC.Protocol.Channels;

/// <summary>Content type of a secure-channel record (authenticated as part of the header).</summary>
public enum RecordType
{
    /// <summary>Handshake key confirmation.</summary>
    Handshake = 1,

    /// <summary>A model key released by the model provider.</summary>
    ModelKeyRelease = 2,

    /// <summary>The data owner's encrypted prompt.</summary>
    Prompt = 3,

    /// <summary>One generated output token.</summary>
    Token = 4,

    /// <summary>Other application data.</summary>
    Application = 5,
}

/// <summary>Which trusted party runs a channel; part of the key derivation, so the roles' keys never coincide.</summary>
public enum ChannelRole
{
    /// <summary>The model provider (releases model keys).</summary>
    ModelProvider = 1,

    /// <summary>The data owner (sends prompts, receives tokens).</summary>
    DataOwner = 2,
}
