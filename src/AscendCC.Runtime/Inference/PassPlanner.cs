namespace AscendCC.Runtime.Inference;

/// <summary>A sequence as the pass planner sees it: reading its prompt or decoding, and where it stands.</summary>
internal interface IBatchMember
{
    /// <summary>True while its prompt is still being read.</summary>
    bool Reading { get; }

    /// <summary>Positions fed so far.</summary>
    int Position { get; }

    /// <summary>Tokens in its prompt.</summary>
    int PromptTokens { get; }
}

/// <summary>
/// What one batched pass feeds, for both batches (<see cref="CausalLMBatch"/>, <see cref="SealedBatch"/>):
/// one row for every decoding sequence first — what a waiting user feels — then the rows left over (up
/// to the pass's budget) as chunks of the prompts still being read, so a long prompt joining delays the
/// others' next token by at most one chunk.
/// </summary>
internal static class PassPlanner
{
    /// <summary>
    /// Fills <paramref name="fed"/> and <paramref name="lengths"/> with the pass's segments in order (each
    /// starts at its member's position); returns how many.
    /// </summary>
    public static int Plan<T>(T?[] slots, int budget, T[] fed, int[] lengths) where T : class, IBatchMember
    {
        int rows = 0, count = 0;
        foreach (T? s in slots)
        {
            if (s is { Reading: false } && rows < budget)
            {
                (fed[count], lengths[count]) = (s, 1);
                count++;
                rows++;
            }
        }
        foreach (T? s in slots)
        {
            if (s is { Reading: true } && rows < budget)
            {
                int n = Math.Min(budget - rows, s.PromptTokens - s.Position);
                (fed[count], lengths[count]) = (s, n);
                count++;
                rows += n;
            }
        }
        return count;
    }
}

/// <summary>A batch's slots: which member holds each KV-cache slot (null: free), for both batches.</summary>
internal sealed class SlotTable<T>(int capacity) where T : class
{
    /// <summary>The members by slot.</summary>
    public T?[] Items { get; } = new T?[capacity];

    /// <summary>Slots held.</summary>
    public int Count { get; private set; }

    /// <summary>A free slot, or −1.</summary>
    public int FreeSlot() => Array.IndexOf(Items, null);

    /// <summary>Gives <paramref name="slot"/> (free) to <paramref name="member"/>.</summary>
    public void Put(int slot, T member)
    {
        Items[slot] = member;
        Count++;
    }

    /// <summary>Frees <paramref name="slot"/> if <paramref name="member"/> holds it.</summary>
    public void Release(int slot, T member)
    {
        if (Items[slot] == member)
        {
            Items[slot] = null;
            Count--;
        }
    }
}
