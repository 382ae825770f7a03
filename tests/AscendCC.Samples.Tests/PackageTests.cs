using System.Collections.Immutable;
using System.Diagnostics;
using System.IO.Compression;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text.RegularExpressions;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Samples.Tests;

/// <summary>
/// The NuGet packages as a new user meets them: the documented `dotnet pack AscendCC.Runtime.sln`
/// writes them to nuget/, a second pack of freshly compiled assemblies holds the same bytes, no
/// machine path is baked into an assembly or its symbols, and a new console project that adds
/// AscendCC.Runtime from nuget/ builds and runs nuget/README.md's quick start.
/// </summary>
[Category("Package")]
public partial class PackageTests
{
    private static readonly string[] Packed = ["AscendCC.Protocol", "AscendCC.Device", "AscendCC.Runtime", "AscendCC.TorchSharpBackend", "AscendCC.Client"];

    // Each child gets its own limit (a hung restore or build is killed and named); the whole test has
    // CancelAfter's, which the child processes honour too.
    private static readonly TimeSpan PackTimeout = TimeSpan.FromMinutes(4);
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(2);

    [Test]
    [CancelAfter(600_000)]
    public void PackingTheSolutionGivesDeterministicPackagesThatAFreshConsoleProjectRuns()
    {
        // The README documents -c Release, which is what CI runs; a Debug test run packs Debug so that
        // it builds on what is already built instead of compiling everything again.
        string configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
        string feed = Path.Combine(TestData.RepoRoot, "nuget");
        string work = Directory.CreateTempSubdirectory("ascendcc-package-").FullName;
        try
        {
            // The documented command, into the repository's nuget/ (PackageOutputPath): that is where
            // users find the packages, and *.nupkg there is ignored by git.
            // Packages from an earlier pack go first (an unchanged project is not packed again), so
            // what is there afterwards is what this command wrote.
            string[] packages = [.. Packed.SelectMany(p => new[] { $"{p}.0.1.0.nupkg", $"{p}.0.1.0.snupkg" }).Select(f => Path.Combine(feed, f))];
            foreach (string file in packages)
            {
                File.Delete(file);
            }
            Dotnet(TestData.RepoRoot, PackTimeout, "pack", "AscendCC.Runtime.sln", "-c", configuration, "--nologo");
            Assert.That(packages, Has.All.Matches<string>(File.Exists), "the pack writes every package and symbol package to nuget/");
            Assert.That(Directory.GetFiles(feed, "*.nupkg").Select(Path.GetFileName), Is.EquivalentTo(Packed.Select(p => $"{p}.0.1.0.nupkg")), "only the packable projects are packed");
            CheckContents(feed);
            Dictionary<string, byte[]> first = PackedBinaries(feed);

            // Pack again from freshly compiled assemblies: deleting the intermediate assembly makes
            // each project compile again, in the same folders, with the same inputs.
            foreach (string project in Packed)
            {
                string intermediate = Path.Combine(TestData.RepoRoot, "src", project, "obj", configuration, "net10.0", project + ".dll");
                Assert.That(File.Exists(intermediate), intermediate);
                File.Delete(intermediate);
            }
            string again = Path.Combine(work, "again");
            Dotnet(TestData.RepoRoot, PackTimeout, "pack", "AscendCC.Runtime.sln", "-c", configuration, "--nologo", $"-p:PackageOutputPath={again}{Path.DirectorySeparatorChar}");
            foreach (string project in Packed)
            {
                Assert.That(File.Exists(Path.Combine(TestData.RepoRoot, "src", project, "obj", configuration, "net10.0", project + ".dll")), $"{project} compiled again");
            }
            Dictionary<string, byte[]> second = PackedBinaries(again);
            Assert.That(second.Keys, Is.EquivalentTo(first.Keys));
            Assert.Multiple(() =>
            {
                foreach ((string name, byte[] bytes) in first)
                {
                    Assert.That(second[name].SequenceEqual(bytes), $"{name} is byte-identical in both packs");
                }
            });
            CheckNoMachinePaths(first);

            // A consumer with its own package folder, so nothing from this run lands in (or is read
            // stale from) the user's global cache; already-downloaded dependencies come from that
            // cache as a read-only fallback folder, the rest from the default feed (nuget.org, kept
            // from the user's configuration) beside nuget/.
            string app = Path.Combine(work, "QuickStart");
            string globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } g ? g : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            Dotnet(work, StepTimeout, "new", "console", "-o", app, "--no-restore", "--force");
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <config><add key="globalPackagesFolder" value="{Path.Combine(work, "packages")}" /></config>
                  <packageSources><add key="packed" value="{feed}" /></packageSources>
                  <fallbackPackageFolders><add key="user" value="{globalPackages}" /></fallbackPackageFolders>
                </configuration>
                """);
            Dotnet(app, StepTimeout, "add", "package", "AscendCC.Runtime", "--source", feed);
            File.WriteAllText(Path.Combine(app, "Program.cs"), QuickStartFromReadme());
            string output = Dotnet(app, StepTimeout, "run", "-c", "Release");
            Assert.That(output.Trim(), Does.EndWith("11 22 33"));
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    [Test]
    public void AChildProcessThatOverrunsItsLimitIsKilledAndNamed()
    {
        var ex = Assert.Throws<TimeoutException>(() => RunProcess("sleep", Path.GetTempPath(), TimeSpan.FromSeconds(1), "600"))!;
        Assert.That(ex.Message, Does.Contain("sleep 600").And.Contain("killed"));
        int pid = (int)ex.Data["pid"]!;
        Assert.That(Process.GetProcesses().Select(p => p.Id), Does.Not.Contain(pid), "the child was killed, not left running");
    }

    private static void CheckContents(string feed)
    {
        using (var zip = ZipFile.OpenRead(Path.Combine(feed, "AscendCC.TorchSharpBackend.0.1.0.nupkg")))
        {
            Assert.That(zip.Entries.Select(e => e.FullName), Does.Contain("buildTransitive/AscendCC.TorchSharpBackend.targets").And.Contain("README.md"));
        }
        using (var zip = ZipFile.OpenRead(Path.Combine(feed, "AscendCC.Runtime.0.1.0.nupkg")))
        {
            Assert.That(zip.Entries.Select(e => e.FullName), Does.Contain("lib/net10.0/AscendCC.Runtime.xml").And.Contain("README.md"));
            using var nuspec = new StreamReader(zip.Entries.First(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open());
            string text = nuspec.ReadToEnd();
            Assert.That(text, Does.Contain("<license type=\"expression\">MIT</license>").And.Contain("AscendCC.Device").And.Contain("AscendCC.Protocol"));
        }
    }

    /// <summary>Every assembly (.nupkg) and symbol file (.snupkg) in <paramref name="folder"/>'s packages, by package and entry.</summary>
    private static Dictionary<string, byte[]> PackedBinaries(string folder)
    {
        var binaries = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (string project in Packed)
        {
            foreach (string extension in new[] { "nupkg", "snupkg" })
            {
                string package = $"{project}.0.1.0.{extension}";
                using var zip = ZipFile.OpenRead(Path.Combine(folder, package));
                foreach (ZipArchiveEntry entry in zip.Entries.Where(e => e.FullName.EndsWith(".dll", StringComparison.Ordinal) || e.FullName.EndsWith(".pdb", StringComparison.Ordinal)))
                {
                    using var stream = entry.Open();
                    using var bytes = new MemoryStream();
                    stream.CopyTo(bytes);
                    binaries[$"{package}/{entry.FullName}"] = bytes.ToArray();
                }
            }
            Assert.That(binaries.Keys, Has.Some.EndsWith($"/{project}.dll").And.Some.EndsWith($"/{project}.pdb"), project);
        }
        return binaries;
    }

    /// <summary>Source documents in the PDBs and the PDB path in each assembly are mapped (/_/...), never this machine's folders.</summary>
    private static void CheckNoMachinePaths(Dictionary<string, byte[]> binaries)
    {
        string root = TestData.RepoRoot.TrimEnd(Path.DirectorySeparatorChar);
        Assert.Multiple(() =>
        {
            foreach ((string name, byte[] bytes) in binaries)
            {
                var paths = new List<string>();
                if (name.EndsWith(".pdb", StringComparison.Ordinal))
                {
                    using var provider = MetadataReaderProvider.FromPortablePdbImage(ImmutableArray.Create(bytes));
                    MetadataReader pdb = provider.GetMetadataReader();
                    paths.AddRange(pdb.Documents.Select(d => pdb.GetString(pdb.GetDocument(d).Name)));
                }
                else
                {
                    using var pe = new PEReader(ImmutableArray.Create(bytes));
                    paths.AddRange(pe.ReadDebugDirectory().Where(e => e.Type == DebugDirectoryEntryType.CodeView).Select(e => pe.ReadCodeViewDebugDirectoryData(e).Path));
                }
                Assert.That(paths, Is.Not.Empty, name);
                Assert.That(paths, Has.All.StartsWith("/_/").And.None.Contains(root), name);
            }
        });
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

    private static string Dotnet(string workingDirectory, TimeSpan timeout, params string[] args) =>
        RunProcess("dotnet", workingDirectory, timeout, args);

    /// <summary>
    /// Runs a child process to completion and returns its standard output; fails with its output when
    /// it exits non-zero, and kills it (with its children) and throws <see cref="TimeoutException"/>
    /// when it outlives <paramref name="timeout"/> or the test is cancelled.
    /// </summary>
    private static string RunProcess(string fileName, string workingDirectory, TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo(fileName)
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
        // No MSBuild nodes or build servers that outlive the command: they would hold the output
        // pipes open after a kill, and keep running after the test.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        // The test host's MSBuild variables would leak into the child builds.
        start.Environment.Remove("MSBuildExtensionsPath");
        start.Environment.Remove("MSBuildSDKsPath");
        start.Environment.Remove("MSBUILD_EXE_PATH");
        string command = $"{fileName} {string.Join(' ', args)}";
        using var process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(TestContext.CurrentContext.CancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            process.WaitForExitAsync(limit.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            string why = TestContext.CurrentContext.CancellationToken.IsCancellationRequested ? "the test's time ran out" : $"it did not finish within {timeout.TotalSeconds:F0} s";
            var timedOut = new TimeoutException($"`{command}` (in {workingDirectory}) was killed: {why}. Output so far:\n{Finished(stdout)}\n{Finished(stderr)}");
            timedOut.Data["pid"] = process.Id;
            throw timedOut;
        }
        string output = stdout.GetAwaiter().GetResult();
        Assert.That(process.ExitCode, Is.EqualTo(0), $"`{command}` failed:\n{output}\n{stderr.GetAwaiter().GetResult()}");
        return output;
    }

    // After a kill a grandchild may still hold the pipe; take what has arrived rather than wait on it.
    private static string Finished(Task<string> read) => read.Wait(TimeSpan.FromSeconds(5)) ? read.Result : "(output still open)";
}
