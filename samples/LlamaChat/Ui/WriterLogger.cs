using Microsoft.Extensions.Logging;

namespace LlamaChat.Ui;

/// <summary>
/// Logs to a given <see cref="TextWriter"/>, one line per entry ("info: LlamaChat: ..."), instead of
/// the console provider's hard-wired process stderr: <see cref="ChatApp.Run"/> takes its streams as
/// arguments, and diagnostics must go where the caller pointed stderr (a pipe, a file, a test).
/// </summary>
internal sealed class WriterLoggerProvider(TextWriter writer, LogLevel minimum) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new WriterLogger(writer, minimum, categoryName);

    public void Dispose()
    {
    }

    private sealed class WriterLogger(TextWriter writer, LogLevel minimum, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }
            string line = $"{Label(logLevel)}: {category}: {formatter(state, exception)}";
            if (exception is not null)
            {
                line += Environment.NewLine + exception;
            }
            // One Write per entry: the writer is synchronized, so an entry never interleaves with UI output.
            writer.Write(line + Environment.NewLine);
            writer.Flush();
        }

        private static string Label(LogLevel level) => level switch
        {
            LogLevel.Trace => "trce",
            LogLevel.Debug => "dbug",
            LogLevel.Information => "info",
            LogLevel.Warning => "warn",
            LogLevel.Error => "fail",
            _ => "crit",
        };
    }
}
