using System.Reflection;
using System.Runtime.Loader;
using System.Text.RegularExpressions;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Tests;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Docs;

/// <summary>
/// The root README's quick start as a library user pastes it: the first ```csharp block is taken
/// from README.md itself (not a copy that can drift), its model path pointed at stories260K, compiled
/// as a console program with the SDK's implicit usings and nullable on, run, and its printed text
/// compared with llama2.c's reference story.
/// </summary>
public partial class ReadmeQuickStartTests
{
    private const string Placeholder = "\"path/to/hf-llama-folder\"";

    // What `dotnet new console` turns on: ImplicitUsings=enable adds these global usings.
    private const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    [Test]
    public void QuickStartPrintsTheReferenceStory()
    {
        string folder = TestData.RequireModel("stories260K");
        string quickStart = QuickStartFromReadme();
        Assert.That(quickStart, Does.Contain(Placeholder), "the quick start names its model folder as " + Placeholder);
        string program = quickStart.Replace(Placeholder, SymbolDisplay.FormatLiteral(folder, quote: true), StringComparison.Ordinal);

        string printed = Run(Compile(program));

        // llama2.c's -n 64 counts the prompt's positions (BOS + 4 tokens), so its reference text is the
        // prompt and 60 generated tokens, which is what the quick start asks for.
        string reference = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"));
        Assert.That(printed.Trim(), Is.EqualTo(reference.Trim()));
    }

    /// <summary>The first C# block of the root README.md.</summary>
    private static string QuickStartFromReadme()
    {
        string readme = File.ReadAllText(Path.Combine(TestData.RepoRoot, "README.md"));
        Match m = CSharpBlock().Match(readme);
        Assert.That(m.Success, "README.md has a ```csharp quick start");
        return m.Groups[1].Value;
    }

    private static byte[] Compile(string program)
    {
        // Everything the test host can load (the framework and the AscendCC assemblies) is what a
        // console project referencing the AscendCC.Runtime package compiles against.
        string trusted = (string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!;
        IEnumerable<string> paths = trusted.Split(Path.PathSeparator)
            .Concat([typeof(NpuRuntime).Assembly.Location, typeof(NpuDevice).Assembly.Location])
            .DistinctBy(Path.GetFileName, StringComparer.Ordinal);
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var compilation = CSharpCompilation.Create(
            "ReadmeQuickStart",
            [CSharpSyntaxTree.ParseText(ImplicitUsings, parse, "GlobalUsings.g.cs"), CSharpSyntaxTree.ParseText(program, parse, "Program.cs")],
            paths.Select(p => MetadataReference.CreateFromFile(p)),
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable)
                // The SDK's default NoWarn: assembly-version unification notes.
                .WithSpecificDiagnosticOptions([new("CS1701", ReportDiagnostic.Suppress), new("CS1702", ReportDiagnostic.Suppress)]));
        using var image = new MemoryStream();
        var result = compilation.Emit(image);
        // A user's project shows warnings too; the README should compile clean.
        Diagnostic[] problems = [.. result.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning)];
        Assert.That(result.Success && problems.Length == 0, "the quick start compiles without warnings:\n" + string.Join("\n", problems.Select(d => d.ToString())));
        return image.ToArray();
    }

    private static string Run(byte[] image)
    {
        var context = new AssemblyLoadContext("ReadmeQuickStart", isCollectible: true);
        TextWriter console = Console.Out;
        using var output = new StringWriter();
        try
        {
            Assembly assembly = context.LoadFromStream(new MemoryStream(image));
            MethodInfo main = assembly.EntryPoint!;
            Console.SetOut(output);
            main.Invoke(null, main.GetParameters().Length == 0 ? null : [Array.Empty<string>()]);
        }
        finally
        {
            Console.SetOut(console);
            context.Unload();
        }
        return output.ToString();
    }

    [GeneratedRegex("```csharp\\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();
}
