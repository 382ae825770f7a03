namespace AscendCC.Device.Operators;

/// <summary>Common plumbing of the built-in operators: identity, argument names and outputs.</summary>
internal abstract class OperatorBase : IOperator
{
    protected OperatorBase(string name, string signature, string[] arguments, int[] outputs, int scalarCount, ExecutionUnit unit = ExecutionUnit.AiCore, uint abi = 1)
    {
        Name = name;
        Signature = signature;
        ArgumentNames = arguments;
        Outputs = outputs;
        ScalarCount = scalarCount;
        Unit = unit;
        Abi = abi;
    }

    public string Name { get; }

    public uint Abi { get; }

    public ExecutionUnit Unit { get; }

    public string Signature { get; }

    public IReadOnlyList<string> ArgumentNames { get; }

    public IReadOnlyList<int> Outputs { get; }

    public int ScalarCount { get; }

    public abstract void Execute(ref KernelContext context);

    /// <summary>Reads an element-type scalar.</summary>
    protected static Kernels.ElementType ElementTypeOf(ref KernelContext c, int i) =>
        (Kernels.ElementType)c.Int(i, "dtype", 0, (int)Kernels.ElementType.Q4_KPanels);
}
