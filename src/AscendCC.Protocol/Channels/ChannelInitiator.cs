using System.Security.Cryptography;
using AscendCC.Protocol.Attestation;

namespace AscendCC.Protocol.Channels;

/// <summary>
/// The trusted party's side of the handshake. Create it only from a report that a verifier accepted
/// together with the device key share that passed the key-binding check; send <see cref="OpenMessage"/>
/// to the device and pass its answer to <see cref="Complete"/>.
/// </summary>
public sealed class ChannelInitiator : IDisposable
{
    private readonly byte[] _transcript;
    private SecureChannel? _channel;

    private ChannelInitiator(ChannelRole role, byte[] openMessage, byte[] transcript, SecureChannel channel)
    {
        Role = role;
        OpenMessage = openMessage;
        _transcript = transcript;
        _channel = channel;
    }

    /// <summary>The party's role.</summary>
    public ChannelRole Role { get; }

    /// <summary>The encoded <see cref="ChannelOpen"/> to relay to the device.</summary>
    public ReadOnlyMemory<byte> OpenMessage { get; }

    /// <summary>Starts a handshake against a verified report.</summary>
    /// <param name="role">The party's role.</param>
    /// <param name="verifiedReport">A report the verifier accepted.</param>
    /// <param name="options">Rotation limits (must match the device's).</param>
    /// <exception cref="ProtocolFormatException">The report's key share is not a P-384 point.</exception>
    public static ChannelInitiator Start(ChannelRole role, AttestationReport verifiedReport, SecureChannelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(verifiedReport);
        using ECDiffieHellman devicePublic = KeyShare.Import(verifiedReport.KeyShare.Span);
        using ECDiffieHellman own = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP384);
        byte[] ownShare = KeyShare.Export(own);
        byte[] transcript = ChannelKeySchedule.Transcript(role, verifiedReport.Digest.Span, verifiedReport.KeyShare.Span, ownShare);
        Span<byte> d2p = stackalloc byte[ChannelKeySchedule.SecretSize];
        Span<byte> p2d = stackalloc byte[ChannelKeySchedule.SecretSize];
        try
        {
            ChannelKeySchedule.Derive(own, devicePublic, transcript, d2p, p2d);
            var channel = new SecureChannel(role, p2d, d2p, options ?? SecureChannelOptions.Default);
            byte[] open = new ChannelOpen(role, verifiedReport.Digest.Span, ownShare).Encode();
            return new ChannelInitiator(role, open, transcript, channel);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(d2p);
            CryptographicOperations.ZeroMemory(p2d);
        }
    }

    /// <summary>Checks the device's key confirmation and hands over the established channel.</summary>
    /// <exception cref="ChannelHandshakeException">The device did not derive the same keys for the same report.</exception>
    public SecureChannel Complete(ReadOnlySpan<byte> acceptRecord)
    {
        SecureChannel channel = _channel ?? throw new ObjectDisposedException(nameof(ChannelInitiator));
        try
        {
            byte[] confirmation = channel.Open(acceptRecord, RecordType.Handshake);
            if (!CryptographicOperations.FixedTimeEquals(confirmation, ChannelKeySchedule.Confirmation(_transcript)))
            {
                channel.Dispose();
                _channel = null;
                throw new ChannelHandshakeException("The device's key confirmation does not match this handshake's transcript.");
            }
        }
        catch (SecureChannelException ex) when (ex is not ChannelHandshakeException)
        {
            channel.Dispose();
            _channel = null;
            throw new ChannelHandshakeException("The device's key confirmation failed: the answer is not from the attested device or was modified.", ex);
        }
        _channel = null;
        return channel;
    }

    /// <summary>Destroys an unfinished handshake's keys.</summary>
    public void Dispose()
    {
        _channel?.Dispose();
        _channel = null;
    }
}

/// <summary>The device's side of the handshake.</summary>
public static class ChannelResponder
{
    /// <summary>
    /// Derives the channel for <paramref name="open"/> with the device's ephemeral key of the report
    /// whose digest it names, and returns the key-confirmation record to send back.
    /// </summary>
    /// <param name="deviceEphemeral">The ephemeral ECDH key attested in the report (single use).</param>
    /// <param name="reportDigest">Digest of that report.</param>
    /// <param name="open">The party's parsed open message.</param>
    /// <param name="options">Rotation limits.</param>
    /// <param name="acceptRecord">Key-confirmation record for the party.</param>
    /// <exception cref="ChannelHandshakeException">The open message names another report.</exception>
    /// <exception cref="ProtocolFormatException">The party key share is not a P-384 point.</exception>
    public static SecureChannel Accept(ECDiffieHellman deviceEphemeral, ReadOnlySpan<byte> reportDigest, ChannelOpen open, SecureChannelOptions options, out byte[] acceptRecord)
    {
        ArgumentNullException.ThrowIfNull(deviceEphemeral);
        ArgumentNullException.ThrowIfNull(open);
        ArgumentNullException.ThrowIfNull(options);
        if (!CryptographicOperations.FixedTimeEquals(reportDigest, open.ReportDigest.Span))
        {
            throw new ChannelHandshakeException("The open message names a different attestation report.");
        }
        using ECDiffieHellman partyPublic = KeyShare.Import(open.PartyKeyShare.Span);
        byte[] deviceShare = KeyShare.Export(deviceEphemeral);
        byte[] transcript = ChannelKeySchedule.Transcript(open.Role, reportDigest, deviceShare, open.PartyKeyShare.Span);
        Span<byte> d2p = stackalloc byte[ChannelKeySchedule.SecretSize];
        Span<byte> p2d = stackalloc byte[ChannelKeySchedule.SecretSize];
        try
        {
            ChannelKeySchedule.Derive(deviceEphemeral, partyPublic, transcript, d2p, p2d);
            var channel = new SecureChannel(open.Role, d2p, p2d, options);
            acceptRecord = channel.Seal(RecordType.Handshake, ChannelKeySchedule.Confirmation(transcript));
            return channel;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(d2p);
            CryptographicOperations.ZeroMemory(p2d);
        }
    }
}
