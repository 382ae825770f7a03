using System.Globalization;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>llama2.c's greedy reference for one prompt: token ids and the logits after every position.</summary>
internal sealed record ReferenceOutputs(int[] PromptTokens, int[] GeneratedTokens, IReadOnlyList<ReferenceStep> Steps)
{
    /// <summary>Reads reference/&lt;name&gt;.tokens.txt and reference/&lt;name&gt;.logits.txt.</summary>
    public static ReferenceOutputs Load(string modelFolder, string name)
    {
        string folder = Path.Combine(modelFolder, "reference");
        int[]? prompt = null, generated = null;
        foreach (string line in File.ReadLines(Path.Combine(folder, name + ".tokens.txt")))
        {
            if (line.StartsWith("prompt_tokens ", StringComparison.Ordinal))
            {
                prompt = Ints(line["prompt_tokens ".Length..]);
            }
            else if (line.StartsWith("generated_tokens ", StringComparison.Ordinal))
            {
                generated = Ints(line["generated_tokens ".Length..]);
            }
        }
        var steps = new List<ReferenceStep>();
        ReferenceStep? current = null;
        var logits = new List<float>();
        foreach (string line in File.ReadLines(Path.Combine(folder, name + ".logits.txt")))
        {
            if (line.StartsWith('#') || line.Length == 0)
            {
                continue;
            }
            if (line.StartsWith("pos ", StringComparison.Ordinal))
            {
                Finish();
                // pos P token T next N forced F argmax A
                string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                current = new ReferenceStep(Int(f[1]), Int(f[3]), Int(f[5]), Int(f[7]) != 0, Int(f[9]), []);
                continue;
            }
            foreach (string v in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                logits.Add(float.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture));
            }
        }
        Finish();
        if (prompt is null || generated is null || steps.Count == 0)
        {
            throw new InvalidDataException($"Reference files for '{name}' in {folder} lack prompt_tokens, generated_tokens or logits.");
        }
        return new ReferenceOutputs(prompt, generated, steps);

        void Finish()
        {
            if (current is not null)
            {
                steps.Add(current with { Logits = logits.ToArray() });
                logits.Clear();
            }
        }
    }

    private static int Int(string s) => int.Parse(s, CultureInfo.InvariantCulture);

    private static int[] Ints(string s) => s.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(Int).ToArray();
}

/// <summary>One position: token fed, the next token, whether it was forced by the prompt, the argmax and the logits.</summary>
internal sealed record ReferenceStep(int Pos, int Token, int Next, bool Forced, int Argmax, float[] Logits);
