using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.AI;

namespace AscendCC.OpenAi;

/// <summary>One message of an OpenAI chat request.</summary>
/// <param name="Role">system, user or assistant.</param>
/// <param name="Content">Its text.</param>
public sealed record OpenAiMessage(
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] string? Content);

/// <summary>The fields of an OpenAI <c>/v1/chat/completions</c> request honoured here; others are ignored.</summary>
public sealed record OpenAiChatRequest
{
    /// <summary>The model's id (informational: an endpoint serves the one model of its chat client).</summary>
    [JsonPropertyName("model")] public string? Model { get; init; }

    /// <summary>The conversation.</summary>
    [JsonPropertyName("messages")] public IReadOnlyList<OpenAiMessage>? Messages { get; init; }

    /// <summary>Stream server-sent events.</summary>
    [JsonPropertyName("stream")] public bool Stream { get; init; }

    /// <summary>Sampling temperature; 0 is greedy.</summary>
    [JsonPropertyName("temperature")] public float? Temperature { get; init; }

    /// <summary>Nucleus threshold.</summary>
    [JsonPropertyName("top_p")] public float? TopP { get; init; }

    /// <summary>Lowers a token's logit per time it occurred in the recent context (OpenAI's; 0 = off).</summary>
    [JsonPropertyName("frequency_penalty")] public float? FrequencyPenalty { get; init; }

    /// <summary>Lowers the logit of every token that occurred in the recent context (OpenAI's; 0 = off).</summary>
    [JsonPropertyName("presence_penalty")] public float? PresencePenalty { get; init; }

    /// <summary>Keep the k most likely tokens (llama.cpp server's extension; 0 = off).</summary>
    [JsonPropertyName("top_k")] public int? TopK { get; init; }

    /// <summary>Drop tokens less likely than this fraction of the most likely one (llama.cpp server's extension; 0 = off).</summary>
    [JsonPropertyName("min_p")] public float? MinP { get; init; }

    /// <summary>CTRL's repetition penalty on the recent context (llama.cpp server's extension; 1 = off).</summary>
    [JsonPropertyName("repeat_penalty")] public float? RepeatPenalty { get; init; }

    /// <summary>How many recent tokens the penalties look at (llama.cpp server's extension; −1 = the whole context).</summary>
    [JsonPropertyName("repeat_last_n")] public int? RepeatLastN { get; init; }

    /// <summary>Most new tokens (the older name).</summary>
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; init; }

    /// <summary>Most new tokens.</summary>
    [JsonPropertyName("max_completion_tokens")] public int? MaxCompletionTokens { get; init; }

    /// <summary>Seed of the device's sampler.</summary>
    [JsonPropertyName("seed")] public long? Seed { get; init; }

    /// <summary>A stop string or a list of them.</summary>
    [JsonPropertyName("stop")] public JsonElement? Stop { get; init; }

    /// <summary>
    /// Extra chat-template variables (vLLM's and llama.cpp server's extension), e.g.
    /// <c>{"enable_thinking": false}</c> for Qwen3; passed on as the chat option of the same name.
    /// </summary>
    [JsonPropertyName("chat_template_kwargs")] public JsonElement? ChatTemplateKwargs { get; init; }
}

/// <summary>
/// OpenAI's chat completions and models endpoints over the registered <see cref="IChatClient"/> (in
/// the confidential proxy, AscendCC.Client's <c>ConfidentialChatClient</c>; in a CC-off server, its own
/// NPUs): the translation between the wire format unmodified clients speak and the .NET chat
/// abstraction, nothing else.
/// </summary>
public static class OpenAiEndpoints
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>Maps <c>GET /v1/models</c> and <c>POST /v1/chat/completions</c>.</summary>
    public static void MapOpenAi(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGet("/v1/models", (IChatClient chat) =>
        {
            string id = chat.GetService<ChatClientMetadata>()?.DefaultModelId ?? "ascendcc";
            return Results.Json(new { @object = "list", data = new[] { new { id, @object = "model", owned_by = "ascendcc" } } });
        });
        app.MapPost("/v1/chat/completions", Complete);
    }

    private static async Task Complete(HttpContext http, IChatClient chat, OpenAiChatRequest request, CancellationToken cancel)
    {
        if (request.Messages is not { Count: > 0 } messages)
        {
            await Problem(http, StatusCodes.Status400BadRequest, "messages is required: a non-empty list of {role, content}");
            return;
        }
        if (messages.FirstOrDefault(m => m.Role is not ("system" or "user" or "assistant")) is { } bad)
        {
            await Problem(http, StatusCodes.Status400BadRequest, $"role '{bad.Role}' is not supported: use system, user or assistant");
            return;
        }
        List<ChatMessage> chatMessages = [.. messages.Select(m => new ChatMessage(new ChatRole(m.Role), m.Content ?? ""))];
        var options = new ChatOptions
        {
            Temperature = request.Temperature,
            TopP = request.TopP,
            MaxOutputTokens = request.MaxCompletionTokens ?? request.MaxTokens,
            Seed = request.Seed,
            StopSequences = Stops(request.Stop),
            TopK = request.TopK,
            FrequencyPenalty = request.FrequencyPenalty,
            PresencePenalty = request.PresencePenalty,
            AdditionalProperties = Extensions(request),
        };
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string model = chat.GetService<ChatClientMetadata>()?.DefaultModelId ?? request.Model ?? "ascendcc";
        if (!request.Stream)
        {
            ChatResponse response;
            try
            {
                response = await chat.GetResponseAsync(chatMessages, options, cancel);
            }
            catch (ArgumentException e)
            {
                await Problem(http, StatusCodes.Status400BadRequest, e.Message);
                return;
            }
            await http.Response.WriteAsJsonAsync(new
            {
                id,
                @object = "chat.completion",
                created,
                model,
                choices = new[] { new { index = 0, message = new { role = "assistant", content = response.Text }, finish_reason = FinishReason(response.FinishReason) } },
                usage = new
                {
                    prompt_tokens = response.Usage?.InputTokenCount ?? 0,
                    completion_tokens = response.Usage?.OutputTokenCount ?? 0,
                    total_tokens = response.Usage?.TotalTokenCount ?? 0,
                },
            }, Json, cancel);
            return;
        }
        // The first update is awaited before the response starts, so that a refusal (a prompt longer
        // than the context, say) is a 400 with OpenAI's error body, not a broken event stream.
        await using IAsyncEnumerator<ChatResponseUpdate> updates = chat.GetStreamingResponseAsync(chatMessages, options, cancel).GetAsyncEnumerator(cancel);
        bool more;
        try
        {
            more = await updates.MoveNextAsync();
        }
        catch (ArgumentException e)
        {
            await Problem(http, StatusCodes.Status400BadRequest, e.Message);
            return;
        }
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        for (; more; more = await updates.MoveNextAsync())
        {
            ChatResponseUpdate update = updates.Current;
            string? finish = update.FinishReason is { } reason ? FinishReason(reason) : null;
            if (update.Text.Length == 0 && finish is null)
            {
                continue;
            }
            var chunk = new
            {
                id,
                @object = "chat.completion.chunk",
                created,
                model,
                choices = new[] { new { index = 0, delta = new { content = update.Text.Length > 0 ? update.Text : null }, finish_reason = finish } },
            };
            await http.Response.WriteAsync("data: " + JsonSerializer.Serialize(chunk, Json) + "\n\n", cancel);
            await http.Response.Body.FlushAsync(cancel);
        }
        await http.Response.WriteAsync("data: [DONE]\n\n", cancel);
    }

    private static List<string>? Stops(JsonElement? stop) => stop switch
    {
        { ValueKind: JsonValueKind.String } s => [s.GetString()!],
        { ValueKind: JsonValueKind.Array } a => [.. a.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!)],
        _ => null,
    };

    private static string FinishReason(ChatFinishReason? reason) =>
        reason == ChatFinishReason.Length ? "length" : "stop";

    private static Task Problem(HttpContext http, int status, string detail)
    {
        http.Response.StatusCode = status;
        return http.Response.WriteAsJsonAsync(new { error = new { message = detail, type = "invalid_request_error" } });
    }

    private static AdditionalPropertiesDictionary? Extensions(OpenAiChatRequest request)
    {
        var extra = new AdditionalPropertiesDictionary();
        if (request.MinP is { } minP)
        {
            extra["min_p"] = minP;
        }
        if (request.RepeatPenalty is { } repeatPenalty)
        {
            extra["repeat_penalty"] = repeatPenalty;
        }
        if (request.RepeatLastN is { } repeatLastN)
        {
            extra["repeat_last_n"] = repeatLastN;
        }
        if (request.ChatTemplateKwargs is { ValueKind: not JsonValueKind.Null } kwargs)
        {
            extra["chat_template_kwargs"] = kwargs;
        }
        return extra.Count == 0 ? null : extra;
    }
}
