using AscendCC.Attacks;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Tests.Models;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Confidential;

/// <summary>
/// Packages the host stages from a file, piece by piece (<see cref="PackageSource.OpenFile"/>): larger than
/// any .NET array or span — a 7B or 8B model's package is over 2 GiB — and checked for truncation
/// before anything reaches the device.
/// </summary>
[NonParallelizable]
public class LargePackageTests
{
    /// <summary>
    /// A package whose weights all lie past 2 GiB: the provider puts 2.2 GB of operator binaries the
    /// program never binds before the tiny model's tensors, so every offset the host stages a weight from
    /// exceeds int.MaxValue (what a 7B model's later tensors meet) without 2 GiB of weights to compare.
    /// Loaded from the file, the confidential model generates the plaintext model's tokens.
    /// </summary>
    [Test]
    public void APackageWhoseWeightsLiePast2GiBLoadsFromItsFileAndGeneratesThePlaintextTokens()
    {
        using var temp = new TempFolder();
        string path = temp.File("large.ccpkg");
        if (new DriveInfo(Path.GetDirectoryName(path)!).AvailableFreeSpace < 3L << 30)
        {
            Assert.Ignore($"needs 3 GiB free where {path} goes, for a 2.2 GB package; skipped");
        }
        using Testbed bed = Testbed.CreateTiny(new TestbedOptions { MaxContext = 64 });
        const int Padding = 1_100_000_000;
        ProtectedModel model;
        using (var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
        {
            var builder = new ModelPackageBuilder("tiny-random-llama-padded");
            byte[] padding = GC.AllocateUninitializedArray<byte>(Padding);
            builder.AddOperatorBinary("padding-0", padding).AddOperatorBinary("padding-1", padding);
            model = ModelPackageExporter.Export(bed.Provider, bed.Deployment, bed.Weights, bed.Policy, output, builder);
        }
        using (model)
        {
            using (PackageSource source = PackageSource.OpenFile(path))
            {
                PackageLayout layout = PackageFile.ReadLayout(source);
                Assert.That(layout.TotalLength, Is.GreaterThan(2L * Padding), "the premise: a package larger than any span");
                int firstWeight = layout.Manifest.IndexOf(layout.Manifest.Tensors.First().Name);
                Assert.That(layout.EncryptedItem(firstWeight).Offset, Is.GreaterThan((long)int.MaxValue), "the premise: every weight lies past 2 GiB");
            }
            int[] prompt = [1, 5, 9, 13];
            int[] confidential;
            using (CausalLM llama = bed.LoadFile(model, path))
            {
                Assert.That(llama.UnlockedBytes, Is.EqualTo(bed.Model.Manifest.Tensors.Sum(t => t.ByteLength)), "the weights, not the padding, were unlocked");
                confidential = bed.Generate(llama, prompt, 12);
            }
            using Testbed plain = Testbed.CreateTiny(new TestbedOptions { MaxContext = 64, CcMode = Protocol.Attestation.CcMode.Off });
            using CausalLM reference = plain.LoadPlaintext();
            Assert.That(confidential, Is.EqualTo(reference.Generate(prompt, 12, stopTokens: []).ToArray()));
        }
    }

    /// <summary>
    /// A package file cut short — inside its last item, or inside its manifest — is refused when it is
    /// opened, naming the truncation, before the device is touched: the host has allocated nothing on it.
    /// An empty file and a file that is not a package say so.
    /// </summary>
    [Test]
    public void ATruncatedPackageFileIsRefusedBeforeTheDeviceIsTouched()
    {
        using var temp = new TempFolder();
        using Testbed bed = Testbed.CreateTiny(new TestbedOptions { MaxContext = 64 });
        DeviceMemoryInfoSnapshot before = new(bed.Runtime.MemoryInfo.Allocated, bed.Runtime.MemoryInfo.RegionCount);
        foreach ((string name, int length, string named) in new[]
        {
            // Refused by the layout against the file's length, before anything is staged: naming the manifest's size.
            ("cut in the last item", bed.Package.Length - 1, $"its manifest describes {bed.Package.Length} bytes and the file has {bed.Package.Length - 1}"),
            ("cut in the manifest", 40, "truncated"),
            ("empty", 0, "the package is empty"),
        })
        {
            string path = temp.File(name.Replace(' ', '-') + ".ccpkg");
            File.WriteAllBytes(path, bed.Package.AsSpan(0, length).ToArray());
            var e = Assert.Throws<FormatException>(() => bed.LoadFile(bed.Model, path).Dispose(), name);
            Assert.That(e!.Message, Does.Contain(named), name);
            Assert.That(new DeviceMemoryInfoSnapshot(bed.Runtime.MemoryInfo.Allocated, bed.Runtime.MemoryInfo.RegionCount), Is.EqualTo(before), $"{name}: nothing left on the device");
        }
        string notPackage = temp.File("model.safetensors");
        File.WriteAllBytes(notPackage, new byte[64]);
        Assert.That(Assert.Throws<FormatException>(() => bed.LoadFile(bed.Model, notPackage).Dispose())!.Message, Does.Contain("not a confidential model package"));
        Assert.Throws<FileNotFoundException>(() => bed.LoadFile(bed.Model, temp.File("missing.ccpkg")).Dispose());
    }

    private readonly record struct DeviceMemoryInfoSnapshot(long Allocated, int Regions);

    /// <summary>
    /// A streaming export (each tensor converted twice, one at a time) asks for every weight exactly twice,
    /// and its package loads and generates the eager export's tokens; a producer that gives other bytes the
    /// second time is refused naming the tensor, since the manifest already names the first bytes.
    /// </summary>
    [Test]
    public void AStreamingExportConvertsEachTensorTwiceAndItsPackageGeneratesTheSameTokens()
    {
        using Testbed bed = Testbed.CreateTiny(new TestbedOptions { MaxContext = 64 });
        var calls = new Dictionary<string, int>(StringComparer.Ordinal);
        ProtectedModel model;
        byte[] package;
        using (var output = new MemoryStream())
        {
            model = ModelPackageExporter.Export(bed.Provider, bed.Deployment, name =>
            {
                calls[name] = calls.GetValueOrDefault(name) + 1;
                return bed.Weights(name);
            }, bed.Policy, output, "tiny-random-llama", streaming: true);
            package = output.ToArray();
        }
        using (model)
        {
            Assert.That(calls.Keys, Is.EquivalentTo(bed.WeightNames));
            Assert.That(calls.Values, Has.All.EqualTo(2), "every weight converted once for the digests and once to encrypt");
            Assert.That(model.Manifest.Tensors.Select(t => Convert.ToHexString(t.Sha256.Span)), Is.EqualTo(bed.Model.Manifest.Tensors.Select(t => Convert.ToHexString(t.Sha256.Span))),
                "the same tensors as the eager export's");
            int[] prompt = [1, 5, 9, 13];
            int[] tokens;
            using (CausalLM streamed = bed.Load(model, package))
            {
                tokens = bed.Generate(streamed, prompt, 12);
            }
            using CausalLM eager = bed.Load();
            Assert.That(tokens, Is.EqualTo(bed.Generate(eager, prompt, 12)));
        }

        var builder = new ModelPackageBuilder("changing");
        int made = 0;
        builder.AddTensor("w", "F32", [4], () => new byte[] { 1, 2, 3, (byte)made++ });
        var e = Assert.Throws<InvalidOperationException>(() => bed.Provider.BuildPackage(builder, bed.Policy, new MemoryStream()).Dispose());
        Assert.That(e!.Message, Does.Contain("tensor 'w'").And.Contain("same bytes every call"));
    }

    /// <summary>
    /// Attack (R1), as a host that is also a model provider: it exports the same model shape under its own
    /// signing key (a package with exactly the victim's layout) and stages the victim's package through its
    /// own <see cref="PackageSource"/> — the victim's signed header and chunk tags, but its own ciphertext for
    /// one weight, each read individually allowed. The device refuses that weight's unlock and the load fails;
    /// the same source without the splice loads, so the refusal is the splice's.
    /// </summary>
    [Test]
    public void AHostSplicingItsOwnPackagesCiphertextIntoTheStagedFileIsRefused()
    {
        using Testbed bed = Testbed.CreateTiny(new TestbedOptions { MaxContext = 64 });
        using var host = ModelProvider.CreateDeterministic("a host that is also a model provider, 32+ bytes"u8);
        byte[] own;
        using (var output = new MemoryStream())
        using (ModelPackageExporter.Export(host, bed.Deployment, bed.Weights, bed.Policy, output, "tiny-random-llama"))
        {
            own = output.ToArray();
        }
        PackageLayout victim = PackageFile.ReadLayout(bed.Package), mine = PackageFile.ReadLayout(own);
        int target = victim.Manifest.IndexOf("model.embed_tokens.weight");
        (long offset, long length) = victim.EncryptedItem(target);
        Assert.That(mine.EncryptedItem(mine.Manifest.IndexOf("model.embed_tokens.weight")).Length, Is.EqualTo(length), "the premise: the same layout");
        long delta = mine.HeaderLength - victim.HeaderLength;

        using (var honest = new SplicingSource(bed.Package, own, offset, length, delta, splice: false))
        using (CausalLM llama = CausalLM.LoadConfidential(bed.Runtime, bed.Deployment, honest, bed.ReleaseKey(bed.Model), bed.Options.Mode))
        {
            Assert.That(llama.UnlockedBytes, Is.GreaterThan(0), "the honest source loads");
        }
        using var splicing = new SplicingSource(bed.Package, own, offset, length, delta, splice: true);
        byte[] digest = bed.ReleaseKey(bed.Model);
        var e = Assert.Catch(() => CausalLM.LoadConfidential(bed.Runtime, bed.Deployment, splicing, digest, bed.Options.Mode).Dispose());
        Assert.That(e!.ToString(), Does.Contain("model.embed_tokens.weight"), "the unlock of the spliced weight is refused, naming it");
        Assert.That(splicing.SplicedReads, Is.GreaterThan(0), "the premise: the host's ciphertext was staged");
    }

    /// <summary>The victim's package, except that reads inside one item's encrypted bytes come from the host's own package (its signed header may differ in length by <c>delta</c>).</summary>
    private sealed class SplicingSource(byte[] victim, byte[] own, long offset, long length, long delta, bool splice) : PackageSource
    {
        private readonly PackageSource _victim = FromMemory(victim), _own = FromMemory(own);

        public int SplicedReads { get; private set; }

        public override long Length => victim.Length;

        public override ReadOnlySpan<byte> Read(long at, int count)
        {
            // Chunk ciphertext reads of the item (its tags are read separately, 16 bytes after each chunk, and stay the victim's).
            if (splice && at >= offset && at + count <= offset + length && count > 16)
            {
                SplicedReads++;
                return _own.Read(at + delta, count);
            }
            return _victim.Read(at, count);
        }
    }

    /// <summary>A file source reads what a memory source of the same bytes reads, and refuses a read past the end naming the offset.</summary>
    [Test]
    public void AFileSourceReadsWhatTheMemorySourceReads()
    {
        using var temp = new TempFolder();
        byte[] bytes = new byte[3_000_000];
        new Random(3).NextBytes(bytes);
        string path = temp.File("bytes.bin");
        File.WriteAllBytes(path, bytes);
        using PackageSource file = PackageSource.OpenFile(path), memory = PackageSource.FromMemory(bytes);
        Assert.That(file.Length, Is.EqualTo(memory.Length));
        foreach ((long offset, int length) in new (long, int)[] { (0, 12), (1_048_579, 1 << 20), (bytes.Length - 16, 16), (7, 0), (100, 2_000_000) })
        {
            Assert.That(file.Read(offset, length).ToArray(), Is.EqualTo(memory.Read(offset, length).ToArray()), $"{length} at {offset}");
        }
        foreach (PackageSource source in new[] { file, memory })
        {
            var e = Assert.Throws<FormatException>(() => source.Read(bytes.Length - 15, 16));
            Assert.That(e!.Message, Does.Contain($"offset {bytes.Length - 15}").And.Contain("truncated"));
        }
    }
}
