using System.Text;
using AscendCC.Client;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Tests;
using Microsoft.Extensions.AI;
using NUnit.Framework;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Server.Tests;

/// <summary>
/// The data owner's side as .NET applications use a chat model: <see cref="IChatClient"/>, here
/// <see cref="ConfidentialChatClient"/> against a server with stories260K deployed by a remote model
/// provider. The story comes back exactly as llama2.c tells it, while the server relays only ciphertext.
/// </summary>
[NonParallelizable]
public sealed class ChatClientTests : IDisposable
{
    private const string Prompt = "Once upon a time";
    private ServerWorld? _world;
    private ModelCheckpoint? _checkpoint;
    private TextTokenizer _tokenizer = null!;
    private string _reference = "";

    [OneTimeSetUp]
    public async Task DeployStories260K()
    {
        string folder = TestData.RequireModel("stories260K");
        _reference = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"));
        _tokenizer = TextTokenizer.Load(folder);
        _checkpoint = ModelCheckpoint.Open(folder);
        ModelCheckpoint checkpoint = _checkpoint;
        _world = new ServerWorld(checkpoint.Config, n => TensorData.FromCheckpoint(checkpoint.GetTensor(n)), checkpoint.RopeConvention, "stories260K", maxContext: 128, maxBatchTokens: 16);
        await _world.DeployAsync();
    }

    public void Dispose()
    {
        _world?.Dispose();
        _checkpoint?.Dispose();
    }

    private ConfidentialChatClient NewClient() => new(_world!.Npu, _world.Verifier, _tokenizer, new ConfidentialChatClientOptions
    {
        RequiredModel = _world.Model.Manifest.ExpectedGraphMeasurement,
        StopTokenIds = _checkpoint!.Config.EosTokenIds,
        ModelId = "stories260K",
    });

    [Test]
    public async Task An_IChatClient_gets_the_reference_story_and_the_attestation_behind_it()
    {
        using IChatClient chat = NewClient();
        int before = _world!.Recorder.Bodies.Count;
        // llama2.c's -n 64 counts BOS and the 4 prompt tokens: 60 new ones.
        ChatResponse response = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, Prompt)], new ChatOptions { Temperature = 0, MaxOutputTokens = 60 });
        Assert.That(Prompt + response.Text, Is.EqualTo(_reference));
        Assert.That(response.FinishReason, Is.EqualTo(ChatFinishReason.Length));
        Assert.That((response.Usage!.InputTokenCount, response.Usage.OutputTokenCount), Is.EqualTo((5L, 60L)));
        Assert.That(response.ModelId, Is.EqualTo("stories260K"));

        var attestation = chat.GetService<AscendCC.Runtime.Trusted.Verification.AttestationResult>();
        Assert.That(attestation, Is.Not.Null);
        Assert.That(attestation!.PolicySatisfied, Is.True, attestation.ToString());
        Assert.That(response.AdditionalProperties!["attestation"], Is.SameAs(attestation));
        Assert.That(chat.GetService<ChatClientMetadata>()!.ProviderName, Is.EqualTo("AscendCC"));

        // Everything the server received and sent for this chat: no prompt or reply text in it.
        byte[][] bodies = [.. _world.Recorder.Bodies.Skip(before)];
        Assert.That(bodies, Is.Not.Empty);
        foreach (string secret in new[] { Prompt, "little girl named Lily", response.Text[..20] })
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(secret);
            Assert.That(bodies.Any(b => b.AsSpan().IndexOf(utf8) >= 0), Is.False, $"'{secret}' in a body the host handled");
        }
    }

    [Test]
    public async Task A_streamed_reply_ends_at_a_stop_sequence_split_across_tokens()
    {
        using IChatClient chat = NewClient();
        var pieces = new List<string>();
        ChatFinishReason? finish = null;
        await foreach (ChatResponseUpdate update in chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, Prompt)],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 60, StopSequences = ["girl named"] }))
        {
            pieces.Add(update.Text);
            finish ??= update.FinishReason;
        }
        Assert.That(string.Concat(pieces), Is.EqualTo(", there was a little "));
        Assert.That(pieces.Count(p => p.Length > 0), Is.GreaterThan(1), "streamed as the tokens arrive, not in one piece");
        Assert.That(finish, Is.EqualTo(ChatFinishReason.Stop));
    }

    [Test]
    public async Task A_client_that_names_the_package_is_placed_on_the_npu_that_has_it()
    {
        // The client was given NPU 1, which has no model; with the package named, the host routes it to NPU 0.
        var npu1 = new RemoteNpu(_world!.Http, 1);
        ConfidentialChatClientOptions options = new()
        {
            RequiredModel = _world.Model.Manifest.ExpectedGraphMeasurement,
            StopTokenIds = _checkpoint!.Config.EosTokenIds,
            Package = "stories260K",
        };
        using IChatClient placed = new ConfidentialChatClient(npu1, _world.Verifier, _tokenizer, options);
        ChatResponse response = await placed.GetResponseAsync([new ChatMessage(ChatRole.User, Prompt)], new ChatOptions { Temperature = 0, MaxOutputTokens = 60 });
        Assert.That(Prompt + response.Text, Is.EqualTo(_reference));

        using IChatClient unplaced = new ConfidentialChatClient(npu1, _world.Verifier, _tokenizer, options with { Package = null });
        Assert.That(async () => await unplaced.GetResponseAsync([new ChatMessage(ChatRole.User, Prompt)], new ChatOptions { Temperature = 0, MaxOutputTokens = 8 }),
            Throws.InstanceOf<RemoteNpuException>().With.Property(nameof(RemoteNpuException.Detail)).Contains("no model is loaded on NPU 1"));
    }

    [Test]
    public void A_client_that_requires_no_model_is_refused_before_any_request()
    {
        // Without a required model the host could answer with a program of its own choosing (the
        // session would bind to whatever answered first); the client does not allow it.
        Assert.That(() => new ConfidentialChatClient(_world!.Npu, _world.Verifier, _tokenizer, new ConfidentialChatClientOptions { RequiredModel = ReadOnlyMemory<byte>.Empty }),
            Throws.ArgumentException.With.Message.Contains("set RequiredModel"));
    }

    [Test]
    public void A_client_that_requires_another_model_gets_no_answer()
    {
        using var chat = new ConfidentialChatClient(_world!.Npu, _world.Verifier, _tokenizer, new ConfidentialChatClientOptions
        {
            RequiredModel = System.Security.Cryptography.SHA384.HashData("another model"u8),
        });
        Assert.That(async () => await chat.GetResponseAsync([new ChatMessage(ChatRole.User, Prompt)], new ChatOptions { Temperature = 0, MaxOutputTokens = 8 }),
            Throws.InstanceOf<RemoteNpuException>().Or.InstanceOf<UnexpectedModelException>());
        Assert.That(chat.LastAttestation!.PolicySatisfied, Is.True, "the device itself is genuine; it refuses to answer with a model the client did not require");
    }
}
