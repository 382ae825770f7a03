using AscendCC.Device.Tests.Platform;
using NUnit.Framework;

namespace AscendCC.Device.Tests;

/// <summary>
/// In a portable-path child (see <see cref="PortableKernelPathTests"/>), checks before any test runs
/// that the JIT really took the requested path, and reports what it saw to the parent. Outside a child
/// it does nothing.
/// </summary>
[SetUpFixture]
public sealed class ChildIsaCheck
{
    /// <summary>Runs once before the tests of this namespace and the ones below it (the kernel fixtures among them).</summary>
    [OneTimeSetUp]
    public void CheckTheJitTookThePortablePath()
    {
        string? expected = Environment.GetEnvironmentVariable(PortableKernelPathTests.ExpectedIsaVariable);
        if (expected is null)
        {
            return;
        }
        string actual = PortableKernelPathTests.DescribeIsa();
        if (Environment.GetEnvironmentVariable(PortableKernelPathTests.MarkerVariable) is { Length: > 0 } marker)
        {
            File.WriteAllText(marker, actual);
        }
        // Failing here fails every test of the child: none of them would be testing the portable path.
        Assert.That(actual, Is.EqualTo(expected), "the child's JIT did not take the path the parent asked for");
    }
}
