using AscendCC.Device.Confidential;
using AscendCC.Device.Hbm;
using AscendCC.Device.Scheduler;
using AscendCC.Protocol.Measurements;
using NUnit.Framework;

namespace AscendCC.Device.Tests.Security;

/// <summary>
/// The measurement of single tasks, as attestation and the eager check use it. A task that cannot be
/// measured is refused with a reason the host's operator reads (the attestation's problem text), and
/// everything that changes what a task does must change its digest.
/// </summary>
[TestFixture]
public sealed class TaskListMeasurerTests : IDisposable
{
    private const ulong OperatorHandle = 0x42;
    // Above every region this fixture allocates: inside no region at all.
    private const ulong Nowhere = HbmMemory.BaseAddress + (8UL << 20);

    private static readonly byte[] OperatorDigest = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();

    private HbmMemory _hbm = null!;
    private HbmRegion _input = null!;
    private HbmRegion _output = null!;
    private HbmRegion _positions = null!;

    // Measuring reads regions and never changes them: one set serves every test.
    [OneTimeSetUp]
    public void SetUp()
    {
        _hbm = new HbmMemory(16L << 20);
        _input = _hbm.Allocate(4096, 64, RegionTag.Activations)!;
        _output = _hbm.Allocate(4096, 64, RegionTag.Activations)!;
        _positions = _hbm.Allocate(64, 64, RegionTag.General)!;
    }

    public void Dispose() => _hbm?.Dispose();

    [Test]
    public void ALaunchOfALoadedOperatorOnBoundRegionsMeasures()
    {
        DecodedTask t = Launch(_input.Address, _positions.Address);
        Assert.That(Measure(ref t, out _), Is.Null);
    }

    [Test]
    public void ALaunchWhoseHandleHoldsNoOperatorIsRefusedNamingTheHandle()
    {
        DecodedTask t = Launch(_input.Address, _positions.Address);
        t.A = 0x99;
        Assert.That(Measure(ref t, out _), Is.EqualTo("no operator is loaded at 0x99"));
    }

    [Test]
    public void ALaunchWithABufferOutsideEveryRegionIsRefusedNamingTheBuffer()
    {
        DecodedTask t = Launch(Nowhere, _positions.Address);
        Assert.That(Measure(ref t, out _), Is.EqualTo($"buffer 0 at 0x{Nowhere:x}+4096 is not inside a region the attested list binds"));
    }

    [Test]
    public void ALaunchReadingAScalarOutsideEveryRegionIsRefusedNamingTheScalar()
    {
        DecodedTask t = Launch(_input.Address, Nowhere);
        Assert.That(Measure(ref t, out _), Is.EqualTo($"scalar 1 reads 0x{Nowhere:x}, outside a region the attested list binds"));
    }

    // Either end outside the regions the list binds is enough to refuse the copy: measuring only one
    // end would let a list copy from (or into) memory no one attested.
    [TestCase(true, false)]
    [TestCase(false, true)]
    [TestCase(false, false)]
    public void ACopyWithAnEndOutsideEveryRegionIsRefused(bool sourceBound, bool destinationBound)
    {
        DecodedTask t = Copy(sourceBound ? _input.Address : Nowhere, destinationBound ? _output.Address : Nowhere, 256);
        Assert.That(Measure(ref t, out _), Is.EqualTo("copy range is not inside regions the attested list binds"));
    }

    [Test]
    public void ACopyBetweenBoundRegionsMeasures()
    {
        DecodedTask t = Copy(_input.Address, _output.Address, 256);
        Assert.That(Measure(ref t, out _), Is.Null);
    }

    [Test]
    public void AMemsetOutsideEveryRegionIsRefused()
    {
        DecodedTask t = Memset(Nowhere, 256, 0);
        Assert.That(Measure(ref t, out _), Is.EqualTo("memset range is not inside a region the attested list binds"));
    }

    // Tasks that reach the host or the allocator: an attested list never holds them, so they cannot
    // be measured as part of one.
    [TestCase(TaskKind.MemcpyDeviceToHost)]
    [TestCase(TaskKind.MemcpyHostToDevice)]
    [TestCase(TaskKind.SetDmaAccess)]
    [TestCase(TaskKind.Alloc)]
    [TestCase(TaskKind.Free)]
    public void ATaskOfAKindNoAttestedListHoldsIsRefusedByKind(TaskKind kind)
    {
        var t = new DecodedTask { Kind = kind, A = _input.Address, B = _output.Address, C = 64, D = 64 };
        Assert.That(Measure(ref t, out _), Is.EqualTo($"{kind} cannot be part of an attested task list"));
    }

    [Test]
    public void TwoMemsetsDifferingOnlyInTheirValueMeasureDifferently()
    {
        // Zeroing a KV cache and filling it with 0xFF are different programs.
        DecodedTask zero = Memset(_output.Address, 256, 0);
        DecodedTask ones = Memset(_output.Address, 256, 0xFF);
        Assert.That(Measure(ref zero, out byte[] a), Is.Null);
        Assert.That(Measure(ref ones, out byte[] b), Is.Null);
        Assert.That(b, Is.Not.EqualTo(a));
    }

    [Test]
    public void TwoCopiesDifferingOnlyInTheirLengthMeasureDifferently()
    {
        DecodedTask shorter = Copy(_input.Address, _output.Address, 256);
        DecodedTask longer = Copy(_input.Address, _output.Address, 512);
        Assert.That(Measure(ref shorter, out byte[] a), Is.Null);
        Assert.That(Measure(ref longer, out byte[] b), Is.Null);
        Assert.That(b, Is.Not.EqualTo(a));
    }

    private string? Measure(ref DecodedTask t, out byte[] digest)
    {
        using var m = new GraphMeasurement();
        string? problem = TaskListMeasurer.Measure(ref t, m, _hbm, h => h == OperatorHandle ? OperatorDigest : null);
        digest = m.EndTask();
        return problem;
    }

    // One buffer and two scalars, the second read from HBM at scalarSource.
    private static DecodedTask Launch(ulong buffer, ulong scalarSource) => new()
    {
        Kind = TaskKind.KernelLaunch,
        A = OperatorHandle,
        Args = [new KernelArgument(buffer, 4096)],
        ArgCount = 1,
        Scalars = [KernelScalar.Of(3L), KernelScalar.FromDevice(scalarSource)],
        ScalarCount = 2,
    };

    private static DecodedTask Copy(ulong from, ulong to, ulong bytes) =>
        new() { Kind = TaskKind.MemcpyDeviceToDevice, A = from, B = to, C = bytes };

    private static DecodedTask Memset(ulong address, ulong bytes, byte value) =>
        new() { Kind = TaskKind.Memset, A = address, B = bytes, C = value };
}
