using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.Device.Tests.Platform;

/// <summary>
/// TorchSharp must load from a plain build on Debian 12: the build marks libLibTorchSharp.so's
/// GLIBCXX_3.4.32 need weak (build/TorchSharpGlibcxxFix.targets). If that step regresses, every
/// kernel test fails to initialise; this test names the cause directly.
/// </summary>
public class TorchSharpLoadsTests
{
    [Test]
    public void TorchSharpComputesAMatrixProductOnCpu()
    {
        using var a = tensor(new float[] { 1, 2, 3, 4 }, 2, 2);
        using var b = tensor(new float[] { 5, 6, 7, 8 }, 2, 2);
        using var c = mm(a, b);
        Assert.That(c.data<float>().ToArray(), Is.EqualTo(new float[] { 19, 22, 43, 50 }));
    }

    [Test]
    public void BuiltLibTorchSharpHasNoStrictGlibcxx3432Need()
    {
        // Every copy: TorchSharp's loader fallback may add one under cpu/ next to runtimes/.
        string[] libs = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).ToArray();
        if (libs.Length == 0)
        {
            Assert.Ignore("libLibTorchSharp.so is not in the output (not a Linux build).");
        }
        Assert.That(torch.cuda.is_available(), Is.False, "CPU build expected");
        foreach (string lib in libs)
        {
            byte[] elf = File.ReadAllBytes(lib);
            // The reader must see libstdc++'s base version need, or "not found" below would only mean it read nothing.
            Assert.That(ElfVersionNeeds.FlagsOf(elf, "GLIBCXX_3.4"), Is.Not.Null, "the ELF reader found no GLIBCXX_3.4 version need in " + lib);
            // TorchSharp-cpu 0.107.0's library binds std::ios_base_library_init at GLIBCXX_3.4.32, so the entry
            // must be there; only its flag changes. A missing entry is a failure, not a pass: it means the
            // package changed under the build fix, which then needs revisiting together with this test.
            int? flags = ElfVersionNeeds.FlagsOf(elf, "GLIBCXX_3.4.32");
            Assert.That(flags, Is.Not.Null,
                $"{lib} has no GLIBCXX_3.4.32 version need; the pinned TorchSharp-cpu has one, which " +
                "build/TorchSharpGlibcxxFix.targets marks weak. If an upgrade dropped it, remove the fix and this test together.");
            Assert.That(flags!.Value & 0x2, Is.EqualTo(0x2), $"GLIBCXX_3.4.32 must be marked VER_FLG_WEAK in the built copy {lib}");
        }
    }
}

/// <summary>Reads vna_flags of a named version need from an ELF64 image.</summary>
internal static class ElfVersionNeeds
{
    /// <summary>The flags of the need on <paramref name="versionName"/>; null when the image has no such need.</summary>
    public static int? FlagsOf(byte[] elf, string versionName)
    {
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        for (int s = 0; s < shnum; s++)
        {
            int sh = (int)(shoff + (long)s * shentsize);
            if (BitConverter.ToUInt32(elf, sh + 4) != 0x6ffffffe)
            {
                continue;
            }
            int sec = (int)BitConverter.ToInt64(elf, sh + 0x18);
            int link = (int)BitConverter.ToUInt32(elf, sh + 0x28);
            int count = (int)BitConverter.ToUInt32(elf, sh + 0x2C);
            int str = (int)BitConverter.ToInt64(elf, (int)(shoff + (long)link * shentsize) + 0x18);
            int vn = sec;
            for (int i = 0; i < count; i++)
            {
                int aux = vn + (int)BitConverter.ToUInt32(elf, vn + 8);
                for (int j = 0; j < BitConverter.ToUInt16(elf, vn + 2); j++)
                {
                    int name = str + (int)BitConverter.ToUInt32(elf, aux + 8);
                    int end = Array.IndexOf(elf, (byte)0, name);
                    if (System.Text.Encoding.ASCII.GetString(elf, name, end - name) == versionName)
                    {
                        return BitConverter.ToUInt16(elf, aux + 4);
                    }
                    aux += (int)BitConverter.ToUInt32(elf, aux + 12);
                }
                vn += (int)BitConverter.ToUInt32(elf, vn + 12);
            }
        }
        return null;
    }
}
