using AscendCC.Device;
using AscendCC.Runtime.Acl;

namespace AscendCC.Runtime.Programs;

/// <summary>
/// A program bound to one device: an HBM region per buffer, and the launches translated to device
/// addresses. Runs the program eagerly (one compileAndExecute per launch) or as a loaded model.
/// </summary>
public sealed class ProgramBinding : IDisposable
{
    private readonly NpuRuntime _runtime;
    private readonly DeviceBuffer[] _regions;
    // False for regions borrowed from another binding: that binding frees them, not this one.
    private readonly bool[] _owned;
    private readonly (string Op, KernelArgument[] Args, KernelScalar[] Scalars)[] _launches;
    private LoadedModelHandle? _model;

    /// <summary>
    /// Allocates a region for every buffer (weights filled afterwards by the caller) and translates
    /// the launches. <paramref name="allocate"/> may supply a region for a buffer (for example one a
    /// package unlock filled); returning null allocates a fresh one. Regions from either callback
    /// are disposed with this binding except those <paramref name="borrow"/> supplies: they belong to
    /// another binding (for example a second program over the same weights and KV cache), which must
    /// outlive this one.
    /// </summary>
    public ProgramBinding(NpuRuntime runtime, DeviceProgram program, Func<ProgramBuffer, DeviceBuffer?>? allocate = null, Func<ProgramBuffer, DeviceBuffer?>? borrow = null)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(program);
        _runtime = runtime;
        Program = program;
        _regions = new DeviceBuffer[program.Buffers.Count];
        _owned = new bool[program.Buffers.Count];
        try
        {
            foreach (ProgramBuffer b in program.Buffers)
            {
                if (borrow?.Invoke(b) is { } shared)
                {
                    _regions[b.Id] = shared;
                    continue;
                }
                _owned[b.Id] = true;
                _regions[b.Id] = allocate?.Invoke(b) ?? runtime.Allocate(b.Bytes, b.Tag);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        _launches = program.Ops.Select(op => (op.Operator,
            op.Args.Select(a => a.Buffer is null ? KernelArgument.None : new KernelArgument(_regions[a.Buffer.Id].Address + (ulong)a.Offset, a.Bytes)).ToArray(),
            op.Scalars.Select(s => s.Buffer is null ? new KernelScalar(ScalarSource.Immediate, s.Value) : KernelScalar.FromDevice(_regions[s.Buffer.Id].Address + (ulong)s.Offset)).ToArray())).ToArray();
        foreach (string op in program.Ops.Select(o => o.Operator).Distinct())
        {
            runtime.LoadOperator(op);
        }
    }

    /// <summary>The program.</summary>
    public DeviceProgram Program { get; }

    /// <summary>The region bound to <paramref name="buffer"/>.</summary>
    public DeviceBuffer this[ProgramBuffer buffer] => _regions[(buffer ?? throw new ArgumentNullException(nameof(buffer))).Id];

    /// <summary>Loads the program as a model (graph mode); idempotent.</summary>
    public LoadedModelHandle LoadModel()
    {
        if (_model is null)
        {
            ModelTaskList list = _runtime.CreateTaskList();
            foreach (var (op, args, scalars) in _launches)
            {
                list.Launch(op, args, scalars);
            }
            _model = _runtime.LoadModel(list);
        }
        return _model;
    }

    /// <summary>
    /// Queues one run: executeModel when loaded as a model (unless <paramref name="eager"/>), else
    /// every launch on its own (compileAndExecute).
    /// </summary>
    public void Run(NpuStream? stream = null, bool eager = false)
    {
        if (_model is not null && !eager)
        {
            _runtime.ExecuteModel(_model, stream);
            return;
        }
        foreach (var (op, args, scalars) in _launches)
        {
            _runtime.Execute(op, args, scalars, stream);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_model is not null)
        {
            _runtime.UnloadModel(_model);
            _model = null;
        }
        foreach (DeviceBuffer? r in _regions.Where((_, i) => _owned[i]).Distinct())
        {
            r?.Dispose();
        }
    }
}
