using System.Globalization;

namespace AscendCC.Benchmarks;

/// <summary>
/// Configurations measured round by round, every configuration once a round in an order that
/// rotates by one each round, with a short pause before each: the machine's speed drifts by tens of
/// percent over minutes, so comparisons are made within a round.
/// </summary>
internal static class RotatingRounds
{
    /// <summary>
    /// Runs <paramref name="rounds"/> rounds of <paramref name="names"/>; <paramref name="measure"/>
    /// returns a configuration's median step in ms, of <paramref name="sequences"/>(name) tokens.
    /// Returns each configuration's step ms per round, and each round's tokens/s by configuration.
    /// </summary>
    public static (Dictionary<string, List<double>> StepMs, List<Dictionary<string, double>> TokensPerSecond) Run(
        string[] names, int rounds, Func<string, int> sequences, Func<string, double> measure)
    {
        var stepMs = names.ToDictionary(n => n, _ => new List<double>());
        var perRound = new List<Dictionary<string, double>>();
        for (int round = 0; round < rounds; round++)
        {
            var tokensPerSecond = new Dictionary<string, double>();
            for (int k = 0; k < names.Length; k++)
            {
                string name = names[(k + round) % names.Length];
                Thread.Sleep(200);
                double ms = measure(name);
                stepMs[name].Add(ms);
                tokensPerSecond[name] = sequences(name) * 1000 / ms;
            }
            perRound.Add(tokensPerSecond);
            Console.WriteLine($"  round {round + 1}/{rounds}: " + string.Join(", ", names.Select(n => string.Create(CultureInfo.InvariantCulture, $"{n} {stepMs[n][^1]:F1} ms"))));
        }
        return (stepMs, perRound);
    }
}
