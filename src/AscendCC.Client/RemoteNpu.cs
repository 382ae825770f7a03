using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace AscendCC.Client;

/// <summary>A request the server refused, with its RFC 7807 problem details.</summary>
public sealed class RemoteNpuException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RemoteNpuException(HttpStatusCode status, string? title, string? detail)
        : base($"{(int)status} {title}: {detail}")
    {
        Status = status;
        Title = title;
        Detail = detail;
    }

    /// <summary>Creates the exception.</summary>
    public RemoteNpuException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public RemoteNpuException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public RemoteNpuException(string message, Exception inner) : base(message, inner)
    {
    }

    /// <summary>The HTTP status.</summary>
    public HttpStatusCode Status { get; }

    /// <summary>The problem's title.</summary>
    public string? Title { get; }

    /// <summary>What is wrong (the device's own message for its refusals).</summary>
    public string? Detail { get; }
}

/// <summary>A channel the remote device accepted.</summary>
/// <param name="Session">The device's session id.</param>
/// <param name="Accept">The accept record, for the party's handshake.</param>
public sealed record RemoteSession(int Session, byte[] Accept);

/// <summary>A package stored on the server.</summary>
/// <param name="Name">Its name on the server.</param>
/// <param name="Bytes">Its size.</param>
/// <param name="ModelName">The model name of its manifest.</param>
/// <param name="ManifestDigest">Its manifest digest.</param>
/// <param name="ExpectedGraphMeasurement">The graph measurement its manifest expects.</param>
public sealed record RemotePackage(string Name, long Bytes, string ModelName, byte[] ManifestDigest, byte[] ExpectedGraphMeasurement);

/// <summary>A model the remote device loaded.</summary>
/// <param name="Package">The package.</param>
/// <param name="PackageHandle">The device's package handle.</param>
/// <param name="UnlockedBytes">Bytes decrypted into locked HBM.</param>
/// <param name="ExpectedGraphMeasurement">The attested graph measurement data owners require.</param>
/// <param name="LoadMilliseconds">Load time on the server.</param>
public sealed record RemoteModel(string Package, int PackageHandle, long UnlockedBytes, byte[] ExpectedGraphMeasurement, long LoadMilliseconds);

/// <summary>A device the server lists.</summary>
/// <param name="Index">Its index.</param>
/// <param name="CcMode">Its CC mode.</param>
/// <param name="LoadedPackage">The loaded package, or null.</param>
/// <param name="Sessions">Open sessions.</param>
public sealed record RemoteDeviceInfo(int Index, string CcMode, string? LoadedPackage, int Sessions);

/// <summary>
/// One NPU of a remote AscendCC server. It only moves bytes: the attestation, the channel keys, the
/// sealing and the decryption stay in the caller's DataOwnerSession / KeyReleaseSession, so nothing
/// here is trusted and nothing here verifies.
/// </summary>
public sealed class RemoteNpu
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { NumberHandling = JsonNumberHandling.Strict };
    private readonly HttpClient _http;

    /// <summary>NPU <paramref name="device"/> of the server at <paramref name="http"/>'s base address.</summary>
    public RemoteNpu(HttpClient http, int device = 0)
    {
        _http = http ?? throw new ArgumentNullException(nameof(http));
        Device = device;
    }

    /// <summary>The device index.</summary>
    public int Device { get; }

    private string Base => $"v1/devices/{Device}";

    /// <summary>
    /// The server's choice of NPU for a new data owner of <paramref name="package"/> (one with it loaded
    /// and the shortest queue). The host is untrusted and this is only routing: the caller attests the
    /// device it is sent to and requires its model, as with any device.
    /// </summary>
    public async Task<RemoteNpu> PlaceAsync(string package, CancellationToken cancel = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(package);
        using HttpResponseMessage r = await SendAsync(new HttpRequestMessage(HttpMethod.Get, $"v1/placement?package={Uri.EscapeDataString(package)}"), cancel);
        RemotePlacement placement = await ReadJsonAsync<RemotePlacement>(r, cancel);
        return placement.Device == Device ? this : new RemoteNpu(_http, placement.Device);
    }

    private sealed record RemotePlacement(int Device, string Package);

    /// <summary>Every NPU of the server.</summary>
    public async Task<RemoteDeviceInfo[]> ListDevicesAsync(CancellationToken cancel = default)
    {
        using HttpResponseMessage r = await SendAsync(new HttpRequestMessage(HttpMethod.Get, "v1/devices"), cancel);
        return await ReadJsonAsync<RemoteDeviceInfo[]>(r, cancel);
    }

    /// <summary>The device's attestation hello for <paramref name="nonce"/>.</summary>
    public Task<byte[]> GetHelloAsync(ReadOnlyMemory<byte> nonce, CancellationToken cancel = default) =>
        PostBytesAsync($"{Base}/hello", nonce, cancel);

    /// <summary>Relays a party's channel open message; the device's session id and accept record come back.</summary>
    public async Task<RemoteSession> AcceptChannelAsync(byte[] openMessage, CancellationToken cancel = default)
    {
        using HttpResponseMessage r = await SendAsync(new HttpRequestMessage(HttpMethod.Post, $"{Base}/sessions") { Content = Octets(openMessage) }, cancel);
        return await ReadJsonAsync<RemoteSession>(r, cancel);
    }

    /// <summary>Relays the model provider's sealed key record; the device returns the manifest digest it now holds the key of.</summary>
    public Task<byte[]> ReleaseModelKeyAsync(int session, byte[] record, CancellationToken cancel = default) =>
        PostBytesAsync($"{Base}/sessions/{session}/key-release", record, cancel);

    /// <summary>Closes a device session (the device scrubs its context).</summary>
    public async Task CloseSessionAsync(int session, CancellationToken cancel = default)
    {
        using HttpResponseMessage r = await SendAsync(new HttpRequestMessage(HttpMethod.Delete, $"{Base}/sessions/{session}"), cancel);
    }

    /// <summary>Uploads an encrypted package (streamed from <paramref name="package"/>) and its deployment descriptor under <paramref name="name"/>.</summary>
    public async Task<RemotePackage> UploadPackageAsync(string name, Stream package, string deploymentJson, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(package);
        var content = new StreamContent(package, 1 << 16);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        if (package.CanSeek)
        {
            content.Headers.ContentLength = package.Length - package.Position;
        }
        RemotePackage stored;
        using (HttpResponseMessage r = await SendAsync(new HttpRequestMessage(HttpMethod.Put, $"v1/packages/{Uri.EscapeDataString(name)}") { Content = content }, cancel))
        {
            stored = await ReadJsonAsync<RemotePackage>(r, cancel);
        }
        using (HttpResponseMessage r = await SendAsync(new HttpRequestMessage(HttpMethod.Put, $"v1/packages/{Uri.EscapeDataString(name)}/deployment")
        {
            Content = new StringContent(deploymentJson, System.Text.Encoding.UTF8, "application/json"),
        }, cancel))
        {
        }
        return stored;
    }

    /// <summary>Has the device unlock and load a stored package whose key was released for <paramref name="manifestDigest"/>.</summary>
    public async Task<RemoteModel> LoadModelAsync(string package, byte[] manifestDigest, CancellationToken cancel = default)
    {
        using HttpResponseMessage r = await SendAsync(new HttpRequestMessage(HttpMethod.Post, $"{Base}/model")
        {
            Content = JsonContent.Create(new { package, manifestDigest }, options: Json),
        }, cancel);
        return await ReadJsonAsync<RemoteModel>(r, cancel);
    }

    /// <summary>
    /// Relays a sealed prompt of <paramref name="promptTokens"/> tokens and yields each sealed token
    /// record as the server streams it. Stop enumerating (or cancel) to stop the generation: the
    /// server then closes the device session.
    /// </summary>
    public async IAsyncEnumerable<byte[]> GenerateAsync(int session, byte[] sealedPrompt, int promptTokens, int maxTokens, [EnumeratorCancellation] CancellationToken cancel = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{Base}/sessions/{session}/generate?promptTokens={promptTokens}&maxTokens={maxTokens}") { Content = Octets(sealedPrompt) };
        using HttpResponseMessage response = await SendAsync(request, cancel, HttpCompletionOption.ResponseHeadersRead);
        await using Stream body = await response.Content.ReadAsStreamAsync(cancel);
        byte[] prefix = new byte[4];
        while (true)
        {
            int got = await body.ReadAtLeastAsync(prefix, 4, throwOnEndOfStream: false, cancel);
            if (got == 0)
            {
                yield break;
            }
            if (got < 4)
            {
                throw new IOException("the record stream ended inside a frame header");
            }
            int length = BinaryPrimitives.ReadInt32BigEndian(prefix);
            if (length is < 0 or > (1 << 20))
            {
                throw new IOException($"the record stream announced a {length}-byte record");
            }
            byte[] record = new byte[length];
            await body.ReadExactlyAsync(record, cancel);
            yield return record;
        }
    }

    private async Task<byte[]> PostBytesAsync(string path, ReadOnlyMemory<byte> body, CancellationToken cancel)
    {
        using HttpResponseMessage r = await SendAsync(new HttpRequestMessage(HttpMethod.Post, path) { Content = Octets(body.ToArray()) }, cancel);
        return await r.Content.ReadAsByteArrayAsync(cancel);
    }

    private static ByteArrayContent Octets(byte[] bytes)
    {
        var c = new ByteArrayContent(bytes);
        c.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return c;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancel, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        HttpResponseMessage response;
        using (request)
        {
            response = await _http.SendAsync(request, completion, cancel);
        }
        if (response.IsSuccessStatusCode)
        {
            return response;
        }
        using (response)
        {
            string? title = response.ReasonPhrase, detail = null;
            try
            {
                using JsonDocument problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancel));
                if (problem.RootElement.ValueKind == JsonValueKind.Object)
                {
                    title = problem.RootElement.TryGetProperty("title", out JsonElement t) ? t.GetString() : title;
                    detail = problem.RootElement.TryGetProperty("detail", out JsonElement d) ? d.GetString() : null;
                }
            }
            catch (JsonException)
            {
            }
            throw new RemoteNpuException(response.StatusCode, title, detail);
        }
    }

    private static async Task<T> ReadJsonAsync<T>(HttpResponseMessage response, CancellationToken cancel) =>
        await response.Content.ReadFromJsonAsync<T>(Json, cancel) ?? throw new RemoteNpuException($"the server answered {typeof(T).Name} with null");
}
