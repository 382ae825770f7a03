using System.Net;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Server.Plain;
using AscendCC.Tests;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace AscendCC.Server.Tests;

/// <summary>
/// A host started with CC off (<c>Npu:Confidential=false</c>, <c>Npu:Model</c> = stories260K): ordinary
/// OpenAI clients talk to it directly and get llama2.c's story; it has none of the confidential
/// protocol's endpoints, and what it handles holds the prompt and the reply in plaintext, which is
/// the control for the CC-on tests that find neither.
/// </summary>
[NonParallelizable]
public sealed class PlainServerTests : IDisposable
{
    private const string Prompt = "Once upon a time";
    private readonly BodyRecorder _recorder = new();
    private WebApplicationFactory<Program>? _factory;
    private HttpClient _http = null!;
    private string _continuation = "";
    private string _store = "";

    [OneTimeSetUp]
    public void StartCcOffServer()
    {
        string folder = TestData.RequireModel("stories260K");
        _continuation = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"))[Prompt.Length..];
        _store = Path.Combine(Path.GetTempPath(), "ascendcc-plain-server-" + Guid.NewGuid().ToString("N"));
        BodyRecorder recorder = _recorder;
        _factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseSetting("Npu:Simulate", "true");
            b.UseSetting("Npu:Confidential", "false");
            b.UseSetting("Npu:Model", folder);
            b.UseSetting("Npu:MaxContext", "128");
            b.UseSetting("Npu:DeviceCount", "2");
            b.UseSetting("Npu:MaxSequences", "3");
            b.UseSetting("Npu:ModelStore", _store);
            b.UseSetting("Npu:HbmCapacity", (64L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture));
            b.ConfigureServices(s => s.AddSingleton(recorder.Filter()));
        });
        _http = _factory.CreateClient();
    }

    public void Dispose()
    {
        _http?.Dispose();
        _factory?.Dispose();
        try
        {
            Directory.Delete(_store, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    private static string StoryRequest(bool stream) =>
        $$"""{"model":"stories260K","messages":[{"role":"user","content":"{{Prompt}}"}],"temperature":0,"max_tokens":60,"stream":{{(stream ? "true" : "false")}}}""";

    [Test]
    public async Task An_openai_request_gets_the_reference_story_from_the_cc_off_npus()
    {
        int before = _recorder.Bodies.Count;
        using HttpResponseMessage response = await _http.PostAsync("/v1/chat/completions", Body(StoryRequest(stream: false)));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        using JsonDocument completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement choice = completion.RootElement.GetProperty("choices")[0];
        string reply = choice.GetProperty("message").GetProperty("content").GetString()!;
        Assert.That(reply, Is.EqualTo(_continuation));
        Assert.That(choice.GetProperty("finish_reason").GetString(), Is.EqualTo("length"));
        Assert.That(completion.RootElement.GetProperty("model").GetString(), Is.EqualTo("stories260K"));

        // The control of ChatClientTests' capture: with CC off, the same search finds the prompt and
        // the reply in what the host handled (so finding neither with CC on means something).
        byte[][] bodies = [.. _recorder.Bodies.Skip(before)];
        foreach (string secret in new[] { Prompt, reply[..20] })
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(secret);
            Assert.That(bodies.Any(b => b.AsSpan().IndexOf(utf8) >= 0), Is.True, $"'{secret}' in a body the CC-off host handled");
        }
    }

    [Test]
    public async Task Concurrent_streamed_requests_each_get_the_whole_story()
    {
        async Task<string> Stream()
        {
            using HttpResponseMessage response = await _http.PostAsync("/v1/chat/completions", Body(StoryRequest(stream: true)));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            var text = new StringBuilder();
            foreach (string e in (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
            {
                if (e == "data: [DONE]")
                {
                    continue;
                }
                using JsonDocument chunk = JsonDocument.Parse(e["data: ".Length..]);
                if (chunk.RootElement.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out JsonElement content))
                {
                    text.Append(content.GetString());
                }
            }
            return text.ToString();
        }
        string[] replies = await Task.WhenAll(Stream(), Stream(), Stream());
        Assert.That(replies, Is.All.EqualTo(_continuation));
    }

    private NpuFleet Fleet => _factory!.Services.GetRequiredService<NpuFleet>();

    private async Task<(string Text, string Finish)> Complete(string json)
    {
        using HttpResponseMessage response = await _http.PostAsync("/v1/chat/completions", Body(json));
        string body = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        using JsonDocument completion = JsonDocument.Parse(body);
        JsonElement choice = completion.RootElement.GetProperty("choices")[0];
        return (choice.GetProperty("message").GetProperty("content").GetString()!, choice.GetProperty("finish_reason").GetString()!);
    }

    [Test]
    public async Task Concurrent_requests_share_each_npus_steps_and_join_and_leave_between_them()
    {
        // Each reply alone first: the reference for the same request in a shared batch.
        string Request(string prompt, int maxTokens) =>
            JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = prompt } }, temperature = 0, max_tokens = maxTokens });
        (string Prompt, int MaxTokens)[] requests = [(Prompt, 60), ("Lily had a", 48), (Prompt, 5), ("The dog", 30), ("Lily had a", 3), (Prompt, 60)];
        var alone = new List<(string, string)>();
        foreach ((string prompt, int maxTokens) in requests)
        {
            alone.Add(await Complete(Request(prompt, maxTokens)));
        }
        Assert.That(alone[0].Item1, Is.EqualTo(_continuation));

        (string, string)[] together = await Task.WhenAll(requests.Select(r => Complete(Request(r.Prompt, r.MaxTokens))));

        Assert.That(together, Is.EqualTo(alone), "each reply, decoded in a batch with the others, is its reply alone");
        Assert.That(together[2].Item2, Is.EqualTo("length"), "a 5-token reply leaves the batch before the 60-token ones end");
        Assert.That(Fleet.Devices.Max(d => d.PlainBatch!.MostSequencesInOneStep), Is.GreaterThan(1), "requests shared a step");
        Assert.That(Fleet.Devices.Select(d => d.PlainBatch!.Capacity), Is.All.EqualTo(3), "Npu:MaxSequences");
        await WaitUntilIdle();
    }

    [Test]
    public async Task A_reply_that_ends_on_a_stop_sequence_is_cut_there_and_the_batch_empties()
    {
        // The chat client stops reading at " named" (the story's 8th word) and takes the sequence out
        // of the batch then; a model this small may have decoded its budget already, so the leaving
        // itself is held to account below, where the client goes before the first step.
        string json = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = Prompt } }, temperature = 0, max_tokens = 120, stop = new[] { " named" } });
        (string text, string finish) = await Complete(json);
        Assert.That(finish, Is.EqualTo("stop"));
        Assert.That(text, Is.EqualTo(_continuation[.._continuation.IndexOf(" named", StringComparison.Ordinal)]));
        await WaitUntilIdle();
    }

    /// <summary>
    /// A reader that leaves before its request joins the batch (still queued), or after the step that
    /// read its prompt (decoding). The test holds the NPU's gate to pin the loop between steps: the
    /// loop waits for the gate with the request in hand, gets it for one step, and the test, queued
    /// behind it (the gate is first come, first served), has it again before the next.
    /// </summary>
    [TestCase(false)]
    [TestCase(true)]
    public async Task A_request_whose_reader_leaves_is_taken_out_of_the_batch_unfinished(bool afterOneStep)
    {
        NpuSlot npu = Fleet.Devices[0];
        PlainBatchLoop loop = npu.PlainBatch!;
        int before = loop.Abandoned;
        int[] prompt = [.. TextTokenizer.Load(TestData.RequireModel("stories260K")).Encode(Prompt)];
        using var leave = new CancellationTokenSource();
        await npu.EnterAsync(CancellationToken.None);
        ChannelReader<int> tokens = loop.Enqueue(prompt, 120, SamplingOptions.Greedy, [], leave.Token);
        if (afterOneStep)
        {
            for (int i = 0; i < 2000 && npu.Queued < 2; i++)
            {
                await Task.Delay(1);
            }
            Assert.That(npu.Queued, Is.EqualTo(2), "the loop waits for the NPU with the request");
            npu.Leave();
            await npu.EnterAsync(CancellationToken.None);
        }
        await leave.CancelAsync();
        npu.Leave();
        var received = new List<int>();
        Assert.CatchAsync<OperationCanceledException>(async () =>
        {
            await foreach (int token in tokens.ReadAllAsync())
            {
                received.Add(token);
            }
        });
        Assert.That(received, Has.Count.EqualTo(afterOneStep ? 1 : 0), "tokens of the steps it was in: none, or the one after its prompt");
        Assert.That(loop.Abandoned, Is.EqualTo(before + 1));
        await WaitUntilIdle();
    }

    /// <summary>Every NPU's batch empties: nothing a finished or abandoned request started keeps decoding.</summary>
    private async Task WaitUntilIdle()
    {
        for (int i = 0; i < 200 && Fleet.Devices.Any(d => d.PlainBatch!.Active > 0); i++)
        {
            await Task.Delay(25);
        }
        Assert.That(Fleet.Devices.Select(d => d.PlainBatch!.Active), Is.All.EqualTo(0), "requests still queued or decoding");
    }

    [Test]
    public async Task The_devices_report_cc_off_and_the_confidential_protocol_does_not_exist()
    {
        using JsonDocument devices = JsonDocument.Parse(await _http.GetStringAsync("/v1/devices"));
        Assert.That(devices.RootElement.EnumerateArray().Select(d => d.GetProperty("ccMode").GetString()), Is.EqualTo(new[] { "Off", "Off" }));
        Assert.That(devices.RootElement[0].GetProperty("loadedPackage").GetString(), Is.EqualTo("stories260K"));
        using HttpResponseMessage hello = await _http.PostAsync("/v1/devices/0/hello", new ByteArrayContent(new byte[32]));
        Assert.That(hello.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        using HttpResponseMessage upload = await _http.PutAsync("/v1/packages/x", new ByteArrayContent(new byte[32]));
        Assert.That(upload.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task A_prompt_longer_than_the_context_is_a_400_naming_the_sizes()
    {
        string longText = string.Join(' ', Enumerable.Repeat("Once upon a time there was a dog.", 40));
        foreach (bool stream in new[] { false, true })
        {
            string json = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = longText } }, stream });
            using HttpResponseMessage response = await _http.PostAsync("/v1/chat/completions", Body(json));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), $"stream {stream}");
            using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.That(error.RootElement.GetProperty("error").GetProperty("message").GetString(), Does.Contain("the context holds 128"));
        }
        // The host keeps serving.
        using HttpResponseMessage ok = await _http.PostAsync("/v1/chat/completions", Body(StoryRequest(stream: false)));
        Assert.That(ok.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task Penalties_and_min_p_reach_the_device_and_bad_values_are_a_400_naming_them()
    {
        // OpenAI's frequency/presence penalties and llama.cpp server's repeat_penalty, repeat_last_n,
        // top_k and min_p: a greedy story with a strong repetition penalty leaves the reference.
        string penalised = $$"""{"messages":[{"role":"user","content":"{{Prompt}}"}],"temperature":0,"max_tokens":60,"repeat_penalty":1.5,"repeat_last_n":-1,"frequency_penalty":0.2,"presence_penalty":0.1,"top_k":40,"min_p":0.05}""";
        using HttpResponseMessage response = await _http.PostAsync("/v1/chat/completions", Body(penalised));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        using JsonDocument completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        string reply = completion.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        Assert.That(reply, Is.Not.EqualTo(_continuation).And.Not.Empty, "the repetition penalty changes the greedy story");

        foreach ((string field, string value, string named) in new[] { ("min_p", "2", "min-p 2"), ("repeat_penalty", "0", "repeat penalty 0"), ("repeat_last_n", "-5", "repeat-last-n -5") })
        {
            string json = $$"""{"messages":[{"role":"user","content":"{{Prompt}}"}],"max_tokens":4,"{{field}}":{{value}}}""";
            using HttpResponseMessage bad = await _http.PostAsync("/v1/chat/completions", Body(json));
            Assert.That(bad.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), field);
            using JsonDocument error = JsonDocument.Parse(await bad.Content.ReadAsStringAsync());
            Assert.That(error.RootElement.GetProperty("error").GetProperty("message").GetString(), Does.Contain(named), field);
        }
        // chat_template_kwargs (vLLM's and llama.cpp server's extension) that are not an object of scalars.
        foreach ((string kwargs, string named) in new[] { ("{\"enable_thinking\":[false]}", "'enable_thinking' is a JSON array"), ("5", "not a JSON number") })
        {
            string json = $$"""{"messages":[{"role":"user","content":"{{Prompt}}"}],"max_tokens":4,"chat_template_kwargs":{{kwargs}}}""";
            using HttpResponseMessage bad = await _http.PostAsync("/v1/chat/completions", Body(json));
            Assert.That(bad.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), kwargs);
            using JsonDocument error = JsonDocument.Parse(await bad.Content.ReadAsStringAsync());
            Assert.That(error.RootElement.GetProperty("error").GetProperty("message").GetString(), Does.Contain(named), kwargs);
        }
    }
}
