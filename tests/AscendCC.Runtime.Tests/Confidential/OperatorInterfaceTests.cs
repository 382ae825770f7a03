using AscendCC.Device.Operators;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Confidential;

/// <summary>
/// The device's published operator library describes each operator's launch contract twice: as a
/// signature (what a kernel author and the docs read) and as the argument names the runtime and the
/// device's own refusals use. The two must agree, for the confidential operators above all: a
/// refusal that names the wrong buffer sends an operator chasing the wrong region.
/// </summary>
public class OperatorInterfaceTests
{
    [Test]
    public void EverySignatureNamesTheBufferArgumentsInLaunchOrder()
    {
        Assert.Multiple(() =>
        {
            foreach (string name in OperatorCatalog.Names)
            {
                string signature = OperatorCatalog.GetSignature(name);
                string buffers = signature.Split(" | ")[0];
                // "-> x" after an input x means in place: the same buffer, named once.
                string[] named = [.. buffers.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(t => t != "->").Select(t => t.Split(':')[0].TrimEnd('?')).Distinct()];
                Assert.That(named, Is.EqualTo(OperatorCatalog.GetArgumentNames(name)), $"{name}: {signature}");
            }
        });
    }

    [TestCase("package_unlock", "destination:[item] tags:u8[chunks*16]? | package item")]
    [TestCase("prompt_open", "record:u8[*] prompt:i32[max_context] next:i32[1] request:i64[step] -> tokens:i32[seq] step:i64[step] rng:u64[1] | dim hidden")]
    [TestCase("token_seal", "next:i32[1] -> record:u8[record]")]
    public void TheConfidentialOperatorsContractsAreAsDocumented(string name, string signature)
    {
        Assert.That(OperatorCatalog.GetSignature(name), Is.EqualTo(signature));
    }
}
