using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Firmware;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Driver;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.Verification;
using LlamaChat.Ui;
using Microsoft.Extensions.Logging;

namespace LlamaChat.Hosting;

/// <summary>
/// The manufacturer's part and the power-on: a manufacturer PKI, signed firmware and its published
/// reference measurements, TCB recovery statement and revocation list, one provisioned NPU booted
/// (measured boot) in the requested CC mode, and the host's runtime and mailbox relay on top of it.
/// The verifier built here holds only public data (root certificate and those signed publications),
/// as a data owner's or model provider's verifier would.
/// </summary>
internal sealed class SimulatedNpu : IDisposable
{
    public SimulatedNpu(ChatUi ui, CcMode ccMode, IHostTranscript? transcript, long hbmBytes)
    {
        ui.Step("manufacturer", "creates its PKI, signs NPU firmware 7 (SVN 3), publishes reference measurements, a TCB recovery statement (minimum SVN 3) and its revocation list");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // A fresh manufacturer per run: the sample plays the manufacturer, so it must not ship a fixed key.
        Manufacturer = Manufacturer.Create();
        Firmware = new FirmwareImage(7, 3, "AscendCC", "AscendCC NPU firmware 7 (LlamaChat sample)"u8);
        byte[] signedFirmware = Manufacturer.SignFirmware(Firmware);
        // The verifier holds the manufacturer's publications: reference measurements, the TCB recovery
        // statement (the minimum firmware SVN still considered secure) and the revocation list.
        Verifier = new AttestationVerifier(Manufacturer.RootCertificate, Manufacturer.PublishReferenceMeasurements([Firmware]),
            Manufacturer.PublishTcbRecoveryStatement(Firmware.SecurityVersion), Manufacturer.PublishRevocationList());
        ui.Logger.LogDebug("boot: manufacturer PKI created, firmware signed, reference measurements, TCB statement and CRL published in {Milliseconds} ms", clock.ElapsedMilliseconds);
        ui.Evidence("root CA", Manufacturer.RootCertificate.Subject);
        ui.Evidence("root SHA-256", Manufacturer.RootCertificate.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256).ToLowerInvariant());
        ui.Evidence("firmware measurement (reference)", Convert.ToHexStringLower(ReferenceMeasurements.ExpectedFirmwareRegister(Firmware.Encode())));

        ui.Step("manufacturer", "provisions NPU-CC-0001: device secret and identity certificate into fuses");
        using DeviceProvisioning provisioning = Manufacturer.ProvisionDevice("NPU-CC-0001");
        ui.Evidence("identity", provisioning.IdentityCertificate.Subject);
        using DeviceFuseImage fuses = provisioning.CreateFuseImage();

        ui.Step("cloud host", $"powers on the NPU; boot ROM verifies and measures the firmware (CC mode {ccMode})");
        clock.Restart();
        Device = new NpuDevice(new NpuDeviceOptions
        {
            HbmCapacity = hbmBytes,
            Fuses = fuses,
            Boot = new DeviceBootOptions(signedFirmware, ccMode),
        });
        Runtime = new NpuRuntime(Device);
        Runtime.Driver.Transcript = transcript;
        Mailbox = new FirmwareMailbox(Device) { Transcript = transcript };
        CcMode = ccMode;
        ui.Logger.LogInformation("boot: NPU-CC-0001 powered on ({HbmMiB} MiB of HBM), firmware verified and measured (CC {CcMode}), runtime and mailbox up in {Milliseconds} ms", hbmBytes >> 20, ccMode, clock.ElapsedMilliseconds);
    }

    public Manufacturer Manufacturer { get; }

    public FirmwareImage Firmware { get; }

    public AttestationVerifier Verifier { get; }

    public NpuDevice Device { get; }

    public NpuRuntime Runtime { get; }

    public FirmwareMailbox Mailbox { get; }

    public CcMode CcMode { get; }

    public void Dispose()
    {
        Runtime.Dispose();
        Device.Dispose();
        Manufacturer.Dispose();
    }
}
