namespace AscendCC.Runtime.Models;

/// <summary>
/// A checkpoint, config or tokenizer file is malformed or does not match what the model needs.
/// The message names the file, the tensor (when one is involved), what is wrong and what to do.
/// </summary>
public sealed class CheckpointFormatException : Exception
{
    /// <summary>Creates the exception with a message only.</summary>
    public CheckpointFormatException()
    {
    }

    /// <summary>Creates the exception with a message only.</summary>
    public CheckpointFormatException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the underlying cause.</summary>
    public CheckpointFormatException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for a file and optionally one tensor in it.</summary>
    /// <param name="filePath">The file that is wrong.</param>
    /// <param name="tensorName">The tensor involved, or null when the problem is file-wide.</param>
    /// <param name="problem">What is wrong.</param>
    /// <param name="remedy">What the caller should do about it.</param>
    /// <param name="innerException">The underlying cause, if any.</param>
    public CheckpointFormatException(string filePath, string? tensorName, string problem, string remedy, Exception? innerException = null)
        : base(Compose(filePath, tensorName, problem, remedy), innerException)
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The file that is wrong, when known.</summary>
    public string? FilePath { get; }

    /// <summary>The tensor involved, when the problem is about one tensor.</summary>
    public string? TensorName { get; }

    private static string Compose(string filePath, string? tensorName, string problem, string remedy) =>
        tensorName is null
            ? $"{filePath}: {problem} {remedy}"
            : $"{filePath}: tensor '{tensorName}': {problem} {remedy}";
}
