using LlamaChat.Demo;
using NUnit.Framework;

namespace AscendCC.Samples.Tests;

/// <summary>The demo model's cache: used only when every file checks out, rebuilt (saying why) otherwise.</summary>
public class DemoCacheTests
{
    private string _root = null!;
    private int _builds;

    [SetUp]
    public void CreateRoot()
    {
        _root = Directory.CreateTempSubdirectory("llamachat-cache-").FullName;
        _builds = 0;
    }

    [TearDown]
    public void RemoveRoot() => Directory.Delete(_root, recursive: true);

    private (string Folder, bool FromCache, string? Reason) Get(bool rebuild = false) => DemoCache.GetOrBuild(_root, "abc123", rebuild, folder =>
    {
        _builds++;
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), [.. Enumerable.Range(0, 4096).Select(i => (byte)i)]);
        File.WriteAllText(Path.Combine(folder, "config.json"), "{\"build\": " + _builds + "}");
    });

    [Test]
    public void AnIntactCacheIsReusedAndAnAbsentOneBuilt()
    {
        var first = Get();
        Assert.That((first.FromCache, first.Reason, _builds), Is.EqualTo((false, (string?)null, 1)));
        Assert.That(File.ReadAllText(Path.Combine(first.Folder, DemoCache.ManifestFile)), Does.Contain("  model.safetensors").And.Contain("  config.json"));
        var second = Get();
        Assert.That((second.FromCache, second.Reason, _builds), Is.EqualTo((true, (string?)null, 1)));
    }

    [TestCase("flip", "model.safetensors does not match the SHA-256 recorded when it was written")]
    [TestCase("truncate", "model.safetensors does not match the SHA-256")]
    [TestCase("delete", "model.safetensors is missing")]
    [TestCase("manifest", "it has no cache.sha256")]
    public void ACorruptedCacheIsRebuiltSayingWhy(string damage, string reason)
    {
        string folder = Get().Folder;
        string model = Path.Combine(folder, "model.safetensors");
        switch (damage)
        {
            case "flip":
                byte[] bytes = File.ReadAllBytes(model);
                bytes[1000] ^= 0x5A;
                File.WriteAllBytes(model, bytes);
                break;
            case "truncate":
                File.WriteAllBytes(model, File.ReadAllBytes(model)[..100]);
                break;
            case "delete":
                File.Delete(model);
                break;
            default:
                File.Delete(Path.Combine(folder, DemoCache.ManifestFile));
                break;
        }
        var again = Get();
        Assert.That(again.FromCache, Is.False);
        Assert.That(again.Reason, Does.Contain(reason));
        Assert.That(_builds, Is.EqualTo(2));
        Assert.That(DemoCache.Verify(again.Folder), Is.Null, "the rebuilt cache checks out");
    }

    [Test]
    public void ARebuildCanBeForcedAndADeadBuildsStagingIsRemoved()
    {
        Get();
        // A staging folder of a process that no longer exists (pid 2^22 + 1 is above Linux's pid_max default).
        string stale = Path.Combine(_root, "abc123.tmp-4194305");
        Directory.CreateDirectory(stale);
        File.WriteAllText(Path.Combine(stale, "half-written"), "x");
        var forced = Get(rebuild: true);
        Assert.That((forced.FromCache, forced.Reason), Is.EqualTo((false, "--rebuild-demo was given")));
        Assert.That(Directory.Exists(stale), Is.False, "an interrupted build's folder is cleaned up");
        Assert.That(Directory.GetDirectories(_root), Is.EqualTo(new[] { forced.Folder }));
    }
}
