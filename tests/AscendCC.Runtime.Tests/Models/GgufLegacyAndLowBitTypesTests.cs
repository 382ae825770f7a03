using System.Runtime.InteropServices;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using LLama;
using LLama.Native;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// The GGUF block types the runtime reads by dequantizing them — Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, IQ4_NL,
/// IQ4_XS (what Q2_K, Q3_K_S/M/L, IQ4 and the legacy files hold) — against ggml's own code in
/// LLamaSharp's native libggml-base (test-only): rows quantized by ggml's reference quantizers
/// (quantize_row_*_ref) and dequantized by ggml (dequantize_row_*) come out of
/// <see cref="GgufQuantization.Dequantize"/> bit for bit; and llama.cpp's own files of those types
/// run on the device and pick llama.cpp's next token.
/// </summary>
[NonParallelizable]
public unsafe class GgufLegacyAndLowBitTypesTests
{
    private static readonly (GgufTensorType Type, string Name)[] Types =
    [
        (GgufTensorType.Q4_1, "q4_1"), (GgufTensorType.Q5_0, "q5_0"), (GgufTensorType.Q5_1, "q5_1"), (GgufTensorType.Q2_K, "q2_K"),
        (GgufTensorType.Q3_K, "q3_K"), (GgufTensorType.IQ4_NL, "iq4_nl"), (GgufTensorType.IQ4_XS, "iq4_xs"),
    ];

    private static nint s_ggml;

    /// <summary>
    /// ggml's base library from LLamaSharp's "noavx" build: its dequantizers are the plain C loops,
    /// compiled without FMA, so a product and a sum round twice as the C source reads (an FMA-enabled
    /// build may fuse x·d + m into one rounding).
    /// </summary>
    private static nint Ggml()
    {
        if (s_ggml != 0)
        {
            return s_ggml;
        }
        string path = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "noavx", "libggml-base.so");
        if (!OperatingSystem.IsLinux() || !RuntimeInformation.ProcessArchitecture.Equals(Architecture.X64) || !File.Exists(path))
        {
            Assert.Ignore($"ggml's reference code is taken from LLamaSharp.Backend.Cpu's linux-x64 noavx build, which is not at {path} on this platform.");
        }
        s_ggml = NativeLibrary.Load(path);
        return s_ggml;
    }

    /// <summary>Rows of 2048 values: seeded Gaussian, and blocks at the edges of every format.</summary>
    private static float[] Rows()
    {
        const int k = 2048;
        var rng = new Random(2024);
        var x = new float[6 * k];
        for (int i = 0; i < k; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2) * 0.05);
        }
        // Row 1 zero; row 2 one constant; row 3 all positive (a minimum above zero); row 4 one outlier
        // per 256 among small values; row 5 tiny values (subnormal f16 scales) and sign changes.
        Array.Fill(x, 0.75f, 2 * k, k);
        for (int i = 0; i < k; i++)
        {
            x[(3 * k) + i] = 0.5f + (i % 37 * 0.01f);
            x[(4 * k) + i] = i % 256 == 17 ? 40f : (i % 11 - 5) * 1e-3f;
            x[(5 * k) + i] = (i % 2 == 0 ? 1 : -1) * (i % 13) * 3e-7f;
        }
        return x;
    }

    [TestCaseSource(nameof(Types))]
    public void DequantizesGgmlsBlocksBitForBitAsGgmlDoes((GgufTensorType Type, string Name) t)
    {
        nint lib = Ggml();
        var quantize = (delegate* unmanaged<float*, byte*, long, void>)NativeLibrary.GetExport(lib, $"quantize_row_{t.Name}_ref");
        var dequantize = (delegate* unmanaged<byte*, float*, long, void>)NativeLibrary.GetExport(lib, $"dequantize_row_{t.Name}");
        float[] x = Rows();
        var blocks = new byte[x.Length / GgufTensorTypes.BlockSize(t.Type) * GgufTensorTypes.BlockBytes(t.Type)];
        float[] theirs = new float[x.Length], ours = new float[x.Length];
        fixed (float* px = x, py = theirs)
        fixed (byte* pb = blocks)
        {
            quantize(px, pb, x.Length);
            dequantize(pb, py, x.Length);
        }
        GgufQuantization.Dequantize(t.Type, blocks, ours);
        int differing = 0, first = -1;
        for (int i = 0; i < x.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(ours[i]) != BitConverter.SingleToInt32Bits(theirs[i]))
            {
                differing++;
                first = first < 0 ? i : first;
            }
        }
        Assert.That(differing, Is.Zero, first < 0 ? "" : $"{t.Type}: {differing} of {x.Length} values differ from ggml's; the first, {first}: ours {ours[first]:R}, ggml's {theirs[first]:R}");
        // The rows really exercise the format: ggml's values are not all zero and follow the input.
        double error = Math.Sqrt(x.Zip(theirs).Take(2048).Average(p => (double)(p.First - p.Second) * (p.First - p.Second)));
        Assert.That(error, Is.LessThan(0.05 * 0.5), $"{t.Type}: ggml's own RMS error on the Gaussian row");
        Assert.That(theirs.Take(2048).Count(v => v != 0), Is.GreaterThan(1000));
    }

    [Test]
    public void ATruncatedBlockIsRefusedWithWhatToPass()
    {
        var ex = Assert.Throws<ArgumentException>(() => GgufQuantization.Dequantize(GgufTensorType.Q3_K, new byte[GgufTensorTypes.Q3_KBlockBytes - 1], new float[256]));
        Assert.That(ex!.Message, Does.Contain("Q3_K").And.Contain("whole blocks"));
    }

    /// <summary>
    /// llama.cpp's own files of these types (llama_model_quantize of an F32 GGUF, no importance matrix):
    /// every tensor of each type reads back within its format's rounding of the F32 weights, and the
    /// file runs on the device (weights dequantized to F32) and picks llama.cpp's next token on it. The
    /// bounds are about 1.25× the worst tensor measured on this seeded checkpoint (Q2_K 0.33 of the
    /// weights' RMS, Q3_K 0.18, Q4_1 0.091, Q5_0 0.060, Q5_1 0.044, IQ4_NL 0.097, IQ4_XS 0.099): a
    /// misread scale, bit plane or level moves whole runs of weights by several steps, far past them.
    /// </summary>
    [TestCase(LLamaFtype.MOSTLY_Q2_K, GgufTensorType.Q2_K, 0.41)]
    [TestCase(LLamaFtype.MOSTLY_Q3_K_M, GgufTensorType.Q3_K, 0.22)]
    [TestCase(LLamaFtype.MOSTLY_Q4_1, GgufTensorType.Q4_1, 0.115)]
    [TestCase(LLamaFtype.MOSTLY_Q5_0, GgufTensorType.Q5_0, 0.075)]
    [TestCase(LLamaFtype.MOSTLY_Q5_1, GgufTensorType.Q5_1, 0.055)]
    [TestCase(LLamaFtype.MOSTLY_IQ4_NL, GgufTensorType.IQ4_NL, 0.12)]
    [TestCase(LLamaFtype.MOSTLY_IQ4_XS, GgufTensorType.IQ4_XS, 0.125)]
    public void LlamaCppsFileReadsAndRunsOnTheDevice(LLamaFtype ftype, GgufTensorType type, double relativeError)
    {
        using var temp = new TempFolder();
        string folder = RandomLlamaCheckpoint.WriteFolder(temp.File("random"), seed: 4096, edgeBlocks: false);
        string f32Path = temp.File("random-f32.gguf"), quantizedPath = temp.File($"random-{ftype}.gguf");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            GgufWriter.WriteLlama(f32Path, checkpoint, TextTokenizer.Load(folder));
        }
        NativeApi.llama_empty_call();
        Assert.That(LLamaQuantizer.Quantize(f32Path, quantizedPath, ftype, nthread: 2), Is.True, "llama_model_quantize");
        (double worst, int compared) = GgufReadBack.Error(f32Path, quantizedPath, type);
        TestContext.Out.WriteLine($"{ftype}: {compared} {type} tensors, worst RMS error {worst:F4} of the weights' RMS");
        Assert.That(worst, Is.LessThan(relativeError), $"the worst {type} tensor's RMS error against the F32 weights, relative to their RMS");
        Assert.That(compared, Is.GreaterThanOrEqualTo(4), $"{type} tensors in llama.cpp's {ftype} file");

        // Under a 4-bit deployment the 5-bit types, like Q5_K and Q6_K, stay in Q8_0; the 2-, 3- and 4-bit ones are requantized.
        using (var checkpoint = ModelCheckpoint.Open(quantizedPath))
        {
            ModelConfig config = checkpoint.Config;
            string[] wider = [.. config.ExpectedTensors().Where(e => e.Shape.Length == 2 && e.Name != config.EmbeddingTensorName && e.Name != config.LmHeadTensorName)
                .Where(e => checkpoint.GetTensor(e.Name).StoredGgufType is GgufTensorType.Q5_0 or GgufTensorType.Q5_1 or GgufTensorType.Q5_K or GgufTensorType.Q6_K or GgufTensorType.Q8_0)
                .Select(e => e.Name)];
            Assert.That(CheckpointPrecisions.For(checkpoint, WeightPrecision.Q4_K), Is.EquivalentTo(wider.ToDictionary(n => n, _ => WeightPrecision.Q8_0)));
            if (type is GgufTensorType.Q5_0 or GgufTensorType.Q5_1)
            {
                Assert.That(wider, Has.Length.GreaterThanOrEqualTo(4), $"{type} layer matrices kept in Q8_0");
            }
        }

        int[] prompt = [.. TextTokenizer.Load(quantizedPath).Encode("Once upon a time")];
        float[] ours = GgufReadBack.DeviceLastLogits(quantizedPath, prompt, WeightPrecision.F32);
        float[] theirs = LlamaCppGreedy.LastLogits(quantizedPath, prompt);
        Assert.That(ours, Is.All.Matches<float>(float.IsFinite));
        Assert.That(Array.IndexOf(ours, ours.Max()), Is.EqualTo(Array.IndexOf(theirs, theirs.Max())), "the next token");
    }
}
