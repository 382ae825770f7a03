using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AscendCC.TorchSharpBackend;

/// <summary>
/// A chain of standard TorchSharp modules (Sequential / ModuleList of Linear, Embedding, LayerNorm,
/// ReLU, SiLU, GELU, Softmax, Dropout, Identity) compiled into one device program. The program is
/// built once; row counts are read by the kernels from a small parameter block in HBM, so eager and
/// graph mode run the very same launches and any batch of up to <see cref="MaxBatchRows"/> rows
/// reuses them.
/// </summary>
public sealed class NpuSequentialModule : NpuModule
{
    /// <summary>What the standard lowering accepts, for error messages and documentation.</summary>
    public const string SupportedModules =
        "Sequential and ModuleList (as containers run in order), Linear (with or without bias), Embedding (first), LayerNorm (over the last dimension), ReLU, SiLU, GELU (none or tanh), Softmax (last dimension), Dropout (eval mode only), Identity; and Llama-family causal language models recognised by their Hugging Face parameter names (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...)";

    private readonly object _gate = new();
    private readonly List<DeviceBuffer> _owned = new();
    private readonly List<DeviceOp> _program = new();
    private readonly Dictionary<long, int> _slots = new();
    private readonly List<(string Path, long Dim)> _softmaxDims = new();
    private readonly DeviceBuffer _input, _params;
    private readonly DeviceBuffer _output;
    private readonly LoadedModelHandle? _graph;
    private readonly bool _idsInput;
    private readonly long _inWidth, _outWidth, _vocab;
    private long[] _paramValues = [];
    private bool _disposed;

    private NpuSequentialModule(NpuDeviceContext context, ExecutionMode mode, IReadOnlyList<(string Path, nn.Module Module)> stages, NpuCompileOptions options)
        : base(context, mode)
    {
        MaxBatchRows = options.MaxBatchRows;
        if (MaxBatchRows < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxBatchRows, "MaxBatchRows must be at least 1");
        }
        var real = stages.Where(s => s.Module is not Identity and not Dropout).ToList();
        _idsInput = real.Count > 0 && real[0].Module is Embedding;
        foreach (var (path, module) in real.Skip(1).Where(s => s.Module is Embedding))
        {
            throw Unsupported(path, module, "Embedding takes token ids, so it must be the first module of the chain");
        }
        _inWidth = _idsInput ? 1 : InputWidth(real, options);
        _vocab = _idsInput ? ((Embedding)real[0].Module).weight!.shape[0] : 0;

        // Pass 1: widths, so the activation buffers can be sized before anything is emitted.
        long width = _inWidth, maxWidth = _inWidth;
        foreach (var (path, module) in real)
        {
            width = OutputWidth(path, module, width);
            maxWidth = Math.Max(maxWidth, width);
        }
        _outWidth = width;

        try
        {
            long rows = MaxBatchRows;
            _input = Allocate(rows * _inWidth * 4);
            DeviceBuffer a = Allocate(rows * maxWidth * 4), b = Allocate(rows * maxWidth * 4);
            DeviceBuffer current = _input;
            width = _inWidth;
            SlotFor(1);
            foreach (var (path, module) in real)
            {
                DeviceBuffer target = current == a ? b : a;
                width = Emit(path, module, current, target, width);
                current = target;
            }
            _output = current;
            _paramValues = new long[_slots.Count];
            _params = Allocate(_paramValues.Length * 8L);
            // Scalars were emitted against slot numbers; now that the block exists, bind them.
            for (int i = 0; i < _program.Count; i++)
            {
                DeviceOp op = _program[i];
                _program[i] = op with { Scalars = op.Scalars.Select(BindSlot).ToArray() };
            }
            if (mode == ExecutionMode.Graph)
            {
                ModelTaskList list = context.Runtime.CreateTaskList();
                foreach (DeviceOp op in _program)
                {
                    list.Launch(op.Operator, op.Args, op.Scalars);
                }
                _graph = context.Runtime.LoadModel(list);
            }
            else
            {
                foreach (DeviceOp op in _program)
                {
                    context.Runtime.LoadOperator(op.Operator);
                }
            }
        }
        catch
        {
            Dispose(true);
            throw;
        }
    }

    /// <summary>Most rows (flattened leading dimensions) one device pass takes; larger inputs run in chunks.</summary>
    public int MaxBatchRows { get; }

    /// <inheritdoc />
    public override IReadOnlyList<string> Operators => _program.Select(o => o.Operator).ToArray();

    /// <summary>Runs the compiled chain on a host tensor: float32 [..., in_features] (or int64/int32 ids when the chain starts with an Embedding).</summary>
    public Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        long[] outShape = CheckInput(input.shape, input.dtype);
        Context.CheckHostRead($"output [{string.Join(", ", outShape)}] of a compiled module");
        using Tensor host = input.detach().cpu().contiguous();
        long rows = RowsOf(input.shape);
        var result = new float[rows * _outWidth];
        byte[] inputBytes = _idsInput ? IdsToInt32(host) : host.bytes.ToArray();
        lock (_gate)
        {
            long rowBytes = _idsInput ? 4 : _inWidth * 4;
            for (long start = 0; start < rows; start += MaxBatchRows)
            {
                int n = (int)Math.Min(MaxBatchRows, rows - start);
                Context.Runtime.CopyToDevice(inputBytes.AsSpan((int)(start * rowBytes), (int)(n * rowBytes)), _input);
                Run(n);
                Context.Runtime.CopyToHost<float>(_output, 0, result.AsSpan((int)(start * _outWidth), (int)(n * _outWidth)));
            }
        }
        return tensor(result, outShape);
    }

    /// <summary>Runs the compiled chain on a tensor already on the device (same device; ids as int32).</summary>
    public NpuTensor forward(NpuTensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Context != Context)
        {
            throw new ArgumentException($"the input is on {input.device} but the module was compiled for {device}; move it with .cpu().npu(\"{device}\")", nameof(input));
        }
        long[] outShape = CheckInput(input.shape, input.dtype);
        if (_idsInput && input.dtype != ScalarType.Int32)
        {
            throw new ArgumentException($"token ids on the device must be int32 (the embedding kernel's index type), got {input.dtype}; convert with .to(int32) before .npu()", nameof(input));
        }
        long rows = RowsOf(input.shape);
        NpuRuntime runtime = Context.Runtime;
        runtime.Driver.Synchronize(input.Stream);
        NpuTensor output = NpuTensor.Empty(Context, outShape, ScalarType.Float32);
        long rowBytes = _idsInput ? 4 : _inWidth * 4, outRowBytes = _outWidth * 4;
        lock (_gate)
        {
            for (long start = 0; start < rows; start += MaxBatchRows)
            {
                int n = (int)Math.Min(MaxBatchRows, rows - start);
                runtime.CopyOnDevice(input.Buffer.Address + (ulong)(start * rowBytes), _input.Address, n * rowBytes);
                Run(n);
                runtime.CopyOnDevice(_output.Address, output.Buffer.Address + (ulong)(start * outRowBytes), n * outRowBytes);
            }
            runtime.DefaultStream.Synchronize();
        }
        return output;
    }

    /// <summary>Same as <see cref="forward(Tensor)"/>.</summary>
    public Tensor call(Tensor input) => forward(input);

    internal static NpuSequentialModule Compile(nn.Module module, NpuCompileOptions options, NpuDeviceContext context, ExecutionMode mode)
    {
        var stages = new List<(string, nn.Module)>();
        Flatten(module, "", stages, isRoot: true);
        var compiled = new NpuSequentialModule(context, mode, stages, options);
        if (options.SelfCheck)
        {
            try
            {
                compiled.RunSelfCheck(module, options);
            }
            catch
            {
                compiled.Dispose();
                throw;
            }
        }
        return compiled;
    }

    private void RunSelfCheck(nn.Module module, NpuCompileOptions options)
    {
        var random = new Random(options.ProbeSeed);
        long[] shape = _idsInput ? [2, 3] : [2, 3, _inWidth];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor probe = _idsInput
            ? tensor(Enumerable.Range(0, 6).Select(_ => (long)random.NextInt64(_vocab)).ToArray(), shape)
            : tensor(Enumerable.Range(0, (int)(6 * _inWidth)).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray(), shape);
        Tensor expected = ReferenceForward(module, probe).to_type(ScalarType.Float32).contiguous();
        Tensor actual = forward(probe);
        if (!expected.shape.SequenceEqual(actual.shape))
        {
            throw new NpuSelfCheckException($"self-check: the module's forward returns shape [{string.Join(", ", expected.shape)}] but the compiled program returns [{string.Join(", ", actual.shape)}]; the chain is not what the compiler assumed", double.PositiveInfinity, 0);
        }
        double tolerance = options.SelfCheckTolerance ?? 1e-3;
        double diff = MaxAbsDifference(expected.data<float>().ToArray(), actual.data<float>().ToArray());
        SelfCheckMaxDifference = diff;
        if (!(diff <= tolerance))
        {
            throw new NpuSelfCheckException($"self-check failed: on probe inputs the NPU result differs from the module's CPU forward by up to {diff:g4}, above the tolerance {tolerance:g4}. The module does not compute what the compiler lowered it to; check custom forward logic, or raise NpuCompileOptions.SelfCheckTolerance if the difference is expected rounding", diff, tolerance);
        }
    }

    private static Tensor ReferenceForward(nn.Module module, Tensor input)
    {
        if (module is nn.Module<Tensor, Tensor> m)
        {
            return m.call(input);
        }
        Tensor x = input;
        foreach (var (_, child) in module.named_children())
        {
            x = ((nn.Module<Tensor, Tensor>)child).call(x);
        }
        return x;
    }

    private static void Flatten(nn.Module module, string path, List<(string, nn.Module)> stages, bool isRoot)
    {
        bool isModuleList = module.GetType().IsGenericType && module.GetType().GetGenericTypeDefinition() == typeof(ModuleList<>);
        if (module is Sequential || (isModuleList && isRoot))
        {
            foreach (var (name, child) in module.named_children())
            {
                if (isModuleList && child is not nn.Module<Tensor, Tensor>)
                {
                    throw Unsupported(Join(path, name), child, "a ModuleList is run as a chain, so each entry must map one tensor to one tensor");
                }
                Flatten(child, Join(path, name), stages, isRoot: false);
            }
            return;
        }
        switch (module)
        {
            case Linear or Embedding or LayerNorm or ReLU or SiLU or GELU or Softmax or Identity:
                stages.Add((path, module));
                return;
            case Dropout when module.training:
                throw Unsupported(path, module, "Dropout is in training mode, where it zeroes random elements; call module.eval() before compiling (in eval mode it is the identity)");
            case Dropout:
                stages.Add((path, module));
                return;
            default:
                throw Unsupported(path, module, isModuleList
                    ? "a ModuleList inside another module is run by that module's forward, which the compiler cannot see"
                    : "the compiler has no lowering for this module type");
        }
    }

    private static long InputWidth(List<(string Path, nn.Module Module)> stages, NpuCompileOptions options)
    {
        foreach (var (_, module) in stages)
        {
            switch (module)
            {
                case Linear l: return l.in_features;
                case LayerNorm n: return n.normalized_shape[^1];
            }
        }
        return options.InputFeatures
            ?? throw new NpuCompileException("no module in the chain fixes the input width (it has no Linear or LayerNorm); set NpuCompileOptions.InputFeatures to the size of the input's last dimension");
    }

    private static long OutputWidth(string path, nn.Module module, long width)
    {
        switch (module)
        {
            case Linear l:
                if (l.in_features != width)
                {
                    throw Unsupported(path, module, $"it takes {l.in_features} features but the previous module produces {width}");
                }
                return l.out_features;
            case Embedding e:
                return e.weight!.shape[1];
            case LayerNorm n:
                if (n.normalized_shape.Length != 1 || n.normalized_shape[0] != width)
                {
                    throw Unsupported(path, module, $"it normalises over [{string.Join(", ", n.normalized_shape)}] but the device LayerNorm normalises the last dimension of size {width}");
                }
                return width;
            default:
                return width;
        }
    }

    private long Emit(string path, nn.Module module, DeviceBuffer x, DeviceBuffer y, long width)
    {
        KernelArgument A(DeviceBuffer b) => b.AsArgument();
        void Op(string name, KernelArgument[] args, params KernelScalar[] scalars) => _program.Add(new DeviceOp(name, args, scalars));
        KernelScalar Rows() => Slot(1);
        switch (module)
        {
            case Linear l:
            {
                DeviceBuffer weight = Upload(l.weight!, keepHalf: true, out long dtype);
                KernelArgument bias = l.bias is null ? KernelArgument.None : A(Upload(l.bias, keepHalf: false, out _));
                Op("linear", [A(x), A(weight), bias, A(y)], Rows(), KernelScalar.Of(width), KernelScalar.Of(l.out_features), KernelScalar.Of(dtype));
                return l.out_features;
            }
            case Embedding e:
            {
                DeviceBuffer table = Upload(e.weight!, keepHalf: true, out long dtype);
                long dim = e.weight!.shape[1];
                Op("embedding", [A(table), A(x), A(y)], Rows(), KernelScalar.Of(_vocab), KernelScalar.Of(dim), KernelScalar.Of(dtype));
                return dim;
            }
            case LayerNorm n:
            {
                using var ones = torch.ones(width);
                using var zeros = torch.zeros(width);
                DeviceBuffer weight = Upload(n.weight ?? ones, keepHalf: false, out _);
                DeviceBuffer bias = Upload(n.bias ?? zeros, keepHalf: false, out _);
                Op("layer_norm", [A(x), A(weight), A(bias), A(y)], Rows(), KernelScalar.Of(width), KernelScalar.Of(n.eps));
                return width;
            }
            case ReLU:
                Op("relu", [A(x), A(y)], Slot(width));
                return width;
            case SiLU:
                Op("silu", [A(x), A(y)], Slot(width));
                return width;
            case GELU g:
                Op(g.approximate == GELU.Approximate.tanh ? "gelu_tanh" : "gelu", [A(x), A(y)], Slot(width));
                return width;
            case Softmax s:
                if (s.dim >= 0)
                {
                    _softmaxDims.Add((path, s.dim));
                }
                else if (s.dim != -1)
                {
                    throw Unsupported(path, module, $"Softmax(dim={s.dim}) reduces over a dimension other than the last; the device kernel reduces over the last only");
                }
                Op("softmax", [A(x), A(y)], Rows(), KernelScalar.Of(width));
                return width;
            default:
                throw Unsupported(path, module, "the compiler has no lowering for this module type");
        }
    }

    // Until the parameter block exists, a slot reference is a device scalar whose value is the slot number.
    private KernelScalar Slot(long width) => new(ScalarSource.DeviceMemory, (ulong)SlotFor(width));

    private int SlotFor(long width)
    {
        if (!_slots.TryGetValue(width, out int slot))
        {
            _slots[width] = slot = _slots.Count;
        }
        return slot;
    }

    private KernelScalar BindSlot(KernelScalar s) =>
        s.Source == ScalarSource.DeviceMemory ? KernelScalar.FromDevice(_params.Address + s.Value * 8) : s;

    private void Run(int rows)
    {
        foreach (var (width, slot) in _slots)
        {
            _paramValues[slot] = rows * width;
        }
        NpuRuntime runtime = Context.Runtime;
        runtime.CopyToDevice<long>(_paramValues, _params);
        if (_graph is not null)
        {
            runtime.ExecuteModel(_graph);
        }
        else
        {
            foreach (DeviceOp op in _program)
            {
                runtime.Execute(op.Operator, op.Args, op.Scalars);
            }
        }
        runtime.DefaultStream.Synchronize();
    }

    private long[] CheckInput(long[] shape, ScalarType dtype)
    {
        if (_idsInput)
        {
            if (dtype is not (ScalarType.Int64 or ScalarType.Int32))
            {
                throw new ArgumentException($"the compiled module starts with an Embedding and takes int64 or int32 token ids, got {dtype}");
            }
        }
        else
        {
            if (dtype != ScalarType.Float32)
            {
                throw new ArgumentException($"the compiled module takes float32 input, got {dtype}; convert with .to(float32)");
            }
            if (shape.Length == 0 || shape[^1] != _inWidth)
            {
                throw new ArgumentException($"the compiled module takes [..., {_inWidth}] input, got [{string.Join(", ", shape)}]");
            }
        }
        long[] outShape = _idsInput ? [.. shape, _outWidth] : [.. shape[..^1], _outWidth];
        foreach (var (path, dim) in _softmaxDims)
        {
            if (dim != outShape.Length - 1)
            {
                throw new ArgumentException($"Softmax at '{path}' has dim={dim} but on this {outShape.Length}-d input that is not the last dimension, and the device kernel reduces over the last only");
            }
        }
        if (RowsOf(shape) == 0)
        {
            throw new ArgumentException("the input is empty");
        }
        return outShape;
    }

    private long RowsOf(long[] shape) => _idsInput ? NpuTensor.NumElements(shape) : NpuTensor.NumElements(shape) / _inWidth;

    private byte[] IdsToInt32(Tensor ids)
    {
        long[] values = ids.to_type(ScalarType.Int64).data<long>().ToArray();
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            if ((ulong)values[i] >= (ulong)_vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {values[i]} at flat index {i} is outside the embedding's {_vocab} rows");
            }
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), (int)values[i]);
        }
        return bytes;
    }

    private DeviceBuffer Allocate(long bytes)
    {
        DeviceBuffer b = Context.Allocator.Allocate(Math.Max(bytes, 8), 0);
        _owned.Add(b);
        return b;
    }

    private DeviceBuffer Upload(Tensor parameter, bool keepHalf, out long dtypeCode)
    {
        using var scope = NewDisposeScope();
        Tensor t = parameter.detach().cpu();
        (t, dtypeCode) = t.dtype switch
        {
            ScalarType.Float16 when keepHalf => (t, (long)WeightPrecision.F16),
            ScalarType.BFloat16 when keepHalf => (t, (long)WeightPrecision.BF16),
            _ => (t.to_type(ScalarType.Float32), (long)WeightPrecision.F32),
        };
        t = t.contiguous();
        DeviceBuffer buffer = Allocate(t.bytes.Length);
        Context.Runtime.CopyToDevice(t.bytes, buffer);
        return buffer;
    }

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    internal static NpuCompileException Unsupported(string path, nn.Module module, string why) =>
        new(path, module.GetType().Name,
            $"cannot compile module '{(path.Length == 0 ? "<root>" : path)}' of type {module.GetType().Name} for the NPU: {why}. Supported: {SupportedModules}.");

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (_graph is not null)
        {
            Context.Runtime.UnloadModel(_graph);
        }
        foreach (DeviceBuffer b in _owned)
        {
            Context.Allocator.Release(b, 0);
        }
        _owned.Clear();
    }
}
