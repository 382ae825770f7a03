using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Driver;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.Runtime.Tests.Device;

/// <summary>
/// The slice_rows operator (the last position before the classifier) through the runtime, against
/// torch narrow on the same rows: a copy, so equal bit for bit.
/// </summary>
public class SliceRowsOperatorTests
{
    // rows of x, cols, start, rows sliced
    [TestCase(1, 1, 0, 1, TestName = "One element")]
    [TestCase(5, 64, 4, 1, TestName = "Last of five positions")]
    [TestCase(7, 17, 0, 7, TestName = "All rows, odd width")]
    [TestCase(9, 33, 3, 4, TestName = "Middle rows")]
    public void CopiesTheRowsTorchNarrowSelects(int totalRows, int cols, int start, int rows)
    {
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 16L << 20 }), ownsDevice: true);
        float[] x = [.. Enumerable.Range(0, totalRows * cols).Select(i => MathF.Sin(i * 0.7f) * 10)];
        using DeviceBuffer input = runtime.Allocate(x.Length * 4L);
        // One spare row past the output shows whether the operator writes more than rows × cols.
        using DeviceBuffer output = runtime.Allocate((rows + 1L) * cols * 4);
        runtime.CopyToDevice<float>(x, input);
        runtime.CopyToDevice<float>(Enumerable.Repeat(float.NaN, (rows + 1) * cols).ToArray(), output);

        runtime.Execute("slice_rows", [new KernelArgument(input.Address, input.Bytes), new KernelArgument(output.Address, rows * cols * 4L)],
            [KernelScalar.Of(start), KernelScalar.Of(rows), KernelScalar.Of(cols)]);
        runtime.Synchronize();
        var y = new float[(rows + 1) * cols];
        runtime.CopyToHost<float>(output, 0, y);

        using Tensor expected = tensor(x, [totalRows, cols]).narrow(0, start, rows).contiguous();
        Assert.That(y[..(rows * cols)], Is.EqualTo(expected.data<float>().ToArray()));
        Assert.That(y[(rows * cols)..], Is.All.NaN, "nothing is written past the slice");
    }

    [Test]
    public void ASliceReachingPastTheInputIsRefused()
    {
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 16L << 20 }), ownsDevice: true);
        using DeviceBuffer input = runtime.Allocate(4 * 8 * 4);
        using DeviceBuffer output = runtime.Allocate(2 * 8 * 4);
        runtime.Execute("slice_rows", [new KernelArgument(input.Address, input.Bytes), new KernelArgument(output.Address, output.Bytes)],
            [KernelScalar.Of(3), KernelScalar.Of(2), KernelScalar.Of(8)]);
        Assert.Throws<NpuException>(runtime.Synchronize, "rows 3..4 of a 4-row input");
    }
}
