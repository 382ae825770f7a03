using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Device.Security;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Measurements;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;
using AscendCC.Protocol.Pki;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Security;

[TestFixture]
public sealed class DeviceSecurityEngineTests : IDisposable
{
    private TestManufacturer _manufacturer = null!;
    private byte[] _signedFirmware = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _manufacturer = new TestManufacturer();
        _signedFirmware = _manufacturer.Sign(new FirmwareImage(7, 2, "AscendCC", "engine firmware"u8));
    }

    public void Dispose() => _manufacturer?.Dispose();

    [Test]
    public void ReportIsSignedByCertifiedDiceKeyAndCarriesTheNonce()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = Booted(fuses);
        byte[] nonce = RandomNumberGenerator.GetBytes(32);

        DeviceHello hello = DeviceHello.Parse(engine.CreateHello(nonce));
        AttestationReport report = AttestationReport.Parse(hello.Report.Span);

        Assert.That(report.Nonce.ToArray(), Is.EqualTo(nonce));
        Assert.That(report.KeyShare.ToArray(), Is.EqualTo(hello.KeyShare.ToArray()));
        Assert.That(report.CcMode, Is.EqualTo(CcMode.On));
        Assert.That(report.FirmwareVersion, Is.EqualTo(7u));
        using ECDsa key = report.AttestationKeyCertificate.GetECDsaPublicKey()!;
        Assert.That(key.ExportSubjectPublicKeyInfo(), Is.EqualTo(engine.AttestationPublicKey()));
        Assert.That(report.VerifySignature(key), Is.True);
        Assert.That(CertificateValidator.TryValidate(report.AttestationKeyCertificate, [report.IdentityCertificate], _manufacturer.Root, ProtocolOids.AttestationKeyUsage, DateTime.UtcNow, out string detail), Is.True, detail);
        Assert.That(DiceTcbInfo.FromCertificate(report.AttestationKeyCertificate).FirmwareMeasurement.ToArray(), Is.EqualTo(report.Measurements[MeasurementRegisterId.Firmware].ToArray()));
    }

    [Test]
    public void DataOwnerChannelCarriesPromptInAndFixedSizeTokensOut()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = Booted(fuses);
        (int session, SecureChannel party) = Connect(engine, ChannelRole.DataOwner);
        using (party)
        {
            int[] prompt = [1, 15043, 3186, 29991];
            Assert.That(engine.OpenPrompt(session, party.Seal(RecordType.Prompt, PromptMessage.Encode(prompt))).Tokens, Is.EqualTo(prompt));

            byte[] first = engine.SealToken(session, new TokenMessage(0, 5, false));
            byte[] second = engine.SealToken(session, new TokenMessage(1, int.MaxValue, true));
            Assert.That(second, Has.Length.EqualTo(first.Length), "token records must not reveal anything by size");
            Assert.That(TokenMessage.Decode(party.Open(first, RecordType.Token)), Is.EqualTo(new TokenMessage(0, 5, false)));
            Assert.That(TokenMessage.Decode(party.Open(second, RecordType.Token)), Is.EqualTo(new TokenMessage(1, int.MaxValue, true)));
        }
    }

    [Test]
    public void ResetDestroysSessionsAndPendingHellos()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = Booted(fuses);
        (int session, SecureChannel party) = Connect(engine, ChannelRole.DataOwner);
        AttestationReport pendingReport = AttestationReport.Parse(DeviceHello.Parse(engine.CreateHello(new byte[32])).Report.Span);
        using var pending = ChannelInitiator.Start(ChannelRole.DataOwner, pendingReport);
        using (party)
        {
            engine.Reset(() => { });
            engine.Boot(_signedFirmware, new BootConfiguration(CcMode.On));
            Assert.Throws<DeviceSecurityException>(() => engine.OpenPrompt(session, party.Seal(RecordType.Prompt, PromptMessage.Encode([1]))));
            Assert.Throws<ChannelHandshakeException>(() => engine.AcceptChannel(pending.OpenMessage.Span));
        }
    }

    [Test]
    public void HelloKeyIsSingleUse()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = Booted(fuses);
        AttestationReport report = AttestationReport.Parse(DeviceHello.Parse(engine.CreateHello(new byte[32])).Report.Span);
        using var initiator = ChannelInitiator.Start(ChannelRole.DataOwner, report);
        engine.AcceptChannel(initiator.OpenMessage.Span);
        Assert.Throws<ChannelHandshakeException>(() => engine.AcceptChannel(initiator.OpenMessage.Span));
    }

    [Test]
    public void ModelKeyIsUnwrappedInsideTheDeviceAndUnlocksThePackage()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = Booted(fuses);
        byte[] weights = RandomNumberGenerator.GetBytes(10_000);
        using ECDsa provider = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using ModelKey modelKey = ModelKey.Generate();
        var policy = new ReleasePolicy(2, [engine.Measurements[MeasurementRegisterId.Firmware].ToArray()], ReleasePolicy.RootDigest(_manufacturer.Root));
        using var package = new MemoryStream();
        ModelManifest manifest = new ModelPackageBuilder("tiny") { ChunkSize = 4096 }
            .AddTensor("w", "float32", [2500], weights)
            .WriteTo(package, modelKey, provider, policy);

        (int session, SecureChannel party) = Connect(engine, ChannelRole.ModelProvider);
        using (party)
        {
            byte[] release = ModelKeyRelease.Encode(manifest.Digest.Span, provider.ExportSubjectPublicKeyInfo(), modelKey);
            byte[] digest = engine.UnwrapModelKey(session, party.Seal(RecordType.ModelKeyRelease, release));
            Assert.That(digest, Is.EqualTo(manifest.Digest.ToArray()));
        }

        package.Position = 0;
        using ModelPackageReader reader = engine.OpenModelPackage(package, manifest.Digest.Span, out _);
        byte[] hbm = new byte[weights.Length];
        reader.ReadItem("w", hbm, verifyPlaintextDigest: true);
        Assert.That(hbm, Is.EqualTo(weights));
    }

    [Test]
    public void DataOwnerSessionCannotDeliverModelKeysAndPolicyIsEnforcedOnDevice()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = Booted(fuses);
        using ModelKey modelKey = ModelKey.Generate();
        using ECDsa provider = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        (int dataSession, SecureChannel dataParty) = Connect(engine, ChannelRole.DataOwner);
        using (dataParty)
        {
            byte[] release = ModelKeyRelease.Encode(new byte[48], provider.ExportSubjectPublicKeyInfo(), modelKey);
            Assert.Throws<DeviceSecurityException>(() => engine.UnwrapModelKey(dataSession, dataParty.Seal(RecordType.ModelKeyRelease, release)));
        }

        var strict = new ReleasePolicy(99, [engine.Measurements[MeasurementRegisterId.Firmware].ToArray()], ReleasePolicy.RootDigest(_manufacturer.Root));
        using var package = new MemoryStream();
        ModelManifest manifest = new ModelPackageBuilder("strict").AddTensor("w", "int8", [4], new byte[4]).WriteTo(package, modelKey, provider, strict);
        (int session, SecureChannel party) = Connect(engine, ChannelRole.ModelProvider);
        using (party)
        {
            engine.UnwrapModelKey(session, party.Seal(RecordType.ModelKeyRelease, ModelKeyRelease.Encode(manifest.Digest.Span, provider.ExportSubjectPublicKeyInfo(), modelKey)));
        }
        package.Position = 0;
        var ex = Assert.Throws<DeviceSecurityException>(() => engine.OpenModelPackage(package, manifest.Digest.Span, out _));
        Assert.That(ex!.Message, Does.Contain("SVN 2 < 99"));
    }

    [Test]
    public void DevToolsDeviceRefusesModelKeys()
    {
        using DeviceFuses fuses = _manufacturer.Provision();
        using var engine = new DeviceSecurityEngine(fuses);
        engine.Boot(_signedFirmware, new BootConfiguration(CcMode.DevTools));
        using ModelKey modelKey = ModelKey.Generate();
        using ECDsa provider = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        (int session, SecureChannel party) = Connect(engine, ChannelRole.ModelProvider);
        using (party)
        {
            byte[] record = party.Seal(RecordType.ModelKeyRelease, ModelKeyRelease.Encode(new byte[48], provider.ExportSubjectPublicKeyInfo(), modelKey));
            Assert.Throws<DeviceSecurityException>(() => engine.UnwrapModelKey(session, record));
        }
    }

    private DeviceSecurityEngine Booted(DeviceFuses fuses)
    {
        var engine = new DeviceSecurityEngine(fuses);
        engine.Boot(_signedFirmware, new BootConfiguration(CcMode.On));
        return engine;
    }

    internal static (int Session, SecureChannel Party) Connect(DeviceSecurityEngine engine, ChannelRole role)
    {
        AttestationReport report = AttestationReport.Parse(DeviceHello.Parse(engine.CreateHello(RandomNumberGenerator.GetBytes(32))).Report.Span);
        using var initiator = ChannelInitiator.Start(role, report);
        ChannelAcceptance acceptance = engine.AcceptChannel(initiator.OpenMessage.Span);
        Assert.That(acceptance.Role, Is.EqualTo(role));
        return (acceptance.SessionId, initiator.Complete(acceptance.AcceptRecord));
    }
}
