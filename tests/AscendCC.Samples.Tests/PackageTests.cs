using System.Diagnostics;
using System.Text.RegularExpressions;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Samples.Tests;

/// <summary>
/// The NuGet packages as a new user meets them: pack, create a console project, `dotnet add package
/// AscendCC.Runtime` from the packed folder, paste the README's quick start, build and run it.
/// </summary>
[Category("Package")]
public partial class PackageTests
{
    private static readonly string[] Packed = ["AscendCC.Protocol", "AscendCC.Device", "AscendCC.Runtime", "AscendCC.TorchSharpBackend"];

    [Test]
    [CancelAfter(240_000)]
    public void ReadmeQuickStartRunsFromThePackedPackages()
    {
        string configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
        string work = Directory.CreateTempSubdirectory("ascendcc-package-").FullName;
        try
        {
            string feed = Path.Combine(work, "feed");
            foreach (string project in Packed)
            {
                Dotnet(TestData.RepoRoot, "pack", Path.Combine("src", project, $"{project}.csproj"), "-c", configuration, "-o", feed, "--nologo");
            }
            foreach (string project in Packed)
            {
                Assert.That(File.Exists(Path.Combine(feed, $"{project}.0.1.0.nupkg")), $"{project}.0.1.0.nupkg");
                Assert.That(File.Exists(Path.Combine(feed, $"{project}.0.1.0.snupkg")), $"{project}.0.1.0.snupkg");
            }
            using (var zip = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, "AscendCC.TorchSharpBackend.0.1.0.nupkg")))
            {
                Assert.That(zip.Entries.Select(e => e.FullName), Does.Contain("buildTransitive/AscendCC.TorchSharpBackend.targets").And.Contain("README.md"));
            }
            using (var zip = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, "AscendCC.Runtime.0.1.0.nupkg")))
            {
                Assert.That(zip.Entries.Select(e => e.FullName), Does.Contain("lib/net10.0/AscendCC.Runtime.xml").And.Contain("README.md"));
                using var nuspec = new StreamReader(zip.Entries.First(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open());
                string text = nuspec.ReadToEnd();
                Assert.That(text, Does.Contain("<license type=\"expression\">MIT</license>").And.Contain("AscendCC.Device").And.Contain("AscendCC.Protocol"));
            }

            // A consumer with its own package folder, so nothing from this run lands in (or is read
            // stale from) the user's global cache; already-downloaded dependencies come from that
            // cache as a read-only fallback folder, the rest from the default feed (nuget.org, kept
            // from the user's configuration) beside the packed folder.
            string app = Path.Combine(work, "QuickStart");
            string globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } g ? g : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            Dotnet(work, "new", "console", "-o", app, "--no-restore", "--force");
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <config><add key="globalPackagesFolder" value="{Path.Combine(work, "packages")}" /></config>
                  <packageSources><add key="packed" value="{feed}" /></packageSources>
                  <fallbackPackageFolders><add key="user" value="{globalPackages}" /></fallbackPackageFolders>
                </configuration>
                """);
            Dotnet(app, "add", "package", "AscendCC.Runtime", "--source", feed);
            File.WriteAllText(Path.Combine(app, "Program.cs"), QuickStartFromReadme());
            string output = Dotnet(app, "run", "-c", "Release");
            Assert.That(output.Trim(), Does.EndWith("11 22 33"));
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The first C# block of nuget/README.md: the test runs what the README shows, not a copy of it.</summary>
    private static string QuickStartFromReadme()
    {
        string readme = File.ReadAllText(Path.Combine(TestData.RepoRoot, "nuget", "README.md"));
        Match m = CSharpBlock().Match(readme);
        Assert.That(m.Success, "nuget/README.md has a ```csharp quick start");
        return m.Groups[1].Value;
    }

    [GeneratedRegex("```csharp\\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();

    private static string Dotnet(string workingDirectory, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in args)
        {
            start.ArgumentList.Add(a);
        }
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        // The test host's MSBuild variables would leak into the child builds.
        start.Environment.Remove("MSBuildExtensionsPath");
        start.Environment.Remove("MSBuildSDKsPath");
        start.Environment.Remove("MSBUILD_EXE_PATH");
        using var process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        string output = stdout.Result;
        Assert.That(process.ExitCode, Is.EqualTo(0), $"dotnet {string.Join(' ', args)} failed:\n{output}\n{stderr.Result}");
        return output;
    }
}
