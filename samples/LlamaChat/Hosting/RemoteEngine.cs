using AscendCC.Client;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Runtime.Trusted.Verification;
using LlamaChat.Ui;

namespace LlamaChat.Hosting;

/// <summary>
/// The data owner's side only, against a remote AscendCC server (<c>--server</c>): the model was
/// deployed there by its provider; this process holds the tokenizer, the manufacturer's public files
/// and the model's graph measurement, attests the NPU for every reply, seals the context and opens
/// the tokens the server relays. No weight and no key is ever here.
/// </summary>
internal sealed class RemoteEngine : IChatEngine
{
    private readonly ChatUi _ui;
    private readonly HttpClient _http;
    private readonly ConfidentialChatClient _client;
    private bool _shownAttestation;

    public RemoteEngine(ChatUi ui, Uri server, string manufacturerFolder, int device, string? package, ReadOnlyMemory<byte> requiredModel, TextTokenizer tokenizer, int maxContext)
    {
        _ui = ui;
        MaxContext = maxContext;
        ui.Step("data owner", $"uses the model deployed on {server} (NPU {(package is null ? device.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"placed by the server for package '{package}'")}), trusting only the manufacturer's files in {manufacturerFolder}");
        ui.Evidence("required model", Convert.ToHexString(requiredModel.Span));
        using ManufacturerPublications publications = ManufacturerPublications.Load(manufacturerFolder);
        _http = new HttpClient { BaseAddress = server, Timeout = Timeout.InfiniteTimeSpan };
        // Fail before the chat starts, naming the server, rather than at the first reply.
        try
        {
            using var ready = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using HttpResponseMessage response = _http.GetAsync("readyz", ready.Token).GetAwaiter().GetResult();
            if (!response.IsSuccessStatusCode)
            {
                throw new ChatInputException($"the AscendCC server at {server} is not ready ({(int)response.StatusCode} {response.ReasonPhrase} from /readyz)");
            }
        }
        catch (Exception e)
        {
            _http.Dispose();
            if (e is HttpRequestException or TaskCanceledException)
            {
                throw new ChatInputException($"cannot reach the AscendCC server at {server}: {e.Message}");
            }
            throw;
        }
        _client = new ConfidentialChatClient(new RemoteNpu(_http, device), publications.CreateVerifier(), tokenizer,
            new ConfidentialChatClientOptions { RequiredModel = requiredModel, Package = package });
    }

    public int MaxContext { get; }

    public IEnumerable<int> Generate(IReadOnlyList<int> context, int maxTokens, SamplingOptions sampling, IReadOnlyCollection<int> stopTokens)
    {
        // Each reply attests the NPU again (a new session); the checks are shown for the first one,
        // and any failed one is shown in full.
        using var cancel = new CancellationTokenSource();
        IAsyncEnumerator<int> tokens = _client.GenerateTokensAsync(context, maxTokens, sampling, cancel.Token).GetAsyncEnumerator(cancel.Token);
        try
        {
            while (true)
            {
                bool more;
                try
                {
                    more = tokens.MoveNextAsync().AsTask().GetAwaiter().GetResult();
                }
                finally
                {
                    ShowAttestation();
                }
                if (!more)
                {
                    yield break;
                }
                yield return tokens.Current;
                if (stopTokens.Contains(tokens.Current))
                {
                    yield break;
                }
            }
        }
        finally
        {
            // Leaving early (a stop string, Ctrl-C) ends the stream and closes the device session.
            tokens.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private void ShowAttestation()
    {
        if (_client.LastAttestation is { } result && (!_shownAttestation || !result.PolicySatisfied))
        {
            _shownAttestation = true;
            _ui.Checks("data owner", result);
        }
    }

    public void Dispose()
    {
        _client.Dispose();
        _http.Dispose();
    }
}
