using LlamaChat.Ui;

namespace LlamaChat;

/// <summary>Entry point.</summary>
public static class Program
{
    /// <summary>Runs LlamaChat on the process's console; returns the exit code.</summary>
    public static int Main(string[] args)
    {
        var interrupt = new ReplyInterrupt();
        // The first Ctrl-C of a reply stops the reply; any other ends the process as usual.
        Console.CancelKeyPress += (_, e) => e.Cancel = interrupt.Press();
        return ChatApp.Run(args, Console.Out, Console.Error, Console.In, interrupt);
    }
}
