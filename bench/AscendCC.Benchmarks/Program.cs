namespace AscendCC.Benchmarks;

/// <summary>
/// Runs benchmark suites selected by name: <c>dotnet run -c Release --project bench/AscendCC.Benchmarks -- matmul</c>.
/// With no argument it lists the suites. Each suite prints a markdown table and writes it to
/// bench/results/&lt;suite&gt;.md so results can be diffed between commits.
/// </summary>
internal static class Program
{
    /// <summary>Every suite; add new ones here.</summary>
    private static readonly IBenchmarkSuite[] Suites =
    [
        new MatMulSuite(),
        new AttentionSuite(),
        new ConfidentialSuite(),
        new LlamaSuite(),
        new CcOverheadSuite(),
        new CcOverheadSuite("ccoverhead-gptneo", "GPT-Neo 125M bf16 (no TorchSharp baseline)", ModelShape.GptNeo125M, torchBaseline: false),
        new DemoSuite(),
        new DecodeStepsSuite(),
        new SamplingSuite(),
        new ServeSuite(),
        new QuantizedSuite(),
        new BatchSuite(),
        new BatchLlamaCppSuite(),
        new LlamaCppSuite(),
        new LlamaCppSuite(LlamaCppSuite.Shapes.Qwen3),
        new LlamaCppSuite(LlamaCppSuite.Shapes.Llama8B),
        new KvCacheLlamaCppSuite(),
        new DecodeGemvSuite(),
    ];

    private static int Main(string[] args)
    {
        if (args.Length == 0 || args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine("usage: AscendCC.Benchmarks <suite>... | all   [--quick] [--filter <case substring>[|<another>...]]");
            foreach (IBenchmarkSuite suite in Suites)
            {
                Console.WriteLine($"  {suite.Name,-12} {suite.Description}");
            }
            return args.Length == 0 ? 1 : 0;
        }
        int filterAt = Array.IndexOf(args, "--filter");
        string? filter = filterAt >= 0 && filterAt + 1 < args.Length ? args[filterAt + 1] : null;
        var options = new BenchmarkOptions(Quick: args.Contains("--quick"), filter);
        string[] names = [.. args.Where((a, i) => !a.StartsWith('-') && (filterAt < 0 || i != filterAt + 1))];
        IEnumerable<IBenchmarkSuite> selected = names.Contains("all")
            ? Suites
            : names.Select(n => Suites.FirstOrDefault(s => string.Equals(s.Name, n, StringComparison.OrdinalIgnoreCase))
                ?? throw new ArgumentException($"Unknown suite '{n}'. Known: {string.Join(", ", Suites.Select(s => s.Name))}"));
        foreach (IBenchmarkSuite suite in selected)
        {
            var table = new ResultTable();
            Console.WriteLine($"## {suite.Name}: {suite.Description}");
            Console.WriteLine();
            suite.Run(options, table);
            string markdown = suite is IReportingSuite reporting ? reporting.Report : table.ToMarkdown(suite.Name, suite.Description);
            Console.WriteLine();
            Console.WriteLine(markdown);
            string fileName = suite is IReportingSuite r ? r.ReportFileName : suite.Name.ToLowerInvariant() + ".md";
            string path = Path.Combine(ResultTable.ResultsDirectory(), fileName);
            // A filtered run is a probe, not a result worth keeping; an empty report is a skipped suite,
            // which must not overwrite the last real result.
            if (filter is null && markdown.Length > 0)
            {
                File.WriteAllText(path, markdown);
                Console.WriteLine($"written to {path}");
            }
        }
        return 0;
    }
}
