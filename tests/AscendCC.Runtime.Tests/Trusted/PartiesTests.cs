using System.Security.Cryptography;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.Manufacturing;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Trusted;

[TestFixture]
public sealed class PartiesTests : IDisposable
{
    private readonly TrustedWorld _world = new();
    private readonly ModelProvider _provider = ModelProvider.Create();
    private readonly byte[] _weights = RandomNumberGenerator.GetBytes(50_000);

    public void Dispose()
    {
        _provider.Dispose();
        _world.Dispose();
    }

    [Test]
    public void RoundTripModelKeyReleaseThenPromptAndTokensOnIndependentSessions()
    {
        using EmulatedDevice device = _world.Device();
        using var package = new MemoryStream();
        using ProtectedModel model = _provider.BuildPackage(Builder(), Policy(minimumSvn: 2), package);

        // Model provider: attest, open its own channel, release the key.
        using KeyReleaseSession release = _provider.BeginKeyRelease(model, _world.Verifier);
        byte[] open = release.Attest(device.CreateHello(release.Nonce.Span));
        Assert.That(release.Result!.PolicySatisfied, Is.True);
        using SecureChannel providerOnDevice = device.Accept(open, out byte[] accept);
        byte[] keyRecord = release.CompleteAndRelease(accept);
        Assert.That(keyRecord.AsSpan().IndexOf(_weights.AsSpan(0, 16)), Is.EqualTo(-1));

        // Device side: unwrap and decrypt into "HBM".
        byte[] plaintext = providerOnDevice.Open(keyRecord, RecordType.ModelKeyRelease);
        (byte[] digest, byte[] spki, ModelKey key) = ModelKeyRelease.Decode(plaintext);
        using (key)
        using (ECDsa providerKey = ECDsa.Create())
        {
            Assert.That(digest, Is.EqualTo(model.Manifest.Digest.ToArray()));
            providerKey.ImportSubjectPublicKeyInfo(spki, out _);
            package.Position = 0;
            using var reader = ModelPackageReader.Open(package, providerKey);
            reader.Unlock(key);
            byte[] hbm = new byte[_weights.Length];
            reader.ReadItem("lm_head.weight", hbm, verifyPlaintextDigest: true);
            Assert.That(hbm, Is.EqualTo(_weights));
        }

        // Data owner: its own handshake on the same device.
        using var owner = new DataOwnerSession(_world.Verifier);
        byte[] ownerOpen = owner.Attest(device.CreateHello(owner.Nonce.Span));
        using SecureChannel ownerOnDevice = device.Accept(ownerOpen, out byte[] ownerAccept);
        owner.Complete(ownerAccept);

        int[] prompt = [1, 450, 4996, 17354, 1701];
        byte[] promptRecord = owner.EncryptPrompt(prompt);
        Assert.That(PromptMessage.Decode(ownerOnDevice.Open(promptRecord, RecordType.Prompt)).Tokens, Is.EqualTo(prompt));
        Assert.Throws<RecordAuthenticationException>(() => providerOnDevice.Open(owner.EncryptPrompt(prompt), RecordType.Prompt), "the provider's session cannot read the data owner's records");

        byte[] bound = new byte[PromptMessage.ModelSize];
        bound[0] = 7;
        var tokens = new[] { new TokenMessage(0, 29871, false) { Model = bound }, new TokenMessage(1, 2, true) { Model = bound } };
        byte[][] records = tokens.Select(t =>
        {
            byte[] buffer = new byte[TokenMessage.EncodedSize];
            t.Encode(buffer);
            return ownerOnDevice.Seal(RecordType.Token, buffer);
        }).ToArray();
        Assert.That(records.Select(r => r.Length).Distinct().Count(), Is.EqualTo(1));
        Assert.That(records.Select(r => owner.DecryptToken(r)).Select(t => (t.Position, t.TokenId, t.EndOfSequence)), Is.EqualTo(tokens.Select(t => (t.Position, t.TokenId, t.EndOfSequence))));
        Assert.That(owner.BoundModel!.Value.ToArray(), Is.EqualTo(bound), "the first token binds a session that named no model");
        Assert.Throws<RecordReplayException>(() => owner.DecryptToken(records[0]));
    }

    [TestCase(false, TestName = "ATokenFromAnotherModelThanTheOneThatAnsweredFirstIsRefused")]
    [TestCase(true, TestName = "ATokenFromAnotherModelThanTheRequiredOneIsRefused")]
    public void ATokenFromAnotherModelIsRefused(bool required)
    {
        using EmulatedDevice device = _world.Device();
        byte[] modelA = new byte[PromptMessage.ModelSize], modelB = new byte[PromptMessage.ModelSize];
        modelA[0] = 0xA;
        modelB[0] = 0xB;
        using var owner = new DataOwnerSession(_world.Verifier) { RequiredModel = required ? modelA : ReadOnlyMemory<byte>.Empty };
        byte[] open = owner.Attest(device.CreateHello(owner.Nonce.Span));
        using SecureChannel onDevice = device.Accept(open, out byte[] accept);
        owner.Complete(accept);
        byte[] Seal(int position, byte[] model)
        {
            byte[] buffer = new byte[TokenMessage.EncodedSize];
            new TokenMessage(position, 42, false) { Model = model }.Encode(buffer);
            return onDevice.Seal(RecordType.Token, buffer);
        }

        Assert.That(owner.DecryptToken(Seal(0, modelA)).TokenId, Is.EqualTo(42));
        var ex = Assert.Throws<UnexpectedModelException>(() => owner.DecryptToken(Seal(1, modelB)));
        Assert.That(ex!.Message, Does.Contain(Convert.ToHexStringLower(modelB)).And.Contain(Convert.ToHexStringLower(modelA)));
        Assert.That(owner.BoundModel!.Value.ToArray(), Is.EqualTo(modelA), "a refused token does not rebind the session");
    }

    [Test]
    public void KeyIsNotReleasedToADevToolsDevice()
    {
        using EmulatedDevice device = _world.Device(CcMode.DevTools);
        using var package = new MemoryStream();
        using ProtectedModel model = _provider.BuildPackage(Builder(), Policy(minimumSvn: 0), package);
        using KeyReleaseSession release = _provider.BeginKeyRelease(model, _world.Verifier);
        var ex = Assert.Throws<AttestationFailedException>(() => release.Attest(device.CreateHello(release.Nonce.Span)));
        Assert.That(ex!.Result!.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.CcMode }));
        Assert.Throws<InvalidOperationException>(() => release.CompleteAndRelease(new byte[64]));
    }

    [Test]
    public void KeyIsNotReleasedBelowThePackageMinimumSvn()
    {
        using EmulatedDevice device = _world.Device();
        using var package = new MemoryStream();
        using ProtectedModel model = _provider.BuildPackage(Builder(), Policy(minimumSvn: 9), package);
        using KeyReleaseSession release = _provider.BeginKeyRelease(model, _world.Verifier);
        var ex = Assert.Throws<AttestationFailedException>(() => release.Attest(device.CreateHello(release.Nonce.Span)));
        Assert.That(ex!.Result!.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.SvnMinimum }));
    }

    [Test]
    public void APackageWithoutAMinimumSvnLeavesTheFloorToTheTcbStatement()
    {
        // Minimum 0 in the signed release policy sets no floor of its own: a verifier without the
        // manufacturer's TCB recovery statement refuses; a package minimum > 0 stands in for it.
        AttestationVerifier withoutStatement = _world.NewVerifier(tcbStatement: ReadOnlyMemory<byte>.Empty);
        using EmulatedDevice device = _world.Device();
        using var package = new MemoryStream();
        using ProtectedModel noFloor = _provider.BuildPackage(Builder(), Policy(minimumSvn: 0), package);
        using (KeyReleaseSession release = _provider.BeginKeyRelease(noFloor, withoutStatement))
        {
            var ex = Assert.Throws<AttestationFailedException>(() => release.Attest(device.CreateHello(release.Nonce.Span)));
            Assert.That(ex!.Result!.Failures.Select(f => f.Check), Is.EqualTo(new[] { AttestationCheck.TcbRecovery, AttestationCheck.SvnMinimum }));
        }
        using var package2 = new MemoryStream();
        using ProtectedModel floor = _provider.BuildPackage(Builder(), Policy(minimumSvn: 2), package2);
        using (KeyReleaseSession release = _provider.BeginKeyRelease(floor, withoutStatement))
        {
            release.Attest(device.CreateHello(release.Nonce.Span));
            Assert.That(release.Result!.PolicySatisfied, Is.True, release.Result.ToString());
        }
    }

    [Test]
    public void KeyReleaseRequiresTheRootNamedByThePolicy()
    {
        using var other = Manufacturer.Create("Other");
        using var package = new MemoryStream();
        using ProtectedModel model = _provider.BuildPackage(Builder(), Policy(minimumSvn: 0), package);
        var verifier = new AttestationVerifier(other.RootCertificate, other.PublishReferenceMeasurements([_world.Firmware]));
        Assert.Throws<ArgumentException>(() => _provider.BeginKeyRelease(model, verifier));
    }

    [Test]
    public void PromptRecordsHideTheLengthWithinABucket()
    {
        using EmulatedDevice device = _world.Device();
        using var owner = new DataOwnerSession(_world.Verifier);
        using SecureChannel onDevice = device.Accept(owner.Attest(device.CreateHello(owner.Nonce.Span)), out byte[] accept);
        owner.Complete(accept);
        Assert.That(owner.EncryptPrompt([1, 2, 3]), Has.Length.EqualTo(owner.EncryptPrompt(Enumerable.Range(0, 200).ToArray()).Length));
        Assert.That(PromptMessage.BucketFor(257), Is.EqualTo(512));
    }

    [Test]
    public void DeterministicManufacturerReproducesKeysAndDeviceIdentities()
    {
        byte[] seed = System.Text.Encoding.ASCII.GetBytes("AscendCC test world seed, 32+ bytes long");
        using Manufacturer again = Manufacturer.CreateDeterministic(seed);
        using DeviceProvisioning device = again.ProvisionDevice("NPU-0001");
        Assert.That(again.RootCertificate.GetPublicKey(), Is.EqualTo(_world.Manufacturer.RootCertificate.GetPublicKey()));
        Assert.That(device.IdentityCertificate.GetPublicKey(), Is.EqualTo(_world.Provisioning.IdentityCertificate.GetPublicKey()));
        using DeviceProvisioning otherDevice = again.ProvisionDevice("NPU-0002");
        Assert.That(otherDevice.IdentityCertificate.GetPublicKey(), Is.Not.EqualTo(device.IdentityCertificate.GetPublicKey()));
    }

    private ModelPackageBuilder Builder() =>
        new ModelPackageBuilder("tiny-llm").AddTensor("lm_head.weight", "float16", [25_000], _weights).AddOperatorBinary("softmax", "kernel"u8.ToArray());

    private ReleasePolicy Policy(uint minimumSvn) =>
        new(minimumSvn, [ReferenceMeasurements.ExpectedFirmwareRegister(_world.Firmware.Encode())], ReleasePolicy.RootDigest(_world.Manufacturer.RootCertificate));
}
