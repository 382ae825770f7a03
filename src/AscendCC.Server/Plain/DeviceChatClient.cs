using System.Runtime.CompilerServices;
using AscendCC.Client;
using AscendCC.Runtime.Chat;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Server.Plain;

/// <summary>
/// CC off: the host's own chat client over its NPUs, behind the OpenAI endpoints. The host tokenizes
/// and sees everything here, which is what CC off means. Each request goes to the NPU with the fewest
/// requests queued; there it joins the NPU's continuous batch (<see cref="PlainBatchLoop"/>, a model
/// of several sequences) or, with <see cref="NpuServerOptions.MaxSequences"/> = 1, holds the NPU for
/// its whole reply (first come, first served).
/// </summary>
internal sealed class DeviceChatClient : TokenChatClient
{
    private readonly NpuFleet _fleet;

    private DeviceChatClient(NpuFleet fleet, TextTokenizer tokenizer, TokenChatClientOptions options)
        : base(tokenizer, options, "AscendCC (CC off)")
    {
        _fleet = fleet;
    }

    /// <summary>
    /// The chat client of a CC-off fleet: its configured model's tokenizer, end-of-sequence ids and,
    /// when the model folder (or .gguf) has one, its chat template.
    /// </summary>
    public static DeviceChatClient Create(NpuFleet fleet)
    {
        if (fleet.Options.Confidential || fleet.Devices[0].Loaded is not { } model)
        {
            throw new InvalidOperationException("the plaintext chat endpoint exists only on a CC-off host (Npu:Confidential=false with Npu:Model)");
        }
        string folder = fleet.Options.Model!;
        ChatTemplate? template = Directory.Exists(folder) || File.Exists(folder) ? ChatTemplate.TryLoadFromModel(folder) : null;
        TokenChatClientOptions options = template is null ? new TokenChatClientOptions() : TokenChatClientOptions.FromChatTemplate(template);
        return new DeviceChatClient(fleet, TextTokenizer.Load(folder), options with
        {
            StopTokenIds = model.Config.EosTokenIds,
            ModelId = fleet.PlainModelId,
        });
    }

    protected override async IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions sampling,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        NpuSlot npu = _fleet.Devices.MinBy(d => d.PlainBatch?.Active ?? d.Queued)!;
        CausalLM model = npu.Loaded!;
        // Refused before the wait: a prompt the context cannot hold is the caller's error, not a reason to queue.
        if (prompt.Count >= model.MaxContext)
        {
            throw new ArgumentException($"the prompt has {prompt.Count} tokens but the context holds {model.MaxContext}; shorten it (or start the server with a larger Npu:MaxContext)", nameof(prompt));
        }
        if (npu.PlainBatch is { } batch)
        {
            // Also cancelled when the caller stops reading early (a stop sequence, a client gone), so
            // the reply leaves the batch at the next step instead of decoding to its budget.
            using var leave = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            try
            {
                await foreach (int token in batch.Enqueue(prompt, maxTokens, sampling, StopIds, leave.Token).ReadAllAsync(cancellationToken).ConfigureAwait(false))
                {
                    yield return token;
                }
            }
            finally
            {
                await leave.CancelAsync().ConfigureAwait(false);
            }
            yield break;
        }
        await npu.EnterAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (int token in model.Generate(prompt, maxTokens, sampling, StopIds))
            {
                yield return token;
                cancellationToken.ThrowIfCancellationRequested();
            }
        }
        finally
        {
            npu.Leave();
        }
    }
}
