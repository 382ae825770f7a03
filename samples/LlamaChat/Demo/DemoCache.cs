using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;

namespace LlamaChat.Demo;

/// <summary>
/// The demo model's cache folder, trusted only as far as it checks out: every file the build wrote is
/// listed with its SHA-256 in <see cref="ManifestFile"/>, written last; a folder whose manifest is
/// missing, names a missing file or a file whose bytes changed is rebuilt, and the reason is reported.
/// Builds happen in a private staging folder renamed into place at the end; staging folders that a
/// dead process left behind are removed.
/// </summary>
internal static class DemoCache
{
    /// <summary>The manifest: one "sha256-hex  file-name" line per file.</summary>
    public const string ManifestFile = "cache.sha256";

    /// <summary>The cached folder <paramref name="key"/> under <paramref name="root"/>, built by <paramref name="build"/> when absent, failing its check, or <paramref name="rebuild"/> is set.</summary>
    /// <returns>The folder, whether it came from the cache, and why it was (re)built when it was not fresh.</returns>
    public static (string Folder, bool FromCache, string? RebuiltBecause) GetOrBuild(string root, string key, bool rebuild, Action<string> build)
    {
        ArgumentNullException.ThrowIfNull(build);
        string folder = Path.Combine(root, key);
        Directory.CreateDirectory(root);
        RemoveStaleStaging(root, key);
        string? reason = rebuild ? "--rebuild-demo was given" : Directory.Exists(folder) ? Verify(folder) : null;
        if (reason is null && Directory.Exists(folder))
        {
            return (folder, true, null);
        }
        string staging = Path.Combine(root, $"{key}.tmp-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}");
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
        Directory.CreateDirectory(staging);
        try
        {
            build(staging);
            Seal(staging);
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
            Directory.Move(staging, folder);
            return (folder, false, reason);
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }

    /// <summary>Null when <paramref name="folder"/> holds exactly what its manifest lists; otherwise what is wrong.</summary>
    public static string? Verify(string folder)
    {
        string manifest = Path.Combine(folder, ManifestFile);
        if (!File.Exists(manifest))
        {
            return $"it has no {ManifestFile} (an interrupted or older build)";
        }
        string[] lines = File.ReadAllLines(manifest).Where(l => l.Length > 0).ToArray();
        if (lines.Length == 0)
        {
            return $"its {ManifestFile} is empty";
        }
        foreach (string line in lines)
        {
            int split = line.IndexOf("  ", StringComparison.Ordinal);
            if (split != 64)
            {
                return $"its {ManifestFile} is malformed";
            }
            string name = line[(split + 2)..], path = Path.Combine(folder, name);
            if (name.Contains('/', StringComparison.Ordinal) || name.Contains('\\', StringComparison.Ordinal) || !File.Exists(path))
            {
                return $"{name} is missing";
            }
            if (!string.Equals(Hash(path), line[..split], StringComparison.Ordinal))
            {
                return $"{name} does not match the SHA-256 recorded when it was written";
            }
        }
        return null;
    }

    private static void Seal(string folder)
    {
        string[] lines = [.. Directory.GetFiles(folder).Select(Path.GetFileName).Where(n => n != ManifestFile).Order(StringComparer.Ordinal)
            .Select(n => $"{Hash(Path.Combine(folder, n!))}  {n}")];
        File.WriteAllLines(Path.Combine(folder, ManifestFile), lines);
    }

    private static string Hash(string path)
    {
        using FileStream file = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(file));
    }

    /// <summary>Removes <c>key.tmp-PID</c> folders whose process is gone (an interrupted build).</summary>
    private static void RemoveStaleStaging(string root, string key)
    {
        foreach (string staging in Directory.GetDirectories(root, key + ".tmp-*"))
        {
            string pid = staging[(staging.LastIndexOf(".tmp-", StringComparison.Ordinal) + 5)..];
            if (!int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out int id) || id == Environment.ProcessId || IsRunning(id))
            {
                continue;
            }
            try
            {
                Directory.Delete(staging, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static bool IsRunning(int id)
    {
        try
        {
            using var process = Process.GetProcessById(id);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
