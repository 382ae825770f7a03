using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Firmware;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Runtime.Tests.Trusted;

/// <summary>
/// A deterministic manufacturer, one published firmware release, its TCB recovery statement (#1, minimum
/// SVN = the release's), a revocation list with nothing revoked, one provisioned device. Tests that
/// revoke a device or raise the TCB minimum change the manufacturer's state: they use a world of their own.
/// </summary>
internal sealed class TrustedWorld : IDisposable
{
    public TrustedWorld(string seedText = "AscendCC test world seed, 32+ bytes long")
    {
        Manufacturer = Manufacturer.CreateDeterministic(System.Text.Encoding.ASCII.GetBytes(seedText));
        Firmware = new FirmwareImage(3, 2, "AscendCC", "published firmware v3"u8);
        SignedReferences = Manufacturer.PublishReferenceMeasurements([Firmware]);
        SignedTcbStatement = Manufacturer.PublishTcbRecoveryStatement(Firmware.SecurityVersion, "initial release");
        Provisioning = Manufacturer.ProvisionDevice("NPU-0001");
        RevocationList = Manufacturer.PublishRevocationList();
        Verifier = NewVerifier();
    }

    public Manufacturer Manufacturer { get; }

    public FirmwareImage Firmware { get; }

    public byte[] SignedReferences { get; }

    /// <summary>Statement #1: minimum SVN = <see cref="Firmware"/>'s.</summary>
    public byte[] SignedTcbStatement { get; }

    /// <summary>CRL #1: nothing revoked, valid for 7 days from the world's creation.</summary>
    public byte[] RevocationList { get; }

    public DeviceProvisioning Provisioning { get; }

    /// <summary>A verifier with every publication of the world.</summary>
    public AttestationVerifier Verifier { get; }

    /// <summary>A verifier with the world's root and references and the given (default: the world's) TCB statement and CRL; pass empty for none.</summary>
    public AttestationVerifier NewVerifier(ReadOnlyMemory<byte>? tcbStatement = null, ReadOnlyMemory<byte>? revocationList = null, TimeProvider? time = null, ReadOnlyMemory<byte>? references = null) =>
        new(Manufacturer.RootCertificate, references ?? SignedReferences, tcbStatement ?? SignedTcbStatement, revocationList ?? RevocationList, time);

    public EmulatedDevice Device(CcMode mode = CcMode.On, DebugState debug = DebugState.Locked, FirmwareImage? firmware = null, CcMode? measuredMode = null, EmulatedLies? lies = null) =>
        new(Provisioning, firmware ?? Firmware, mode, debug, measuredMode, lies);

    public void Dispose()
    {
        Provisioning.Dispose();
        Manufacturer.Dispose();
    }
}

/// <summary>A clock that always reads the same instant (for CRL validity tests).</summary>
internal sealed class FixedClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
