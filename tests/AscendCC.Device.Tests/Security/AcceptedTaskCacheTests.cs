using AscendCC.Device.Confidential;
using AscendCC.Device.Scheduler;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Security;

/// <summary>
/// The eager path's cache of launches already matched against an attested list. A cache hit skips
/// the measurement, so a key that leaves out any operand (or mixes two operands up) would let a launch
/// the host changed run as the attested one: every operand must reach the key.
/// </summary>
[TestFixture]
public sealed class AcceptedTaskCacheTests
{
    private const ulong Operator = 0x1_0000_0040;
    private const ulong Input = 0x1_0000_1000;
    private const ulong Output = 0x1_0000_2000;
    private const ulong Position = 0x1_0000_3008;

    [Test]
    public void ALaunchNeverRememberedDoesNotMatch()
    {
        var cache = new AcceptedTaskCache(2);
        DecodedTask t = Launch();
        Assert.That(cache.Matches(0, ref t), Is.False);
    }

    [Test]
    public void ARememberedLaunchMatchesItself()
    {
        var cache = new AcceptedTaskCache(2);
        DecodedTask t = Launch();
        cache.Remember(1, ref t);
        // A fresh copy, as the next eager submission of the same launch would decode.
        DecodedTask again = Launch();
        Assert.That(cache.Matches(1, ref again), Is.True);
    }

    [Test]
    public void ALaunchIsRememberedForItsListIndexOnly()
    {
        var cache = new AcceptedTaskCache(2);
        DecodedTask t = Launch();
        cache.Remember(0, ref t);
        Assert.That(cache.Matches(1, ref t), Is.False, "the same launch at another position of the list was never matched there");
    }

    [Test]
    public void ALaunchWithOneMoreBufferDoesNotMatch()
    {
        var cache = new AcceptedTaskCache(1);
        DecodedTask t = Launch();
        cache.Remember(0, ref t);
        DecodedTask longer = Launch();
        longer.Args![longer.ArgCount++] = new KernelArgument(Output + 0x100, 64);
        Assert.That(cache.Matches(0, ref longer), Is.False);
    }

    [Test]
    public void ALaunchWithOneMoreScalarDoesNotMatch()
    {
        var cache = new AcceptedTaskCache(1);
        DecodedTask t = Launch();
        cache.Remember(0, ref t);
        DecodedTask longer = Launch();
        longer.Scalars![longer.ScalarCount++] = KernelScalar.Of(0L);
        Assert.That(cache.Matches(0, ref longer), Is.False);
    }

    // D is the field right before the first buffer's address: a buffer size written 8 bytes too early
    // would overwrite it, and two launches differing only there would collide. A scalar taken as is
    // and the same value read from HBM are different programs; a scalar value written one byte too
    // early would overwrite the source byte, and those two would collide.
    [TestCase("kind")]
    [TestCase("A (the operator handle)")]
    [TestCase("B")]
    [TestCase("C")]
    [TestCase("D")]
    [TestCase("the first buffer's address")]
    [TestCase("the first buffer's size")]
    [TestCase("the last buffer's address")]
    [TestCase("the last buffer's size")]
    [TestCase("the first scalar's source")]
    [TestCase("the first scalar's value")]
    [TestCase("the last scalar's source")]
    [TestCase("the last scalar's value")]
    public void ALaunchDifferingInOneOperandDoesNotMatch(string operand)
    {
        var cache = new AcceptedTaskCache(1);
        DecodedTask t = Launch();
        cache.Remember(0, ref t);
        DecodedTask changed = Launch();
        Change(ref changed, operand);
        Assert.That(cache.Matches(0, ref changed), Is.False);
        // The change is the only difference: the original still matches.
        Assert.That(cache.Matches(0, ref t), Is.True);
    }

    [Test]
    public void ALaunchWithTheLargestKeyMatchesItselfAndNotAChangedCopy()
    {
        // 64 buffers and 64 scalars (the decoder's limit): a 1634-byte key, more than the 512 bytes
        // Matches builds on the stack, so this is the path through a pooled buffer.
        var cache = new AcceptedTaskCache(1);
        DecodedTask t = Largest();
        cache.Remember(0, ref t);
        DecodedTask same = Largest();
        Assert.That(cache.Matches(0, ref same), Is.True);

        // The last byte of the key: the comparison covers all of it.
        DecodedTask changed = Largest();
        changed.Scalars![^1] = changed.Scalars[^1] with { Value = changed.Scalars[^1].Value ^ (1UL << 63) };
        Assert.That(cache.Matches(0, ref changed), Is.False);
    }

    // A launch as the eager decoder leaves it: operands in arrays of the decoder's maximum length,
    // reused from task to task, with the counts saying how many are this task's.
    private static DecodedTask Launch()
    {
        var t = new DecodedTask
        {
            Kind = TaskKind.KernelLaunch,
            TaskId = 17,
            A = Operator,
            B = 0x0101_0101_0101_0101,
            C = 0x0202_0202_0202_0202,
            D = 0x0303_0303_0303_0303,
            Args = new KernelArgument[TaskWriter.MaxKernelOperands],
            Scalars = new KernelScalar[TaskWriter.MaxKernelOperands],
            ArgCount = 2,
            ScalarCount = 2,
        };
        t.Args[0] = new KernelArgument(Input, 4096);
        t.Args[1] = new KernelArgument(Output, 4096);
        t.Scalars[0] = KernelScalar.Of(0x1_0000_3000L);
        t.Scalars[1] = KernelScalar.FromDevice(Position);
        return t;
    }

    private static DecodedTask Largest()
    {
        DecodedTask t = Launch();
        for (int i = 0; i < TaskWriter.MaxKernelOperands; i++)
        {
            t.Args![i] = new KernelArgument(Input + ((ulong)i * 64), 64 + i);
            t.Scalars![i] = i % 2 == 0 ? KernelScalar.Of(-i) : KernelScalar.FromDevice(Position + ((ulong)i * 8));
        }
        t.ArgCount = t.ScalarCount = TaskWriter.MaxKernelOperands;
        return t;
    }

    private static void Change(ref DecodedTask t, string operand)
    {
        KernelArgument[] args = t.Args!;
        KernelScalar[] scalars = t.Scalars!;
        switch (operand)
        {
            case "kind": t.Kind = TaskKind.Memset; break;
            case "A (the operator handle)": t.A ^= 0x40; break;
            case "B": t.B ^= 1; break;
            case "C": t.C ^= 1; break;
            case "D": t.D ^= 1; break;
            case "the first buffer's address": args[0] = args[0] with { Address = args[0].Address + 64 }; break;
            case "the first buffer's size": args[0] = args[0] with { Bytes = args[0].Bytes + 1 }; break;
            case "the last buffer's address": args[1] = args[1] with { Address = args[1].Address + 64 }; break;
            case "the last buffer's size": args[1] = args[1] with { Bytes = args[1].Bytes + 1 }; break;
            case "the first scalar's source": scalars[0] = KernelScalar.FromDevice(scalars[0].Value); break;
            case "the first scalar's value": scalars[0] = KernelScalar.Of(7L); break;
            case "the last scalar's source": scalars[1] = KernelScalar.Of(unchecked((long)scalars[1].Value)); break;
            case "the last scalar's value": scalars[1] = scalars[1] with { Value = scalars[1].Value ^ (1UL << 63) }; break;
            default: throw new ArgumentException($"no operand {operand}", nameof(operand));
        }
    }
}
