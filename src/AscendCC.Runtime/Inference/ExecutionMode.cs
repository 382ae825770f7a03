namespace AscendCC.Runtime.Inference;

/// <summary>How a program reaches the device.</summary>
public enum ExecutionMode
{
    /// <summary>Each operator is a one-op graph sent on its own (compileAndExecute).</summary>
    Eager,
    /// <summary>The whole task list is loaded once and run with executeModel.</summary>
    Graph,
}
