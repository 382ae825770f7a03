namespace AscendCC.Runtime.Chat.Jinja;

/// <summary>
/// An error raised while evaluating, without a position: the evaluator adds the line and column of
/// the expression it was evaluating.
/// </summary>
internal sealed class JinjaError(string message) : Exception(message);

/// <summary><c>raise_exception(message)</c> called by the template.</summary>
internal sealed class JinjaRaise(string message) : Exception(message);
