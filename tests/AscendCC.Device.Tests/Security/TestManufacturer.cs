using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AscendCC.Device.Security;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Keys;
using AscendCC.Protocol.Pki;

namespace AscendCC.Device.Tests.Security;

/// <summary>
/// A minimal manufacturer PKI for device tests (this project cannot see the Runtime's Manufacturer):
/// root CA, firmware-signing certificate and device provisioning, built from .NET certificate APIs.
/// </summary>
internal sealed class TestManufacturer : IDisposable
{
    private static readonly DateTimeOffset NotBefore = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset NotAfter = new(2049, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly ECDsa _rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly ECDsa _signingKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly X509Certificate2 _root;
    private readonly X509Certificate2 _signer;
    private int _serial;

    public TestManufacturer(string name = "Test Manufacturer")
    {
        var rootRequest = new CertificateRequest($"CN={name} Root", _rootKey, HashAlgorithmName.SHA384);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 2, true));
        rootRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        _root = rootRequest.CreateSelfSigned(NotBefore, NotAfter);

        var signRequest = new CertificateRequest($"CN={name} Firmware Signing", _signingKey, HashAlgorithmName.SHA384);
        signRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ProtocolOids.FirmwareSigningUsage)], false));
        using X509Certificate2 signer = signRequest.Create(_root, NotBefore, NotAfter, [1, 1]);
        _signer = signer.CopyWithPrivateKey(_signingKey);
        Root = X509CertificateLoader.LoadCertificate(_root.RawData);
    }

    public X509Certificate2 Root { get; }

    public byte[] Sign(FirmwareImage image) => image.Sign(_signer);

    public DeviceFuses Provision(uint antiRollbackCounter = 0, byte[]? secret = null)
    {
        secret ??= RandomNumberGenerator.GetBytes(32);
        using ECDsa identity = DeviceKeyDerivation.DeriveIdentityKey(secret);
        var request = new CertificateRequest("CN=Test NPU", identity, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using X509Certificate2 cert = request.Create(_root, NotBefore, NotAfter, [2, (byte)Interlocked.Increment(ref _serial)]);
        return new DeviceFuses(secret, cert, Root, antiRollbackCounter);
    }

    public void Dispose()
    {
        _root.Dispose();
        _signer.Dispose();
        Root.Dispose();
        _rootKey.Dispose();
        _signingKey.Dispose();
    }
}
