namespace LlamaChat;

/// <summary>Entry point.</summary>
public static class Program
{
    /// <summary>Runs LlamaChat on the process's console; returns the exit code.</summary>
    public static int Main(string[] args) => ChatApp.Run(args, Console.Out, Console.Error, Console.In);
}
