using AscendCC.ProviderTool;
using AscendCC.Server.Tests;
using AscendCC.Tests;
using LlamaChat;
using NUnit.Framework;

namespace AscendCC.Samples.Tests;

/// <summary>
/// <c>LlamaChat --server</c>: the same chat with only the data owner's side here. A server process
/// (its development factory publishes the manufacturer's files) has stories260K deployed by the
/// provider tool; LlamaChat, given the model's folder for its tokenizer, those files and the
/// published measurement, prints llama2.c's reference story; requiring another model, or a server
/// that is not there, is one error line and exit 1.
/// </summary>
[NonParallelizable]
public sealed class LlamaChatServerTests
{
    private static (int Exit, string Stdout, string Stderr) RunChat(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = ChatApp.Run(args, stdout, stderr, new StringReader(""));
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Test]
    public async Task The_data_owners_side_alone_gets_the_reference_story_from_a_remote_server()
    {
        string folder = TestData.RequireModel("stories260K");
        string reference = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"));
        string store = Path.Combine(Path.GetTempPath(), "ascendcc-llamachat-server-" + Guid.NewGuid().ToString("N"));
        try
        {
            using ServerProcess server = await ServerProcess.StartAsync("--Npu:Simulate=true", "--Npu:DeviceCount=1", $"--Npu:ModelStore={store}", $"--Npu:HbmCapacity={64L << 20}");
            string manufacturer = Path.Combine(store, "manufacturer");
            var deployOut = new StringWriter();
            var deployErr = new StringWriter();
            int deployed = await ProviderCommand.Create(deployOut, deployErr).Parse(["deploy", folder, "--server", server.Address.ToString(), "--manufacturer", manufacturer, "--ctx-size", "128"]).InvokeAsync();
            Assert.That(deployed, Is.EqualTo(0), deployErr.ToString());
            string measurement = deployOut.ToString().Trim();

            string[] common = ["--model", folder, "--server", server.Address.ToString(), "--manufacturer", manufacturer, "--prompt", "Once upon a time", "-t", "0", "-n", "64", "--ctx-size", "128"];
            var (exit, stdout, stderr) = RunChat([.. common, "--require-model", measurement]);
            Assert.That(exit, Is.EqualTo(0), stderr);
            Assert.That(stdout.TrimEnd('\n'), Is.EqualTo(reference.TrimEnd('\n')), "llama2.c's greedy story, token for token, through the remote NPU");
            Assert.That(stderr, Does.Contain("data owner").And.Contain("policy satisfied"), "the data owner's own attestation of the remote NPU is shown");

            // Requiring another model: the device refuses to answer, and LlamaChat says so in one line.
            string other = new('A', 96);
            (exit, stdout, stderr) = RunChat([.. common, "--require-model", other]);
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stdout.Trim(), Is.EqualTo("Once upon a time"), "raw completion echoes the prompt first, as llama2.c does; no token of a reply follows");
            Assert.That(stderr, Does.Contain("error:").And.Contain("requires another model"));
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    [Test]
    public void A_missing_companion_option_or_an_unreachable_server_is_one_error_line()
    {
        string folder = TestData.RequireModel("stories260K");
        var (exit, stdout, stderr) = RunChat("--model", folder, "--server", "http://127.0.0.1:9", "--prompt", "x");
        Assert.That((exit, stdout), Is.EqualTo((1, "")));
        Assert.That(stderr, Does.Contain("--server needs --manufacturer"));

        (exit, _, stderr) = RunChat("--model", folder, "--manufacturer", folder, "--prompt", "x");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("go with --server URL"));

        (exit, _, stderr) = RunChat("--model", folder, "--server", "http://127.0.0.1:9", "--manufacturer", folder, "--require-model", "abc", "--prompt", "x");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("--require-model must be the model's 48-byte graph measurement"));
    }
}
