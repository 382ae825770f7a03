using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using AscendCC.TorchSharpBackend;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// config.json's rope_scaling (linear, llama3, refused others) and sliding_window: parsed with every
/// parameter, validated, and written back by ToJson and by the exporter so the same configuration returns.
/// </summary>
public class RopeScalingConfigTests
{
    private const string Base = "\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 2, " +
        "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 100, \"max_position_embeddings\": 512";

    private static LlamaConfig ParseWith(string extra) => LlamaConfig.Parse("{" + Base + ", " + extra + "}");

    [Test]
    public void Llama3ScalingIsReadWithEveryParameter()
    {
        // Llama 3.1's own rope_scaling block.
        LlamaConfig c = ParseWith("""
            "rope_theta": 500000.0, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"}
            """);
        Assert.That(c.RopeScaling, Is.EqualTo(RopeScaling.Llama3(8, 1, 4, 8192)));
        Assert.That((c.RopeScaling!.Type, c.RopeScaling.Factor, c.RopeScaling.LowFreqFactor, c.RopeScaling.HighFreqFactor, c.RopeScaling.OriginalMaxPositionEmbeddings),
            Is.EqualTo(("llama3", 8.0, 1.0, 4.0, 8192)));
    }

    [Test]
    public void LinearScalingIsReadFromTheOlderTypeKeyToo()
    {
        Assert.That(ParseWith("\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2.5}").RopeScaling, Is.EqualTo(RopeScaling.Linear(2.5)));
        Assert.That(ParseWith("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4}").RopeScaling, Is.EqualTo(RopeScaling.Linear(4)));
        Assert.That(ParseWith("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4}").RopeScaling, Is.Not.EqualTo(RopeScaling.Linear(2)));
    }

    [Test]
    public void NullOrDefaultScalingIsPlainRope()
    {
        Assert.That(ParseWith("\"rope_scaling\": null").RopeScaling, Is.Null);
        Assert.That(ParseWith("\"rope_scaling\": {\"rope_type\": \"default\"}").RopeScaling, Is.Null);
        Assert.That(ParseWith("\"rope_theta\": 10000").RopeScaling, Is.Null);
    }

    [TestCase("dynamic", "\"factor\": 2.0")]
    [TestCase("yarn", "\"factor\": 4.0, \"original_max_position_embeddings\": 4096")]
    [TestCase("longrope", "\"short_factor\": [1.0], \"long_factor\": [2.0]")]
    [TestCase("su", "\"factor\": 2.0")]
    public void AnUnknownScalingTypeIsRefusedNamingItAndWhatIsSupported(string type, string parameters)
    {
        var e = Assert.Throws<CheckpointFormatException>(() => ParseWith($"\"rope_scaling\": {{\"rope_type\": \"{type}\", {parameters}}}"));
        Assert.That(e!.Message, Does.Contain($"rope_scaling type '{type}' is not supported").And.Contain("linear, llama3"));
    }

    [TestCase("{\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1, \"high_freq_factor\": 4}", "lacks the number \"original_max_position_embeddings\"")]
    [TestCase("{\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, \"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}", "high_freq_factor 4 is not above low_freq_factor 4")]
    [TestCase("{\"rope_type\": \"linear\"}", "lacks the number \"factor\"")]
    [TestCase("{\"rope_type\": \"linear\", \"factor\": 0}", "rope_scaling.factor = 0")]
    [TestCase("{\"factor\": 2}", "no \"rope_type\"")]
    [TestCase("\"linear\"", "\"rope_scaling\" is not null or an object")]
    public void MalformedScalingIsRefusedNamingTheField(string scaling, string problem)
    {
        Assert.That(() => ParseWith($"\"rope_scaling\": {scaling}"), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains(problem));
    }

    [Test]
    public void ANegativeSlidingWindowIsRefused()
    {
        Assert.That(() => ParseWith("\"sliding_window\": -1"), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("sliding_window = -1"));
        Assert.That(ParseWith("\"sliding_window\": null").SlidingWindow, Is.Null);
    }

    [TestCase("llama3")]
    [TestCase("linear")]
    public void ToJsonAndTheExporterRoundTripScalingAndWindow(string type)
    {
        LlamaConfig config = ParseWith("\"sliding_window\": 128, \"rope_scaling\": " + (type == "llama3"
            ? "{\"rope_type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1.5, \"high_freq_factor\": 4.25, \"original_max_position_embeddings\": 256}"
            : "{\"rope_type\": \"linear\", \"factor\": 0.1}"));
        Assert.That(config.RopeScaling!.Type, Is.EqualTo(type));

        LlamaConfig again = LlamaConfig.Parse(config.ToJson());
        Assert.That(again with { EosTokenIds = config.EosTokenIds }, Is.EqualTo(config with { ModelType = "llama" }));
        LlamaConfig exported = LlamaConfig.Parse(ModelExport.ToConfigJson(config));
        Assert.That(exported with { EosTokenIds = config.EosTokenIds }, Is.EqualTo(config with { ModelType = "llama", TorchDtype = "float32" }));
        // The confidential deployment descriptor carries the configuration through ToJson: the program the
        // device measures must be the one the provider measured.
        var deployment = new ModelDeployment(config, RopeConvention.Half, 64, 16, WeightPrecision.F32);
        ModelDeployment reread = ModelDeployment.FromJson(deployment.ToJson());
        Assert.That(((LlamaConfig)reread.Config).RopeScaling, Is.EqualTo(config.RopeScaling));
        Assert.That(reread.BuildProgram().Program.Measure(), Is.EqualTo(deployment.BuildProgram().Program.Measure()));
    }

    [Test]
    public void ScalingAndWindowChangeTheGraphMeasurement()
    {
        LlamaConfig plain = ParseWith("\"rope_theta\": 10000");
        byte[] Measure(LlamaConfig c) => CausalLMProgram.Build(c, RopeConvention.Half, 64, 16, WeightPrecision.F32, confidential: true).Program.Measure();
        byte[] basis = Measure(plain);
        Assert.That(Measure(plain), Is.EqualTo(basis), "the measurement must be deterministic");
        Assert.That(Measure(plain with { RopeScaling = RopeScaling.Linear(2) }), Is.Not.EqualTo(basis));
        Assert.That(Measure(plain with { RopeScaling = RopeScaling.Linear(2) }), Is.Not.EqualTo(Measure(plain with { RopeScaling = RopeScaling.Linear(3) })));
        Assert.That(Measure(plain with { RopeScaling = RopeScaling.Llama3(2, 1, 4, 32) }), Is.Not.EqualTo(Measure(plain with { RopeScaling = RopeScaling.Llama3(2, 1, 4, 16) })));
        Assert.That(Measure(plain with { SlidingWindow = 8 }), Is.Not.EqualTo(basis));
        Assert.That(Measure(plain with { SlidingWindow = 8 }), Is.Not.EqualTo(Measure(plain with { SlidingWindow = 9 })));
    }
}
