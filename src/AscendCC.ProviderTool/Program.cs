namespace AscendCC.ProviderTool;

/// <summary>The tool's entry point.</summary>
internal static class ProviderProgram
{
    public static Task<int> Main(string[] args) => ProviderCommand.Create(Console.Out, Console.Error).Parse(args).InvokeAsync();
}
