using System.Globalization;

namespace AscendCC.Runtime.Tests.GptNeo;

/// <summary>
/// The gptneo-shakespeare reference for one prompt (an independent float64 implementation): the prompt's
/// ids, every id after 64 greedy steps, and the logits that chose the last one.
/// </summary>
internal sealed record GptNeoReference(int[] PromptTokens, int[] AllTokens, float[] LastLogits)
{
    /// <summary>The two prompts the reference covers.</summary>
    public static readonly string[] Prompts = ["romeo", "first_citizen"];

    /// <summary>The ids generated after the prompt.</summary>
    public int[] GeneratedTokens => AllTokens[PromptTokens.Length..];

    /// <summary>Reads reference/&lt;name&gt;.tokens.txt and reference/&lt;name&gt;.last_logits.txt.</summary>
    public static GptNeoReference Load(string modelFolder, string name)
    {
        string folder = Path.Combine(modelFolder, "reference");
        int[]? prompt = null, all = null;
        foreach (string line in File.ReadLines(Path.Combine(folder, name + ".tokens.txt")))
        {
            if (line.StartsWith("prompt_tokens ", StringComparison.Ordinal))
            {
                prompt = Numbers(line["prompt_tokens ".Length..]).Select(v => (int)v).ToArray();
            }
            else if (line.StartsWith("all_tokens ", StringComparison.Ordinal))
            {
                all = Numbers(line["all_tokens ".Length..]).Select(v => (int)v).ToArray();
            }
        }
        float[] logits = File.ReadLines(Path.Combine(folder, name + ".last_logits.txt"))
            .Where(l => l.Length > 0 && !l.StartsWith('#')).SelectMany(Numbers).Select(v => (float)v).ToArray();
        if (prompt is null || all is null || logits.Length == 0)
        {
            throw new InvalidDataException($"Reference files for '{name}' in {folder} lack prompt_tokens, all_tokens or the last logits.");
        }
        return new GptNeoReference(prompt, all, logits);
    }

    private static IEnumerable<double> Numbers(string s) =>
        s.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(v => double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture));
}
