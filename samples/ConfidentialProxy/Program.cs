using System.Security.Cryptography.X509Certificates;
using AscendCC.Client;
using AscendCC.OpenAi;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Runtime.Trusted.Verification;
using Microsoft.Extensions.AI;

namespace ConfidentialProxy;

/// <summary>
/// The data owner's side on its own machine: unmodified OpenAI clients talk to this proxy on
/// localhost; it attests the remote NPU, tokenizes and seals here, and the AscendCC server only ever
/// relays ciphertext (docs/server.md, "The local OpenAI-compatible proxy").
/// </summary>
public sealed class ProxyProgram
{
    private ProxyProgram()
    {
    }

    /// <summary>Runs the proxy with the settings of <c>Proxy:*</c> (appsettings.json, environment, command line).</summary>
    public static void Main(string[] args)
    {
        WebApplicationBuilder builder = WebApplication.CreateBuilder(args);
        builder.Services.AddSingleton<IChatClient>(sp => FromConfiguration(sp.GetRequiredService<IConfiguration>()));
        WebApplication app = builder.Build();
        app.MapOpenAi();
        app.Run();
    }

    /// <summary>The confidential chat client the settings describe.</summary>
    public static IChatClient FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        IConfigurationSection proxy = configuration.GetSection("Proxy");
        string Required(string key) => proxy[key] is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"Proxy:{key} is not set; see docs/server.md for the proxy's settings (the server URL, the model's tokenizer, the required model measurement and the manufacturer's publications)");
        var http = new HttpClient { BaseAddress = new Uri(Required("Server")) };
        var npu = new RemoteNpu(http, int.Parse(proxy["Device"] ?? "0", System.Globalization.CultureInfo.InvariantCulture));
        using X509Certificate2 root = X509CertificateLoader.LoadCertificateFromFile(Required("ManufacturerRoot"));
        var verifier = new AttestationVerifier(root, File.ReadAllBytes(Required("ReferenceMeasurements")),
            proxy["TcbStatement"] is { Length: > 0 } tcb ? File.ReadAllBytes(tcb) : ReadOnlyMemory<byte>.Empty,
            proxy["RevocationList"] is { Length: > 0 } crl ? File.ReadAllBytes(crl) : ReadOnlyMemory<byte>.Empty);
        return new ConfidentialChatClient(npu, verifier, TextTokenizer.Load(Required("Tokenizer")), new ConfidentialChatClientOptions
        {
            RequiredModel = Convert.FromHexString(Required("RequiredModel")),
            ModelId = proxy["ModelId"],
        });
    }
}
