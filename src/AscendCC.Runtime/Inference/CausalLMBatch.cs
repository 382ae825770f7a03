using System.Runtime.CompilerServices;

namespace AscendCC.Runtime.Inference;

/// <summary>
/// Continuous batching over one model (CC off): up to <see cref="CausalLM.MaxSequences"/> sequences,
/// each in its own KV-cache slot at its own position, decoded together — every <see cref="Step"/> is
/// one forward pass whose matrices are read once for all of them. Sequences join
/// (<see cref="Add"/>) and leave (when done, or <see cref="Remove"/>) between steps. A step feeds one
/// row per decoding sequence first, then fills the pass's remaining rows (up to
/// <see cref="CausalLM.MaxBatchTokens"/>) with chunks of the prompts still being read, so a long
/// prompt joining delays the others' next token by at most one chunk.
/// </summary>
/// <remarks>Not thread-safe: one loop drives it, as one loop drives a device stream.</remarks>
public sealed class CausalLMBatch
{
    private readonly CausalLM _model;
    private readonly SlotTable<BatchSequence> _slots;
    private readonly int[] _tokens;
    private readonly int[] _segments;
    private readonly int[] _next;
    private readonly BatchSequence[] _fed;
    private readonly int[] _lengths;
    private readonly List<BatchToken> _produced = [];

    internal CausalLMBatch(CausalLM model)
    {
        _model = model;
        int slots = model.MaxSequences;
        _slots = new SlotTable<BatchSequence>(slots);
        _tokens = new int[model.MaxBatchTokens];
        _segments = new int[slots * 3];
        _next = new int[slots];
        _fed = new BatchSequence[slots];
        _lengths = new int[slots];
    }

    /// <summary>Sequences the batch can hold.</summary>
    public int Capacity => _slots.Items.Length;

    /// <summary>Sequences in the batch (reading their prompt or decoding).</summary>
    public int Count => _slots.Count;

    /// <summary>
    /// Adds a sequence that generates up to <paramref name="maxTokens"/> tokens after
    /// <paramref name="prompt"/>; it starts reading its prompt at the next <see cref="Step"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Every slot is taken: step until a sequence finishes, or remove one.</exception>
    public BatchSequence Add(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions? sampling = null, IReadOnlyCollection<int>? stopTokens = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the prompt needs at least one token", nameof(prompt));
        }
        if (prompt.Count > _model.MaxContext)
        {
            throw new ArgumentException($"the prompt has {prompt.Count} tokens but the context holds {_model.MaxContext}; shorten it", nameof(prompt));
        }
        foreach (int t in prompt)
        {
            if ((uint)t >= (uint)_model.Config.VocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(prompt), $"token id {t} is outside the vocabulary of {_model.Config.VocabSize}");
            }
        }
        sampling ??= SamplingOptions.Greedy;
        sampling.Validate();
        int slot = _slots.FreeSlot();
        if (slot < 0)
        {
            throw new InvalidOperationException($"all {Capacity} sequences of the batch are in use; step until one finishes (or remove one), or load the model with a larger CausalLMOptions.MaxSequences");
        }
        // Each sequence starts its generator afresh, so a seed names one reproducible sample, as in CausalLM.Generate.
        _model.PrepareSlot(slot, sampling);
        var sequence = new BatchSequence(this, slot, prompt.ToArray(), maxTokens, stopTokens ?? _model.Config.EosTokenIds);
        _slots.Put(slot, sequence);
        return sequence;
    }

    /// <summary>Takes <paramref name="sequence"/> out of the batch (finished or not) and frees its slot.</summary>
    public void Remove(BatchSequence sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        if (sequence.Batch != this)
        {
            throw new ArgumentException("the sequence belongs to another batch", nameof(sequence));
        }
        _slots.Release(sequence.Slot, sequence);
        sequence.Finish(sequence.FinishReason ?? BatchFinishReason.Removed);
    }

    /// <summary>
    /// One forward pass over every sequence in the batch: returns the tokens it produced, one per
    /// sequence that decoded or finished reading its prompt (valid until the next step). Sequences
    /// that are done (a stop token, their token budget, a full context) leave the batch here.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public IReadOnlyList<BatchToken> Step()
    {
        _produced.Clear();
        int count = PassPlanner.Plan(_slots.Items, _tokens.Length, _fed, _lengths), rows = 0;
        for (int i = 0; i < count; i++)
        {
            BatchSequence s = _fed[i];
            int n = _lengths[i];
            // A decode row feeds back the last token; a prompt chunk the prompt's next tokens.
            if (s.Reading)
            {
                s.Prompt.AsSpan(s.Position, n).CopyTo(_tokens.AsSpan(rows));
            }
            else
            {
                _tokens[rows] = s.Last;
            }
            (_segments[i * 3], _segments[i * 3 + 1], _segments[i * 3 + 2]) = (s.Slot, s.Position, n);
            rows += n;
        }
        if (count == 0)
        {
            return _produced;
        }
        _model.ForwardSegments(_tokens.AsSpan(0, rows), _segments.AsSpan(0, count * 3), _next);
        for (int i = 0; i < count; i++)
        {
            BatchSequence s = _fed[i];
            s.Position += _segments[i * 3 + 2];
            if (s.Reading && s.Position < s.Prompt.Length)
            {
                // A prompt chunk short of the end: its sampled token is not an answer.
                continue;
            }
            s.Reading = false;
            int token = _next[s.Slot];
            s.Accept(token);
            _produced.Add(new BatchToken(s, token));
            BatchFinishReason? done = s.Produced >= s.MaxTokens ? BatchFinishReason.Length
                : s.StopTokens.Contains(token) ? BatchFinishReason.Stop
                : s.Position >= _model.MaxContext ? BatchFinishReason.ContextFull
                : null;
            if (done is { } reason)
            {
                _slots.Release(s.Slot, s);
                s.Finish(reason);
            }
        }
        return _produced;
    }

    /// <summary>The logits that chose the token of the last step's <paramref name="index"/>-th produced entry (for checks against a reference).</summary>
    public float[] ReadLogits(int index)
    {
        if ((uint)index >= (uint)_produced.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the last step produced {_produced.Count} tokens");
        }
        return _model.ReadLogits(Array.IndexOf(_fed, _produced[index].Sequence));
    }

}

/// <summary>One sequence of a <see cref="CausalLMBatch"/>.</summary>
public sealed class BatchSequence : IBatchMember
{
    private readonly List<int> _tokens = [];

    internal BatchSequence(CausalLMBatch batch, int slot, int[] prompt, int maxTokens, IReadOnlyCollection<int> stopTokens)
    {
        Batch = batch;
        Slot = slot;
        Prompt = prompt;
        MaxTokens = maxTokens;
        StopTokens = stopTokens;
    }

    internal CausalLMBatch Batch { get; }

    /// <summary>The KV-cache slot it occupies while in the batch.</summary>
    public int Slot { get; }

    /// <summary>Its prompt.</summary>
    internal int[] Prompt { get; }

    /// <inheritdoc />
    public int PromptTokens => Prompt.Length;

    internal int MaxTokens { get; }

    internal IReadOnlyCollection<int> StopTokens { get; }

    /// <summary>True while its prompt is still being read.</summary>
    public bool Reading { get; internal set; } = true;

    /// <summary>Positions in its KV cache so far (prompt and fed-back tokens).</summary>
    public int Position { get; internal set; }

    /// <summary>The last token it produced.</summary>
    internal int Last { get; private set; }

    /// <summary>Tokens produced so far.</summary>
    public int Produced => _tokens.Count;

    /// <summary>The tokens produced so far, in order.</summary>
    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>Why it left the batch; null while it is in it.</summary>
    public BatchFinishReason? FinishReason { get; private set; }

    /// <summary>True once it has left the batch.</summary>
    public bool IsFinished => FinishReason is not null;

    internal void Accept(int token)
    {
        Last = token;
        _tokens.Add(token);
    }

    internal void Finish(BatchFinishReason reason) => FinishReason ??= reason;
}

/// <summary>A token a batch step produced, and the sequence it belongs to.</summary>
/// <param name="Sequence">The sequence.</param>
/// <param name="Token">The token id.</param>
public readonly record struct BatchToken(BatchSequence Sequence, int Token);

/// <summary>Why a sequence left its batch.</summary>
public enum BatchFinishReason
{
    /// <summary>It produced the tokens it was allowed.</summary>
    Length,
    /// <summary>It produced a stop token (which is its last token).</summary>
    Stop,
    /// <summary>Its KV cache slot is full.</summary>
    ContextFull,
    /// <summary>It was removed before it finished.</summary>
    Removed,
}
