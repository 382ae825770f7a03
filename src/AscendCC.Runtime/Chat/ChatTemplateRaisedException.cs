namespace AscendCC.Runtime.Chat;

/// <summary>
/// The template itself refused the conversation with <c>raise_exception('...')</c> (e.g. Gemma's
/// "Conversation roles must alternate user/assistant/user/assistant/..."); <see cref="TemplateMessage"/>
/// is the template's own words.
/// </summary>
public sealed class ChatTemplateRaisedException : ChatTemplateException
{
    /// <summary>Creates the exception.</summary>
    public ChatTemplateRaisedException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public ChatTemplateRaisedException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ChatTemplateRaisedException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for a <c>raise_exception</c> call at a place in the template.</summary>
    public ChatTemplateRaisedException(string source, int line, int column, string templateMessage)
        : base(source, line, column, $"the template refused the conversation: {templateMessage}")
    {
        TemplateMessage = templateMessage;
    }

    /// <summary>The message the template passed to <c>raise_exception</c>.</summary>
    public string TemplateMessage { get; } = "";
}
