using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Text;
using System.Text.RegularExpressions;
using AscendCC.Device.Tests.Kernels;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Platform;

/// <summary>
/// The kernels pick their SIMD path from Vector512/Vector256.IsHardwareAccelerated, so on an AVX-512
/// machine the in-process run only ever exercises the widest path. These tests re-run the
/// kernel-against-TorchSharp fixtures (category <see cref="KernelTestData.Category"/>) in a child
/// <c>dotnet test</c> over this very assembly, with the JIT told to hide AVX-512 (the Vector256 paths)
/// or every hardware intrinsic (the scalar loops; Vector* types then run in software).
/// <para>
/// .NET 10 spells the switches DOTNET_EnableAVX512 and DOTNET_EnableHWIntrinsic: the older
/// DOTNET_EnableAVX512F=0 is ignored and leaves Vector512 accelerated, and DOTNET_PreferredVectorBitWidth=256
/// turns Vector512 off but keeps Avx512F.IsSupported. Because a misspelt variable is silently ignored,
/// the child checks what it got (<see cref="ChildIsaCheck"/>) and reports it in a marker file, and the
/// parent asserts both: without that a child on the AVX-512 path would pass and prove nothing.
/// </para>
/// </summary>
[Category("PortablePaths")]
[NonParallelizable]
public class PortableKernelPathTests
{
    /// <summary>Set in the child: the Vector512/256/128 acceleration it must see, as <see cref="DescribeIsa"/> writes it.</summary>
    internal const string ExpectedIsaVariable = "ASCENDCC_TEST_EXPECTED_ISA";

    /// <summary>Set in the child: where it writes the acceleration it saw.</summary>
    internal const string MarkerVariable = "ASCENDCC_TEST_ISA_MARKER";

    /// <summary>
    /// Every kernel family (elementwise, activations, softmax, norms, RoPE, embedding, KV cache,
    /// attention, sampling, matmul and linear including the fused linear) without the cases that name
    /// 2048 (the 2K prefill shapes, the 2048-row GEMMs and the 768x2048 GEMV): their float64 references
    /// and, on the scalar path, software-emulated vectors would add most of a minute, and they reach no
    /// path the odd mid-sized shapes (300-token prefills, 127x255x129 GEMMs) miss.
    /// </summary>
    private const string Filter = $"TestCategory={KernelTestData.Category}&Name!~2048";

    [TestCase("DOTNET_EnableAVX512", "Vector512=False Vector256=True Vector128=True", TestName = "Kernels match torch with AVX-512 disabled (Vector256 paths)")]
    [TestCase("DOTNET_EnableHWIntrinsic", "Vector512=False Vector256=False Vector128=False", TestName = "Kernels match torch with hardware intrinsics disabled (scalar paths)")]
    public void KernelsMatchTorchOnThePortablePaths(string jitSwitch, string expectedIsa)
    {
        // Recursion guard: a child only ever runs the kernel category, but never let one spawn another.
        if (Environment.GetEnvironmentVariable(ExpectedIsaVariable) is not null)
        {
            Assert.Ignore("running inside a portable-path child; it does not spawn children of its own");
        }
        if (jitSwitch == "DOTNET_EnableAVX512" && !Vector512.IsHardwareAccelerated)
        {
            Assert.Ignore("this machine has no AVX-512, so the in-process run already covers the Vector256 paths");
        }

        string marker = Path.Combine(Path.GetTempPath(), $"ascendcc-isa-{Guid.NewGuid():N}.txt");
        string assembly = typeof(PortableKernelPathTests).Assembly.Location;
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (string arg in new[] { "test", assembly, "--filter", Filter })
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment[jitSwitch] = "0";
        start.Environment[ExpectedIsaVariable] = expectedIsa;
        start.Environment[MarkerVariable] = marker;

        var output = new StringBuilder();
        try
        {
            using (var child = new Process { StartInfo = start })
            {
                child.OutputDataReceived += (_, e) => Append(output, e.Data);
                child.ErrorDataReceived += (_, e) => Append(output, e.Data);
                child.Start();
                child.BeginOutputReadLine();
                child.BeginErrorReadLine();
                // A hang guard, not a performance assertion: the child normally takes well under a minute.
                if (!child.WaitForExit(TimeSpan.FromMinutes(10)))
                {
                    child.Kill(entireProcessTree: true);
                    Assert.Fail($"the child test run did not finish:\n{Tail(output)}");
                }
                child.WaitForExit();
                Assert.That(File.Exists(marker), Is.True,
                    $"the child never reported its ISA (did the filter select no kernel test?):\n{Tail(output)}");
                Assert.That(File.ReadAllText(marker), Is.EqualTo(expectedIsa),
                    $"{jitSwitch}=0 did not give the child the portable path it names");
                Assert.That(child.ExitCode, Is.Zero, $"kernel tests failed on the {expectedIsa} path:\n{Tail(output)}");
            }
            Match summary = Regex.Match(Snapshot(output), @"Failed:\s+(\d+), Passed:\s+(\d+)");
            Assert.That(summary.Success, Is.True, $"no test summary in the child's output:\n{Tail(output)}");
            Assert.That(int.Parse(summary.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Is.Zero);
            // Well over a hundred cases across the families: far fewer means the filter stopped matching.
            Assert.That(int.Parse(summary.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThan(150),
                "the child ran too few kernel tests for the portable paths to count as covered");
        }
        finally
        {
            File.Delete(marker);
        }
    }

    /// <summary>The acceleration this process's JIT reports, in the form the child compares.</summary>
    internal static string DescribeIsa() =>
        $"Vector512={Vector512.IsHardwareAccelerated} Vector256={Vector256.IsHardwareAccelerated} Vector128={Vector128.IsHardwareAccelerated}";

    private static string DotnetHost()
    {
        // dotnet test exports the muxer it runs under; a testhost started some other way runs under it directly.
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }
        string? self = Environment.ProcessPath;
        return self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (output)
        {
            output.AppendLine(line);
        }
    }

    private static string Snapshot(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private static string Tail(StringBuilder output)
    {
        string text = Snapshot(output);
        return text.Length <= 6000 ? text : text[^6000..];
    }
}
