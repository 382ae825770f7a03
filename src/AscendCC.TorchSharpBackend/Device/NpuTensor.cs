using AscendCC.Runtime.Acl;
using AscendCC.Device;
using TorchSharp;
using static TorchSharp.torch;

namespace AscendCC.TorchSharpBackend;

/// <summary>
/// A tensor in an NPU's HBM: shape, dtype and a device buffer it owns. TorchSharp cannot address a
/// PrivateUse1 device, so NPU tensors are their own type: make one with <c>tensor.npu()</c>, compute
/// on it with <see cref="torch_npu"/>'s functional operators, and bring it back with
/// <see cref="cpu"/>. Dispose it to return its memory to the device's cache.
/// </summary>
public sealed class NpuTensor : IDisposable
{
    private readonly long[] _shape;
    private DeviceBuffer? _buffer;

    internal NpuTensor(NpuDeviceContext context, DeviceBuffer buffer, long[] shape, ScalarType dtype, int stream)
    {
        Context = context;
        _buffer = buffer;
        _shape = shape;
        dtype_ = dtype;
        Stream = stream;
    }

    private readonly ScalarType dtype_;

    internal NpuDeviceContext Context { get; }

    /// <summary>The hardware stream the tensor was produced on (its memory returns to that stream's cache).</summary>
    internal int Stream { get; }

    internal DeviceBuffer Buffer => _buffer ?? throw new ObjectDisposedException(nameof(NpuTensor), "this NpuTensor was disposed; its device memory is gone");

    internal KernelArgument Argument => Buffer.Slice(0, nbytes);

    /// <summary>Dimensions, outermost first.</summary>
    public long[] shape => (long[])_shape.Clone();

    /// <summary>Element type.</summary>
    public ScalarType dtype => dtype_;

    /// <summary>The device string, e.g. "npu:0".</summary>
    public string device => Context.Name;

    /// <summary>The device index.</summary>
    public int device_index => Context.Index;

    /// <summary>Number of dimensions.</summary>
    public int dim() => _shape.Length;

    /// <summary>Size of dimension <paramref name="dimension"/> (negative counts from the end).</summary>
    public long size(int dimension) => _shape[dimension < 0 ? _shape.Length + dimension : dimension];

    /// <summary>Number of elements.</summary>
    public long numel() => NumElements(_shape);

    /// <summary>Bytes per element.</summary>
    public long element_size() => ElementSize(dtype_);

    /// <summary>Bytes of data.</summary>
    public long nbytes => numel() * element_size();

    /// <summary>Copies the tensor to host memory, subject to the device's <see cref="INpuHostReadPolicy"/>.</summary>
    public Tensor cpu()
    {
        Context.CheckHostRead($"NpuTensor [{string.Join(", ", _shape)}] {dtype_}");
        var bytes = new byte[nbytes];
        // Host copies travel on stream 0; work queued on the producing stream must be finished first.
        Context.Runtime.Driver.Synchronize(Stream);
        Context.Runtime.CopyToHost(Buffer, 0, bytes);
        Tensor result = empty(_shape, dtype_);
        result.bytes = bytes;
        return result;
    }

    /// <summary><c>to("cpu")</c>: the same as <see cref="cpu"/>.</summary>
    public Tensor to(string device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device != "cpu")
        {
            throw new ArgumentException($"NpuTensor.to(\"{device}\") is not supported: to() copies back to the host, so pass \"cpu\". To move to another NPU, call .cpu().npu(\"npu:N\").", nameof(device));
        }
        return cpu();
    }

    /// <summary>Returns the tensor's memory to its device's cache.</summary>
    public void Dispose()
    {
        if (_buffer is { } b)
        {
            _buffer = null;
            Context.Allocator.Release(b, Stream);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"NpuTensor([{string.Join(", ", _shape)}], dtype={dtype_}, device={device})";

    /// <summary>Element-wise sum; see <see cref="torch_npu.add"/>.</summary>
    public static NpuTensor operator +(NpuTensor a, NpuTensor b) => torch_npu.add(a, b);

    /// <summary>Element-wise product; see <see cref="torch_npu.mul"/>.</summary>
    public static NpuTensor operator *(NpuTensor a, NpuTensor b) => torch_npu.mul(a, b);

    /// <summary>Element-wise sum (named alternative to the operator).</summary>
    public static NpuTensor Add(NpuTensor left, NpuTensor right) => torch_npu.add(left, right);

    /// <summary>Element-wise product (named alternative to the operator).</summary>
    public static NpuTensor Multiply(NpuTensor left, NpuTensor right) => torch_npu.mul(left, right);

    internal static long NumElements(IReadOnlyList<long> shape)
    {
        long n = 1;
        foreach (long d in shape)
        {
            n = checked(n * d);
        }
        return n;
    }

    internal static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Int64 => 8,
        _ => throw new NotSupportedException($"dtype {dtype} cannot live on the NPU; use float32, float16, bfloat16, int32 or int64"),
    };

    /// <summary>Allocates an uninitialised tensor on <paramref name="context"/>'s current stream.</summary>
    internal static NpuTensor Empty(NpuDeviceContext context, long[] shape, ScalarType dtype)
    {
        int stream = torch_npu.npu.StreamIdFor(context);
        long bytes = Math.Max(1, NumElements(shape) * ElementSize(dtype));
        return new NpuTensor(context, context.Allocator.Allocate(bytes, stream), shape, dtype, stream);
    }

    /// <summary>Uploads a host tensor.</summary>
    internal static NpuTensor FromHost(Tensor source, NpuDeviceContext context)
    {
        ArgumentNullException.ThrowIfNull(source);
        ElementSize(source.dtype);
        using Tensor host = source.detach().cpu().contiguous();
        NpuTensor result = Empty(context, source.shape, source.dtype);
        if (result.nbytes > 0)
        {
            context.Runtime.CopyToDevice(host.bytes, result.Buffer);
        }
        return result;
    }
}

/// <summary><c>tensor.npu()</c> for TorchSharp tensors.</summary>
public static class NpuTensorExtensions
{
    /// <summary>Copies <paramref name="tensor"/> to the current NPU (torch_npu's <c>tensor.npu()</c>).</summary>
    public static NpuTensor npu(this Tensor tensor) =>
        NpuTensor.FromHost(tensor, NpuDeviceRegistry.Get(torch_npu.npu.current_device()));

    /// <summary>Copies <paramref name="tensor"/> to NPU <paramref name="device"/> ("npu:N").</summary>
    public static NpuTensor npu(this Tensor tensor, string device) =>
        NpuTensor.FromHost(tensor, NpuDeviceRegistry.Get(NpuDeviceRegistry.Parse(device)));

    /// <summary>Copies <paramref name="tensor"/> to NPU number <paramref name="device"/>.</summary>
    public static NpuTensor npu(this Tensor tensor, int device) =>
        NpuTensor.FromHost(tensor, NpuDeviceRegistry.Get(device));
}
