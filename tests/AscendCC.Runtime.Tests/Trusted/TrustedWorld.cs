using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Firmware;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Runtime.Tests.Trusted;

/// <summary>A deterministic manufacturer, one published firmware release, one provisioned device.</summary>
internal sealed class TrustedWorld : IDisposable
{
    public TrustedWorld(string seedText = "AscendCC test world seed, 32+ bytes long")
    {
        Manufacturer = Manufacturer.CreateDeterministic(System.Text.Encoding.ASCII.GetBytes(seedText));
        Firmware = new FirmwareImage(3, 2, "AscendCC", "published firmware v3"u8);
        SignedReferences = Manufacturer.PublishReferenceMeasurements([Firmware]);
        Provisioning = Manufacturer.ProvisionDevice("NPU-0001");
        Verifier = new AttestationVerifier(Manufacturer.RootCertificate, SignedReferences);
    }

    public Manufacturer Manufacturer { get; }

    public FirmwareImage Firmware { get; }

    public byte[] SignedReferences { get; }

    public DeviceProvisioning Provisioning { get; }

    public AttestationVerifier Verifier { get; }

    public EmulatedDevice Device(CcMode mode = CcMode.On, DebugState debug = DebugState.Locked, FirmwareImage? firmware = null, CcMode? measuredMode = null) =>
        new(Provisioning, firmware ?? Firmware, mode, debug, measuredMode);

    public void Dispose()
    {
        Provisioning.Dispose();
        Manufacturer.Dispose();
    }
}
