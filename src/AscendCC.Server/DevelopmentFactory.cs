using AscendCC.Device;
using AscendCC.Protocol.Firmware;
using AscendCC.Runtime.Trusted.Manufacturing;
using Microsoft.Extensions.Options;

namespace AscendCC.Server;

/// <summary>
/// Development only (<c>Npu:Simulate=true</c>): the server plays the factory once at startup — a fresh
/// manufacturer signs firmware and provisions the NPUs, publishes its root certificate, reference
/// measurements, TCB recovery statement and revocation list into <c>{ModelStore}/manufacturer/</c>
/// for the clients' verifiers, and is then disposed (the server keeps no manufacturer key).
/// </summary>
internal static class DevelopmentFactory
{
    public static NpuHardware HardwareFromConfiguration(IServiceProvider services)
    {
        IConfiguration configuration = services.GetRequiredService<IConfiguration>();
        if (!configuration.GetValue<bool>("Npu:Simulate"))
        {
            throw new InvalidOperationException("no NPU hardware: register an NpuHardware (signed firmware and fuse images from the manufacturer) or set Npu:Simulate=true for a development server");
        }
        NpuServerOptions options = services.GetRequiredService<IOptions<NpuServerOptions>>().Value;
        ILogger logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(DevelopmentFactory));
        using var manufacturer = Manufacturer.Create();
        var firmware = new FirmwareImage(7, 3, "AscendCC", "AscendCC NPU firmware 7 (development server)"u8);
        byte[] signed = manufacturer.SignFirmware(firmware);
        string folder = Path.Combine(options.ModelStore, "manufacturer");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "root.pem"), manufacturer.RootCertificate.ExportCertificatePem());
        File.WriteAllBytes(Path.Combine(folder, "reference-measurements.p7"), manufacturer.PublishReferenceMeasurements([firmware]));
        File.WriteAllBytes(Path.Combine(folder, "tcb-recovery.p7"), manufacturer.PublishTcbRecoveryStatement(firmware.SecurityVersion));
        File.WriteAllBytes(Path.Combine(folder, "revocations.crl"), manufacturer.PublishRevocationList());
        var fuses = new List<DeviceFuseImage>();
        for (int i = 0; i < Math.Max(1, options.DeviceCount); i++)
        {
            using DeviceProvisioning provisioning = manufacturer.ProvisionDevice($"NPU-DEV-{i:D4}");
            fuses.Add(provisioning.CreateFuseImage(firmware.SecurityVersion));
        }
        logger.LogWarning("development server: simulated manufacturer provisioned {Count} NPU(s); its publications are in {Folder}", fuses.Count, folder);
        return new NpuHardware(signed, fuses);
    }
}
