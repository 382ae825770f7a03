using System.Buffers.Binary;
using AscendCC.Device;

namespace AscendCC.Runtime.Confidential;

/// <summary>The firmware refused a mailbox request.</summary>
public sealed class FirmwareMailboxException : Exception
{
    /// <summary>Creates the exception.</summary>
    public FirmwareMailboxException(MailboxCommand command, MailboxStatus status, string message)
        : base($"{command} failed ({status}): {message}")
    {
        Command = command;
        Status = status;
    }

    /// <summary>The request.</summary>
    public MailboxCommand Command { get; }

    /// <summary>The firmware's status code.</summary>
    public MailboxStatus Status { get; }
}

/// <summary>
/// The host's side of the firmware mailbox: it relays the trusted parties' messages to the device and
/// the device's answers back. Every byte passes through the host, none of it opens for the host.
/// </summary>
public sealed class FirmwareMailbox
{
    private readonly NpuDevice _device;

    /// <summary>Binds to a device.</summary>
    public FirmwareMailbox(NpuDevice device) => _device = device ?? throw new ArgumentNullException(nameof(device));

    /// <summary>Optional transcript of relayed messages.</summary>
    public Driver.IHostTranscript? Transcript { get; set; }

    /// <summary>An attestation report and key share over the party's nonce (a DeviceHello).</summary>
    public byte[] GetHello(ReadOnlySpan<byte> nonce) => Call(MailboxCommand.GetHello, nonce).ToArray();

    /// <summary>Hands a party's channel-open message to the device; returns the session and the accept record for the party.</summary>
    public (int Session, byte[] AcceptRecord) AcceptChannel(ReadOnlySpan<byte> openMessage)
    {
        ReadOnlySpan<byte> r = Call(MailboxCommand.AcceptChannel, openMessage);
        return (BinaryPrimitives.ReadInt32LittleEndian(r), r[4..].ToArray());
    }

    /// <summary>Relays a model-key release record to the device's model-provider session; returns the manifest digest it unlocks.</summary>
    public byte[] ReleaseModelKey(int session, ReadOnlySpan<byte> record)
    {
        var p = new byte[4 + record.Length];
        BinaryPrimitives.WriteInt32LittleEndian(p, session);
        record.CopyTo(p.AsSpan(4));
        return Call(MailboxCommand.ReleaseModelKey, p).ToArray();
    }

    /// <summary>Opens a package staged in HBM; returns its handle.</summary>
    public int OpenPackage(ulong address, long length, ReadOnlySpan<byte> manifestDigest)
    {
        var p = new byte[16 + manifestDigest.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(p, address);
        BinaryPrimitives.WriteInt64LittleEndian(p.AsSpan(8), length);
        manifestDigest.CopyTo(p.AsSpan(16));
        return BinaryPrimitives.ReadInt32LittleEndian(Call(MailboxCommand.OpenPackage, p));
    }

    /// <summary>Closes a session.</summary>
    public void CloseSession(int session)
    {
        Span<byte> p = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(p, session);
        Call(MailboxCommand.CloseSession, p);
    }

    /// <summary>Sends a raw request and returns the raw response (for tests playing a malicious host).</summary>
    public byte[] Raw(ReadOnlySpan<byte> request) => _device.Mailbox(request);

    private ReadOnlySpan<byte> Call(MailboxCommand command, ReadOnlySpan<byte> payload)
    {
        byte[] request = MailboxMessage.Request(command, payload);
        Transcript?.Record(Driver.TranscriptChannel.RelayedMessage, request);
        byte[] response = _device.Mailbox(request);
        Transcript?.Record(Driver.TranscriptChannel.RelayedMessage, response);
        MailboxStatus status = MailboxMessage.Parse(response, out ReadOnlySpan<byte> body);
        if (status != MailboxStatus.Ok)
        {
            throw new FirmwareMailboxException(command, status, MailboxMessage.ErrorText(response));
        }
        return response.AsSpan(2);
    }
}
