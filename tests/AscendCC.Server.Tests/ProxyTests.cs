using System.Net;
using System.Text;
using System.Text.Json;
using AscendCC.Client;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Tests;
using ConfidentialProxy;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace AscendCC.Server.Tests;

/// <summary>
/// The local OpenAI-compatible proxy (samples/ConfidentialProxy) in front of a server with stories260K:
/// requests written as any OpenAI client writes them get llama2.c's story, streamed or whole.
/// </summary>
[NonParallelizable]
public sealed class ProxyTests : IDisposable
{
    private ServerWorld? _world;
    private ModelCheckpoint? _checkpoint;
    private WebApplicationFactory<ProxyProgram>? _proxy;
    private HttpClient _http = null!;
    private string _continuation = "";

    [OneTimeSetUp]
    public async Task StartServerAndProxy()
    {
        string folder = TestData.RequireModel("stories260K");
        _continuation = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"))["Once upon a time".Length..];
        _checkpoint = ModelCheckpoint.Open(folder);
        ModelCheckpoint checkpoint = _checkpoint;
        _world = new ServerWorld(checkpoint.Config, n => TensorData.FromCheckpoint(checkpoint.GetTensor(n)), checkpoint.RopeConvention, "stories260K", maxContext: 128, maxBatchTokens: 16);
        await _world.DeployAsync();
        ServerWorld world = _world;
        var chat = new ConfidentialChatClient(world.Npu, world.Verifier, TextTokenizer.Load(folder), new ConfidentialChatClientOptions
        {
            RequiredModel = world.Model.Manifest.ExpectedGraphMeasurement,
            StopTokenIds = checkpoint.Config.EosTokenIds,
            ModelId = "stories260K",
        });
        _proxy = new WebApplicationFactory<ProxyProgram>().WithWebHostBuilder(b => b.ConfigureServices(s => s.AddSingleton<IChatClient>(chat)));
        _http = _proxy.CreateClient();
    }

    public void Dispose()
    {
        _http?.Dispose();
        _proxy?.Dispose();
        _world?.Dispose();
        _checkpoint?.Dispose();
    }

    private static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    [Test]
    public async Task A_streamed_openai_request_gets_the_story_as_server_sent_events()
    {
        const string request = """{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"temperature":0,"max_tokens":60,"stream":true}""";
        using HttpResponseMessage response = await _http.PostAsync("/v1/chat/completions", Body(request));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/event-stream"));
        string[] events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.That(events[^1], Is.EqualTo("data: [DONE]"));
        var text = new StringBuilder();
        string? finish = null;
        foreach (string e in events[..^1])
        {
            Assert.That(e, Does.StartWith("data: "));
            using JsonDocument chunk = JsonDocument.Parse(e["data: ".Length..]);
            Assert.That(chunk.RootElement.GetProperty("object").GetString(), Is.EqualTo("chat.completion.chunk"));
            JsonElement choice = chunk.RootElement.GetProperty("choices")[0];
            if (choice.GetProperty("delta").TryGetProperty("content", out JsonElement content))
            {
                text.Append(content.GetString());
            }
            if (choice.TryGetProperty("finish_reason", out JsonElement reason) && reason.ValueKind == JsonValueKind.String)
            {
                finish = reason.GetString();
            }
        }
        Assert.That(text.ToString(), Is.EqualTo(_continuation));
        Assert.That(finish, Is.EqualTo("length"));
        Assert.That(events.Length, Is.GreaterThan(10), "one event per piece of text as the tokens arrive");
    }

    [Test]
    public async Task A_whole_openai_request_gets_one_completion_and_the_models_are_listed()
    {
        const string request = """{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"temperature":0,"max_tokens":60,"stop":"girl named"}""";
        using HttpResponseMessage response = await _http.PostAsync("/v1/chat/completions", Body(request));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using JsonDocument completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement choice = completion.RootElement.GetProperty("choices")[0];
        Assert.That(choice.GetProperty("message").GetProperty("content").GetString(), Is.EqualTo(", there was a little "));
        Assert.That(choice.GetProperty("finish_reason").GetString(), Is.EqualTo("stop"));
        Assert.That(completion.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), Is.EqualTo(5));

        using JsonDocument models = JsonDocument.Parse(await _http.GetStringAsync("/v1/models"));
        Assert.That(models.RootElement.GetProperty("data")[0].GetProperty("id").GetString(), Is.EqualTo("stories260K"));
    }

    [Test]
    public async Task A_request_without_messages_or_with_an_unknown_role_is_a_400()
    {
        using HttpResponseMessage empty = await _http.PostAsync("/v1/chat/completions", Body("""{"model":"x","messages":[]}"""));
        Assert.That(empty.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await empty.Content.ReadAsStringAsync(), Does.Contain("messages is required"));
        using HttpResponseMessage tool = await _http.PostAsync("/v1/chat/completions", Body("""{"messages":[{"role":"tool","content":"x"}]}"""));
        Assert.That(tool.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await tool.Content.ReadAsStringAsync(), Does.Contain("role 'tool' is not supported"));
    }
}
