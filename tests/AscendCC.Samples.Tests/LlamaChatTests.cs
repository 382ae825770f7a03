using System.Text;
using AscendCC.Runtime.Models;
using AscendCC.Tests;
using LlamaChat;
using LlamaChat.Demo;
using NUnit.Framework;

namespace AscendCC.Samples.Tests;

/// <summary>LlamaChat's main entry, in process, as a user runs it.</summary>
public class LlamaChatTests
{
    private static (int Exit, string Stdout, string Stderr) RunChat(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = ChatApp.Run(args, stdout, stderr, new StringReader(""));
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Test]
    public void OneShotConfidentialReplyReproducesLlama2cAndTheTranscriptHoldsNoText()
    {
        string folder = TestData.RequireModel("stories260K");
        string reference = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"));
        const string prompt = "Once upon a time";
        Assert.That(reference, Does.StartWith(prompt));
        string expectedReply = reference[prompt.Length..];
        // llama2.c's "-n 64" counts positions including the prompt, so its reference continuation is
        // the 60 tokens listed in tokens.txt; --max-tokens counts new tokens only.
        int generated = File.ReadLines(Path.Combine(folder, "reference", "once_upon_a_time.tokens.txt"))
            .First(l => l.StartsWith("generated_tokens", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries).Length - 1;
        string transcript = Path.Combine(Path.GetTempPath(), $"llamachat-transcript-{Guid.NewGuid():N}.bin");
        try
        {
            var (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", prompt, "--temperature", "0", "--max-tokens", generated.ToString(System.Globalization.CultureInfo.InvariantCulture), "--transcript", transcript);
            Assert.That(exit, Is.EqualTo(0), stderr);
            Assert.That(stdout.TrimEnd('\n'), Is.EqualTo(expectedReply));
            // The evidence went to stderr: each party's step, every verifier check, the measurements.
            Assert.That(stderr, Does.Contain("PASS").And.Contain("KeyBinding").And.Contain("manifest digest").And.Contain("graph measurement"));
            Assert.That(stderr, Does.Not.Contain("FAIL"));

            byte[] bytes = File.ReadAllBytes(transcript);
            Assert.That(bytes, Has.Length.GreaterThan(100_000), "the transcript records the package, task buffers and relayed records");
            string asLatin1 = Encoding.Latin1.GetString(bytes);
            Assert.That(asLatin1, Does.Not.Contain(prompt));
            Assert.That(asLatin1, Does.Not.Contain("Once upon"));
            Assert.That(asLatin1, Does.Not.Contain("little girl named Lily"));
            Assert.That(asLatin1, Does.Not.Contain(expectedReply.Trim()[..20]));
            // UTF-16 too, in case anything ever copied a .NET string into a host buffer.
            Assert.That(Encoding.Unicode.GetString(bytes.AsSpan(0, bytes.Length & ~1)), Does.Not.Contain("Once upon"));
        }
        finally
        {
            File.Delete(transcript);
        }
    }

    [Test]
    public void MissingModelPathIsAClearErrorWithExitCode1()
    {
        var (exit, stdout, stderr) = RunChat("--model", "/nonexistent/model-folder", "--prompt", "hi");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr, Does.Contain("model not found").And.Contain("/nonexistent/model-folder"));
    }

    [Test]
    public void UnknownArchitectureIsAClearErrorWithExitCode1()
    {
        string folder = Directory.CreateTempSubdirectory("llamachat-gpt2-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(folder, "config.json"), """{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","n_embd":64,"n_layer":2,"n_head":2,"vocab_size":100}""");
            var (exit, _, stderr) = RunChat("--model", folder, "--prompt", "hi");
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("GPT2LMHeadModel"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void PromptLongerThanTheContextIsRefused()
    {
        string folder = TestData.RequireModel("stories260K");
        string prompt = string.Join(' ', Enumerable.Repeat("Lily had a big red ball.", 80));
        var (exit, stdout, stderr) = RunChat("--model", folder, "--prompt", prompt, "--max-tokens", "4");
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr, Does.Contain("the context holds"));
    }

    [Test]
    public void LlamaCBinWithoutTokenizerInItsFolderAsksForTokenizer()
    {
        string folder = TestData.RequireModel("stories260K");
        string lonely = Directory.CreateTempSubdirectory("llamachat-bin-").FullName;
        try
        {
            File.Copy(Path.Combine(folder, "stories260K.bin"), Path.Combine(lonely, "stories260K.bin"));
            var (exit, _, stderr) = RunChat("--model", Path.Combine(lonely, "stories260K.bin"), "--prompt", "hi");
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("--tokenizer"));
        }
        finally
        {
            Directory.Delete(lonely, recursive: true);
        }
    }

    [Test]
    public void NoCcEagerOnTheLlama2cBinGivesTheSameGreedyReply()
    {
        string folder = TestData.RequireModel("stories260K");
        var (exit, stdout, stderr) = RunChat("--model", Path.Combine(folder, "stories260K.bin"), "--tokenizer", Path.Combine(folder, "tok512.bin"),
            "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20", "--no-cc", "--mode", "eager");
        Assert.That(exit, Is.EqualTo(0), stderr);
        string reference = File.ReadAllText(Path.Combine(folder, "reference", "once_upon_a_time.text.txt"))["Once upon a time".Length..];
        Assert.That(reference, Does.StartWith(stdout.TrimEnd('\n')));
        Assert.That(stdout.Trim(), Has.Length.GreaterThan(40));
    }

    [Test]
    public void AttackListShowsTheCatalogAndAnAttackRunsBlocked()
    {
        var (exit, stdout, stderr) = RunChat("--attack", "list");
        Assert.That(exit, Is.EqualTo(0), stderr);
        string listing = stdout + stderr;
        int listed = AscendCC.Attacks.AttackCatalog.All.Count(a => listing.Contains(a.Name, StringComparison.Ordinal));
        Assert.That(listed, Is.GreaterThanOrEqualTo(10), listing);

        (exit, stdout, stderr) = RunChat("--attack", "R3_D2HFromWeights");
        Assert.That(exit, Is.EqualTo(0), stdout + stderr);
        Assert.That(stdout + stderr, Does.Contain("blocked").And.Contain("R3"));

        Assert.That(RunChat("--attack", "NoSuchAttack").Exit, Is.EqualTo(1));
    }

    [Test]
    public void BadSamplingOptionsAreRefused()
    {
        Assert.That(RunChat("--prompt", "x", "--top-p", "1.5").Exit, Is.EqualTo(1));
        Assert.That(RunChat("--prompt", "x", "--max-tokens", "0").Exit, Is.EqualTo(1));
        Assert.That(RunChat("--prompt", "x", "--mode", "turbo").Exit, Is.Not.EqualTo(0));
    }

    [Test]
    public void DemoTrainingSmokeWritesACheckpointTheRuntimeOpens()
    {
        // Tiny settings: this checks the training step and the files, not the demo's quality.
        var settings = new DemoTrainingSettings(Documents: 200, Steps: 3, BatchSize: 2, SequenceLength: 32, Hidden: 32, Intermediate: 48, Layers: 1, Heads: 4, KvHeads: 2, MaxPositions: 64);
        string folder = Directory.CreateTempSubdirectory("llamachat-demo-smoke-").FullName;
        try
        {
            var seen = new List<TrainingProgress>();
            (_, double loss) = DemoTrainer.Train(settings, folder, new SyncProgress(seen.Add));
            Assert.That(seen.Select(p => p.Step), Is.EqualTo(new[] { 1, 2, 3 }));
            Assert.That(double.IsFinite(loss), Is.True);
            using LlamaCheckpoint checkpoint = LlamaCheckpoint.Open(folder);
            Assert.That(checkpoint.Config.NumKeyValueHeads, Is.EqualTo(2));
            Assert.That(checkpoint.Config.TieWordEmbeddings, Is.True);
            Assert.That(checkpoint.TensorNames, Does.Contain("model.layers.0.self_attn.q_proj.weight").And.Contain("model.embed_tokens.weight"));
            TextTokenizer tokenizer = TextTokenizer.Load(folder);
            const string text = "Q: What does the cow say?\nA: The cow says moo.";
            IReadOnlyList<int> ids = tokenizer.Encode(text, addBos: true);
            Assert.That(ids[0], Is.EqualTo(DemoTokenizer.Bos));
            Assert.That(ids, Has.Count.EqualTo(text.Length + 1), "one token per character");
            Assert.That(tokenizer.Decode(ids), Is.EqualTo(text));
            Assert.That(tokenizer.Decode(tokenizer.Encode("naïve ☃", addBos: false)), Is.EqualTo("naïve ☃"), "characters outside the corpus go through byte fallback");

            // Same settings, same bytes: the cache key (the settings' hash) names one model.
            string again = Directory.CreateTempSubdirectory("llamachat-demo-smoke-").FullName;
            try
            {
                DemoTrainer.Train(settings, again);
                Assert.That(File.ReadAllBytes(Path.Combine(again, "model.safetensors")), Is.EqualTo(File.ReadAllBytes(Path.Combine(folder, "model.safetensors"))));
            }
            finally
            {
                Directory.Delete(again, recursive: true);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void CorpusIsDeterministic()
    {
        Assert.That(DemoCorpus.Generate(7, 50), Is.EqualTo(DemoCorpus.Generate(7, 50)));
        Assert.That(DemoTrainingSettings.Default.Hash(), Is.EqualTo(new DemoTrainingSettings().Hash()));
        Assert.That(DemoTrainingSettings.Default.Hash(), Is.Not.EqualTo((DemoTrainingSettings.Default with { Steps = 1 }).Hash()));
    }

    private sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
