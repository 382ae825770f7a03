using System.Security.Cryptography.X509Certificates;
using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.Verification;
using static AscendCC.Attacks.AttackKit;
using AscendCC.Runtime.Inference;

namespace AscendCC.Attacks;

public static partial class AttackCatalog
{
    private static IEnumerable<Attack> R5()
    {
        yield return new Attack("R5_UnsignedFirmware", "R5", "Firmware rejected",
            "Reset the NPU into an unsigned firmware image (the encoded image without its CMS signature).",
            bed => Boot(bed, bed.Firmware.Encode(), "unsigned firmware"));
        yield return new Attack("R5_ModifiedFirmware", "R5", "Firmware rejected",
            "Reset the NPU into the genuine signed firmware with one payload byte changed.",
            bed =>
            {
                byte[] image = bed.SignedFirmware.ToArray();
                int at = image.AsSpan().IndexOf("NPU firmware 7"u8);
                image[at] ^= 0x20;
                return Boot(bed, image, "signed firmware with a modified payload byte");
            });
        yield return new Attack("R5_RollbackToOlderSvn", "R5", "rollback",
            "Reset the NPU into an older firmware release the manufacturer did sign (SVN below the fused anti-rollback counter).",
            bed => Boot(bed, bed.Manufacturer.SignFirmware(new FirmwareImage(6, bed.Firmware.SecurityVersion - 1, "AscendCC", "NPU firmware 6"u8)), "signed firmware with an older SVN"));
        yield return new Attack("R5_RollbackAfterCommittedUpdate", "R5", "below the anti-rollback counter",
            "Install a security update (a newer SVN, booted with CommitSecurityVersion so the fuses advance), then reset back into the release the device ran before.",
            bed =>
            {
                byte[] update = bed.Manufacturer.SignFirmware(new FirmwareImage(8, bed.Firmware.SecurityVersion + 1, "AscendCC", "NPU firmware 8"u8));
                (MailboxStatus status, string? message) = bed.Device.Reset(new DeviceBootOptions(update, CcMode.On, CommitSecurityVersion: true));
                if (status != MailboxStatus.Ok)
                {
                    return AttackResult.NotBlocked($"setup: the security update did not boot ({status}: {message}), so the rollback was not tried");
                }
                return Boot(bed, bed.SignedFirmware.ToArray(), $"the previous release (SVN {bed.Firmware.SecurityVersion}) after the update to SVN {bed.Firmware.SecurityVersion + 1} was committed");
            });
        yield return new Attack("R5_StaleNonce", "R5", "Freshness",
            "Answer a verifier's challenge with a report over an older nonce (GetHello through raw mailbox bytes).",
            bed =>
            {
                byte[] old = AttestationVerifier.CreateNonce(), fresh = AttestationVerifier.CreateNonce();
                (MailboxStatus status, byte[] hello, string text) = bed.Attacker.Mailbox(MailboxCommand.GetHello, old);
                return status != MailboxStatus.Ok ? AttackResult.NotBlocked($"GetHello failed: {text}") : Verified(bed.Verifier.VerifyHello(hello, fresh, VerificationPolicy.Default), "report over a stale nonce");
            });
        yield return new Attack("R5_ReplayedReport", "R5", "Freshness",
            "Record the device's hello for one data owner session and replay it to the next session's verifier.",
            bed =>
            {
                using var first = new DataOwnerSession(bed.Verifier);
                byte[] recorded = bed.Attacker.Mailbox(MailboxCommand.GetHello, first.Nonce.Span).Payload;
                first.Attest(recorded);
                using var second = new DataOwnerSession(bed.Verifier);
                try
                {
                    second.Attest(recorded);
                    return AttackResult.NotBlocked("the second session accepted the first session's hello");
                }
                catch (AttestationFailedException ex)
                {
                    return AttackResult.Blocked($"first session accepted its hello; the replay to the second session: {ex.Message}");
                }
            });
        yield return new Attack("R5_ForgedReport", "R5", "Signature",
            "Change a byte of the signed report inside the device's hello (as a host forging claims would).",
            bed =>
            {
                byte[] nonce = AttestationVerifier.CreateNonce();
                byte[] hello = bed.Attacker.Mailbox(MailboxCommand.GetHello, nonce).Payload;
                // The last byte of the nonce inside the report: a field every report carries, whose
                // change only a forger who can sign would get past.
                int at = hello.AsSpan().IndexOf(nonce) + nonce.Length - 1;
                byte[] forged = hello.ToArray();
                forged[at] ^= 1;
                return Verified(bed.Verifier.VerifyHello(forged, forged.AsSpan(at - nonce.Length + 1, nonce.Length).ToArray(), VerificationPolicy.Default), "report with a modified nonce byte (verifier told to expect it)");
            });
        yield return new Attack("R5_UnpublishedFirmware", "R5", "ReferenceMeasurements",
            "Boot firmware the manufacturer signed but never published reference measurements for; attest to the data owner and ask for the model key.",
            bed =>
            {
                byte[] unpublished = bed.Manufacturer.SignFirmware(new FirmwareImage(8, bed.Firmware.SecurityVersion, "AscendCC", "NPU firmware 8 (internal build)"u8));
                (MailboxStatus status, string? message) = bed.Device.Reset(new DeviceBootOptions(unpublished, CcMode.On));
                if (status != MailboxStatus.Ok)
                {
                    return AttackResult.NotBlocked($"setup: the signed build did not boot: {message}");
                }
                return PartiesRefuse(bed, "unpublished firmware");
            });
        yield return new Attack("R5_DevToolsUnderDefaultPolicy", "R5", "CcMode",
            "Reset into DevTools mode (debug port open) and attest to the data owner and model provider under their default policies.",
            bed =>
            {
                (MailboxStatus status, string? message) = bed.Device.Reset(new DeviceBootOptions(bed.SignedFirmware, CcMode.DevTools, DebugRequested: true));
                return status != MailboxStatus.Ok ? AttackResult.NotBlocked($"setup: DevTools did not boot: {message}") : PartiesRefuse(bed, "DevTools device");
            });
        yield return new Attack("R5_FirmwareBelowTcbMinimum", "R5", "SvnMinimum",
            "The manufacturer ships a security update (firmware 8, SVN +1) and a TCB recovery statement raising the minimum SVN to it; the host installs the update without committing the anti-rollback fuses, then resets back into the published but superseded release (the boot ROM allows it) and lets the data owner and model provider attest.",
            bed =>
            {
                uint fixedSvn = bed.Firmware.SecurityVersion + 1;
                byte[] update = bed.Manufacturer.SignFirmware(new FirmwareImage(8, fixedSvn, "AscendCC", "NPU firmware 8"u8));
                if (!bed.Verifier.TryUpdateTcbStatement(bed.Manufacturer.PublishTcbRecoveryStatement(fixedSvn, "fixed in NPU firmware 8"), out string installed))
                {
                    return AttackResult.NotBlocked($"setup: the verifier did not take the manufacturer's new TCB recovery statement: {installed}");
                }
                (MailboxStatus status, string? message) = bed.Device.Reset(new DeviceBootOptions(update, CcMode.On));
                if (status == MailboxStatus.Ok)
                {
                    (status, message) = bed.Device.Reset(new DeviceBootOptions(bed.SignedFirmware, CcMode.On));
                }
                return status != MailboxStatus.Ok
                    ? AttackResult.NotBlocked($"setup: the superseded release did not boot ({status}: {message}), so nothing was attested")
                    : PartiesRefuse(bed, $"device on superseded firmware {bed.Firmware.Version} (SVN {bed.Firmware.SecurityVersion}, below the TCB minimum {fixedSvn})");
            });
        yield return new Attack("R5_RevokedDeviceIdentity", "R5", "Revocation",
            "The manufacturer revokes this NPU's identity certificate (its device secret leaked) and publishes a new CRL; the host keeps offering the device to the data owner and model provider, and also relays the older CRL that did not list it.",
            bed =>
            {
                byte[] before = bed.Manufacturer.PublishRevocationList();
                bed.Verifier.TryUpdateRevocationList(before, out _);
                byte[] nonce = AttestationVerifier.CreateNonce();
                DeviceHello hello = DeviceHello.Parse(bed.Attacker.Mailbox(MailboxCommand.GetHello, nonce).Payload);
                using X509Certificate2 identity = AttestationReport.Parse(hello.Report.Span).IdentityCertificate;
                bed.Manufacturer.RevokeDevice(identity);
                if (!bed.Verifier.TryUpdateRevocationList(bed.Manufacturer.PublishRevocationList(), out string installed))
                {
                    return AttackResult.NotBlocked($"setup: the verifier did not take the manufacturer's new CRL: {installed}");
                }
                // The host, relaying the manufacturer's publications, hands the verifier the older CRL again.
                AttackResult rollback = bed.Verifier.TryUpdateRevocationList(before, out string refused)
                    ? AttackResult.NotBlocked($"the verifier went back to the CRL that does not list the device: {refused}")
                    : AttackResult.Blocked($"older CRL relayed: {refused}");
                return All(rollback, PartiesRefuse(bed, $"revoked device (identity serial {Convert.ToHexStringLower(identity.SerialNumberBytes.Span)})"));
            });
    }

    private static AttackResult Boot(Testbed bed, byte[] image, string what)
    {
        (MailboxStatus status, string? message) = bed.Device.Reset(new DeviceBootOptions(image, CcMode.On));
        return status == MailboxStatus.Ok
            ? AttackResult.NotBlocked($"{what} booted")
            : AttackResult.Blocked($"Reset with {what}: {status}: {message}; device CC mode now {bed.Device.CcMode}");
    }

    private static AttackResult Verified(AttestationResult result, string what) =>
        result.PolicySatisfied
            ? AttackResult.NotBlocked($"{what}: the verifier accepted it")
            : AttackResult.Blocked($"{what}: verifier failures: {string.Join("; ", result.Failures)}");

    private static AttackResult PartiesRefuse(Testbed bed, string what)
    {
        AttackResult owner, provider;
        try
        {
            (var session, _) = bed.OpenDataOwner();
            session.Dispose();
            owner = AttackResult.NotBlocked($"the data owner attested the {what} and opened a session");
        }
        catch (AttestationFailedException ex)
        {
            owner = AttackResult.Blocked($"data owner: {ex.Message}");
        }
        try
        {
            bed.ReleaseKey();
            provider = AttackResult.NotBlocked($"the model provider released its key to the {what}");
        }
        catch (AttestationFailedException ex)
        {
            provider = AttackResult.Blocked($"model provider: {ex.Message}");
        }
        return All(owner, provider);
    }

    private static IEnumerable<Attack> R6()
    {
        yield return new Attack("R6_DebugReadMemory", "R6", "Locked",
            "Read the weights through the debug port after load.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                var w0 = llama.Region(Buffer(llama, "model.embed_tokens.weight"));
                var data = new byte[w0.Bytes];
                DebugStatus s = bed.Device.DebugReadMemory(w0.Address, data);
                return s == DebugStatus.Locked && AllZero(data) ? AttackResult.Blocked($"DebugReadMemory: {s}") : AttackResult.NotBlocked($"DebugReadMemory: {s}");
            });
        yield return new Attack("R6_DebugSnapshot", "R6", "Locked",
            "Take a debug snapshot of every live region after a generation.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                DebugStatus s = bed.Device.DebugSnapshot(out var snapshot);
                return s == DebugStatus.Locked && snapshot.Count == 0 ? AttackResult.Blocked($"DebugSnapshot: {s}") : AttackResult.NotBlocked($"DebugSnapshot: {s}, {snapshot.Count} regions");
            });
        yield return new Attack("R6_DataProfiling", "R6", "Locked",
            "Turn on data-bearing profiling, run a generation, read the profile (first output bytes of every kernel).",
            bed =>
            {
                DebugStatus s = bed.Device.EnableDataProfiling(true);
                using CausalLM llama = LoadAndGenerate(bed);
                int records = bed.Device.ReadProfile().Count;
                return s == DebugStatus.Locked && records == 0 ? AttackResult.Blocked($"EnableDataProfiling: {s}; profile records after a generation: {records}") : AttackResult.NotBlocked($"EnableDataProfiling: {s}; {records} profile records");
            });
        yield return new Attack("R6_SetCcModeWithoutReset", "R6", "requires a device reset",
            "After load, ask the firmware mailbox to leave CC mode (Off) or enter DevTools without a reset.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                var off = bed.Attacker.Mailbox(MailboxCommand.SetCcMode, [(byte)CcMode.Off]);
                var dev = bed.Attacker.Mailbox(MailboxCommand.SetCcMode, [(byte)CcMode.DevTools]);
                bool blocked = off.Status == MailboxStatus.Refused && dev.Status == MailboxStatus.Refused && bed.Device.CcMode == CcMode.On;
                return new AttackResult(blocked ? AttackOutcome.Blocked : AttackOutcome.NotBlocked, $"SetCcMode(Off): {off.Status}: {off.Text} | SetCcMode(DevTools): {dev.Status}: {dev.Text}; mode still {bed.Device.CcMode}");
            });
    }
}
