namespace AscendCC.Runtime.Chat;

/// <summary>
/// A chat template that cannot be parsed or rendered: a syntax error, an unknown filter or test, an
/// operation on values of the wrong kind. The message names the template's source and, when known,
/// the line and column in the template text.
/// </summary>
public class ChatTemplateException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ChatTemplateException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public ChatTemplateException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ChatTemplateException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for a problem at a place in the template.</summary>
    /// <param name="source">What the template came from (a file, or "chat template").</param>
    /// <param name="line">1-based line in the template text.</param>
    /// <param name="column">1-based column in the template text.</param>
    /// <param name="problem">What is wrong.</param>
    public ChatTemplateException(string source, int line, int column, string problem)
        : base($"{source}: line {line}, column {column}: {problem}")
    {
        Source = source;
        Line = line;
        Column = column;
        Problem = problem;
    }

    /// <summary>1-based line of the problem in the template text; 0 when not tied to a place.</summary>
    public int Line { get; }

    /// <summary>1-based column of the problem in the template text; 0 when not tied to a place.</summary>
    public int Column { get; }

    /// <summary>What is wrong, without the source and position.</summary>
    public string? Problem { get; }
}
