using System.Buffers.Binary;
using System.Text;

namespace AscendCC.Device;

/// <summary>Commands the firmware mailbox accepts.</summary>
public enum MailboxCommand : ushort
{
    /// <summary>Boot state, CC mode, debug state, firmware version and SVN.</summary>
    GetStatus = 1,
    /// <summary>An attestation report over a 32-byte verifier nonce and a fresh key share (a DeviceHello).</summary>
    GetHello = 2,
    /// <summary>A party's channel-open message; answers with the session id and the accept record.</summary>
    AcceptChannel = 3,
    /// <summary>u32 session, then a model-key release record; the key stays in the device. Answers with the manifest digest.</summary>
    ReleaseModelKey = 4,
    /// <summary>u64 HBM address, u64 length of a staged package, then its manifest digest; answers with u32 package handle and u32 item count.</summary>
    OpenPackage = 5,
    /// <summary>u32 package handle.</summary>
    ClosePackage = 6,
    /// <summary>u32 session.</summary>
    CloseSession = 7,
    /// <summary>u8 mode: asks for a CC mode change without a reset (always refused once booted).</summary>
    SetCcMode = 8,
}

/// <summary>Mailbox outcome.</summary>
public enum MailboxStatus : ushort
{
    /// <summary>Done; the payload follows.</summary>
    Ok = 0,
    /// <summary>The request is malformed.</summary>
    BadRequest = 1,
    /// <summary>The device has not booted signed firmware (or has no fuses).</summary>
    NotBooted = 2,
    /// <summary>The security rules refused the request.</summary>
    Refused = 3,
    /// <summary>A cryptographic check failed (record, signature, package).</summary>
    AuthenticationFailed = 4,
}

/// <summary>Encodes mailbox requests and decodes responses: <c>u16 command | u16 0 | payload</c> and <c>u16 status | payload or UTF-8 message</c>.</summary>
public static class MailboxMessage
{
    /// <summary>Builds a request.</summary>
    public static byte[] Request(MailboxCommand command, ReadOnlySpan<byte> payload)
    {
        var r = new byte[4 + payload.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(r, (ushort)command);
        payload.CopyTo(r.AsSpan(4));
        return r;
    }

    /// <summary>Splits a response into status and payload.</summary>
    public static MailboxStatus Parse(ReadOnlySpan<byte> response, out ReadOnlySpan<byte> payload)
    {
        if (response.Length < 2)
        {
            payload = default;
            return MailboxStatus.BadRequest;
        }
        payload = response[2..];
        return (MailboxStatus)BinaryPrimitives.ReadUInt16LittleEndian(response);
    }

    /// <summary>The error text of a failed response.</summary>
    public static string ErrorText(ReadOnlySpan<byte> response) => response.Length > 2 ? Encoding.UTF8.GetString(response[2..]) : "(no message)";

    internal static byte[] Ok(ReadOnlySpan<byte> payload)
    {
        var r = new byte[2 + payload.Length];
        payload.CopyTo(r.AsSpan(2));
        return r;
    }

    internal static byte[] Error(MailboxStatus status, string message)
    {
        byte[] text = Encoding.UTF8.GetBytes(message);
        var r = new byte[2 + text.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(r, (ushort)status);
        text.CopyTo(r, 2);
        return r;
    }
}

/// <summary>Outcome of a debug-port access.</summary>
public enum DebugStatus
{
    /// <summary>Done.</summary>
    Ok = 0,
    /// <summary>Confidential mode locks the debug port.</summary>
    Locked = 1,
    /// <summary>The address range is not inside one region.</summary>
    InvalidAddress = 2,
}
