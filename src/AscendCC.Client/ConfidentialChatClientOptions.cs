using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Client;

/// <summary>What a <see cref="ConfidentialChatClient"/> requires of the remote NPU, and how it turns a chat into tokens.</summary>
public sealed record ConfidentialChatClientOptions : TokenChatClientOptions
{
    /// <summary>
    /// The graph measurement of the model the data owner requires (the model provider publishes it: the
    /// expected measurement its signed manifest carries). The device refuses to answer this session
    /// with any other program, and every token record names the model that produced it. Required.
    /// </summary>
    public required ReadOnlyMemory<byte> RequiredModel { get; init; }

    /// <summary>
    /// The package's name on the server. When set, each request asks the server which NPU has it loaded
    /// with the shortest queue and goes there (the NPU is attested like any other); when null, requests go
    /// to the <see cref="RemoteNpu"/>'s own device.
    /// </summary>
    public string? Package { get; init; }

    /// <summary>The attestation policy (default: <see cref="VerificationPolicy.Default"/>).</summary>
    public VerificationPolicy Policy { get; init; } = VerificationPolicy.Default;
}
