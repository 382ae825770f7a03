using System.Buffers.Binary;
using System.Security.Cryptography;
using AscendCC.Device.AiCore;
using AscendCC.Device.Confidential;
using AscendCC.Device.Hbm;
using AscendCC.Device.Scheduler;
using TaskScheduler = AscendCC.Device.Scheduler.TaskScheduler;
using AscendCC.Device.Security;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Measurements;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Security;

/// <summary>
/// The confidential firmware on its own, for tests of its internals: a booted security engine, HBM,
/// the firmware over both and a task scheduler wired to it as the device wires them (one AI Core, no
/// host), plus packages opened the way a model provider's runtime opens them (key released over a
/// channel, package staged in HBM, mailbox OpenPackage).
/// </summary>
internal sealed class TestFirmware : IDisposable
{
    private readonly TestManufacturer _manufacturer = new();
    private readonly DeviceFuses _fuses;
    private readonly AiCoreGrid _grid = new(1);
    private readonly CompletionQueue _completions = new();

    public TestFirmware(CcMode mode)
    {
        _fuses = _manufacturer.Provision();
        Engine = new DeviceSecurityEngine(_fuses);
        Engine.Boot(_manufacturer.Sign(new FirmwareImage(7, 2, "AscendCC", "confidential firmware"u8)), new BootConfiguration(mode));
        Hbm = new HbmMemory(16L << 20);
        Scheduler = new TaskScheduler(Hbm, new Smmu.Smmu(Hbm), _grid, new HostBuffers(), _completions, 1, 1, 4096);
        Firmware = new ConfidentialFirmware(Engine, Hbm) { Scheduler = Scheduler };
        Scheduler.Firmware = Firmware;
    }

    public DeviceSecurityEngine Engine { get; }

    public HbmMemory Hbm { get; }

    public ConfidentialFirmware Firmware { get; }

    public TaskScheduler Scheduler { get; }

    /// <summary>Opens a small one-tensor package through the mailbox; returns its handle.</summary>
    public int OpenPackage(string modelName = "tiny")
    {
        using ECDsa provider = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using ModelKey modelKey = ModelKey.Generate();
        var policy = new ReleasePolicy(2, [Engine.Measurements[MeasurementRegisterId.Firmware].ToArray()], ReleasePolicy.RootDigest(_manufacturer.Root));
        using var package = new MemoryStream();
        ModelManifest manifest = new ModelPackageBuilder(modelName) { ExpectedGraphMeasurement = new byte[48] }
            .AddTensor("w", "int8", [64], RandomNumberGenerator.GetBytes(64))
            .WriteTo(package, modelKey, provider, policy);

        (int session, SecureChannel party) = DeviceSecurityEngineTests.Connect(Engine, ChannelRole.ModelProvider);
        using (party)
        {
            Engine.UnwrapModelKey(session, party.Seal(RecordType.ModelKeyRelease, ModelKeyRelease.Encode(manifest.Digest.Span, provider.ExportSubjectPublicKeyInfo(), modelKey)));
        }

        HbmRegion staging = Hbm.Allocate(package.Length, 64, RegionTag.InputStaging)!;
        package.ToArray().CopyTo(staging.Slice(staging.Address, package.Length));
        var request = new byte[16 + manifest.Digest.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(request, staging.Address);
        BinaryPrimitives.WriteInt64LittleEndian(request.AsSpan(8), package.Length);
        manifest.Digest.Span.CopyTo(request.AsSpan(16));
        byte[] response = Firmware.Mailbox(MailboxMessage.Request(MailboxCommand.OpenPackage, request));
        Assert.That(MailboxMessage.Parse(response, out ReadOnlySpan<byte> payload), Is.EqualTo(MailboxStatus.Ok), MailboxMessage.ErrorText(response));
        return BinaryPrimitives.ReadInt32LittleEndian(payload);
    }

    public void Dispose()
    {
        Scheduler.Dispose();
        Firmware.Dispose();
        Hbm.Dispose();
        _completions.Dispose();
        _grid.Dispose();
        _fuses.Dispose();
        _manufacturer.Dispose();
    }
}
