using NUnit.Framework;

namespace AscendCC.Tests;

/// <summary>Locates the shared test checkpoints (../shared/models beside the repository).</summary>
internal static class TestData
{
    /// <summary>The repository root: the folder holding AscendCC.Runtime.sln.</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>The shared models folder, or the ASCENDCC_MODELS environment variable when set.</summary>
    public static string ModelsRoot =>
        Environment.GetEnvironmentVariable("ASCENDCC_MODELS") is { Length: > 0 } env
            ? env
            : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "models"));

    /// <summary>Path of a shared model folder; marks the test Ignored with a clear message when absent.</summary>
    public static string RequireModel(string name)
    {
        string path = Path.Combine(ModelsRoot, name);
        if (!Directory.Exists(path))
        {
            Assert.Ignore($"Shared test model '{name}' not found at {path}. Place ../shared/models beside the repository or set ASCENDCC_MODELS.");
        }
        return path;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "AscendCC.Runtime.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("AscendCC.Runtime.sln not found above " + AppContext.BaseDirectory);
    }
}
