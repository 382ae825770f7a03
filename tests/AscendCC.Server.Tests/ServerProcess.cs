using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace AscendCC.Server.Tests;

/// <summary>
/// The server as its own operating-system process (<c>dotnet AscendCC.Server.dll</c>) on a free
/// localhost port, as a cloud runs it: the tests reach it only over real HTTP and can kill it.
/// </summary>
internal sealed partial class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ServerProcess(Process process)
    {
        _process = process;
    }

    /// <summary>Where Kestrel listens (http://127.0.0.1:port/).</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>Everything the server wrote to stdout and stderr so far (its log).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex Listening();

    /// <summary>Starts the server with <paramref name="settings"/> (command-line configuration) and waits until it listens.</summary>
    public static async Task<ServerProcess> StartAsync(params string[] settings)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "AscendCC.Server.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add("http://127.0.0.1:0");
        foreach (string s in settings)
        {
            start.ArgumentList.Add(s);
        }
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["Logging__Console__FormatterName"] = "simple";
        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var server = new ServerProcess(process);
        void Line(string? line)
        {
            if (line is null)
            {
                return;
            }
            lock (server._output)
            {
                server._output.AppendLine(line);
            }
            if (Listening().Match(line) is { Success: true } m)
            {
                listening.TrySetResult(new Uri(m.Groups[1].Value.TrimEnd('/') + "/"));
            }
        }
        process.OutputDataReceived += (_, e) => Line(e.Data);
        process.ErrorDataReceived += (_, e) => Line(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Task exited = process.WaitForExitAsync();
        Task done = await Task.WhenAny(listening.Task, exited, Task.Delay(TimeSpan.FromSeconds(120)));
        if (done != listening.Task)
        {
            string why = done == exited ? $"exited with code {process.ExitCode}" : "did not listen within 120 s";
            server.Dispose();
            throw new InvalidOperationException($"the server process {why}:\n{server.Output}");
        }
        server.Address = await listening.Task;
        return server;
    }

    /// <summary>Kills the process at once (SIGKILL: no graceful shutdown, nothing flushed).</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
    }

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
