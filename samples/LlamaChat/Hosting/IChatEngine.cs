using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;

namespace LlamaChat.Hosting;

/// <summary>A loaded model the chat can ask for a continuation: confidential or not.</summary>
internal interface IChatEngine : IDisposable
{
    /// <summary>Longest context (prompt plus reply) in tokens.</summary>
    int MaxContext { get; }

    /// <summary>
    /// Continues <paramref name="context"/> with up to <paramref name="maxTokens"/> tokens, yielding each
    /// plaintext token as the party entitled to see it (the data owner, in CC mode) has it; stops after a stop token.
    /// </summary>
    IEnumerable<int> Generate(IReadOnlyList<int> context, int maxTokens, SamplingOptions sampling, IReadOnlyCollection<int> stopTokens);
}
