using AscendCC.Device;

namespace AscendCC.Runtime.Driver;

/// <summary>A task failed on the device; <see cref="Completion"/> says which, how and where.</summary>
public class NpuException : Exception
{
    /// <summary>Creates the exception from a failed completion.</summary>
    public NpuException(CompletionEntry completion)
        : base($"{completion.Kind} (task {completion.TaskId}, stream {completion.Stream}) failed: {completion.Status}" +
               (completion.Detail is null ? "" : $": {completion.Detail}"))
    {
        Completion = completion;
    }

    /// <summary>Creates the exception with a message of its own.</summary>
    public NpuException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public NpuException(string message, Exception inner) : base(message, inner)
    {
    }

    /// <summary>The completion queue entry that reported the failure (default when none).</summary>
    public CompletionEntry Completion { get; }

    /// <summary>The device's status code.</summary>
    public CompletionStatus Status => Completion.Status;
}

/// <summary>HBM is exhausted.</summary>
public sealed class NpuOutOfMemoryException : NpuException
{
    /// <summary>Creates the exception from a failed completion.</summary>
    public NpuOutOfMemoryException(CompletionEntry completion) : base(completion)
    {
    }
}
