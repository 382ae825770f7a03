using System.Buffers.Binary;
using AscendCC.Device;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tests.Llama;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Tests;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// Getting weights into the device's Q8_0 and Q4_0: quantizing on load with llama.cpp's rounding,
/// keeping a GGUF file's blocks as they are, the layout the device reads, and what is refused.
/// </summary>
public class QuantizedLoadingTests
{
    /// <summary>
    /// quantize_row_q8_0_ref, written out independently: per 32 values d = max|x|/127 stored as f16,
    /// q = roundf(x·(1/d)) (halves away from zero); returned as GGUF's blocks (d, then 32 q).
    /// </summary>
    private static byte[] ReferenceQ8_0Blocks(float[] values, int rows, int cols)
    {
        var blocks = new byte[rows * cols / 32 * 34];
        for (int r = 0; r < rows; r++)
        {
            for (int b = 0; b < cols / 32; b++)
            {
                float amax = 0;
                for (int i = 0; i < 32; i++)
                {
                    amax = MathF.Max(amax, MathF.Abs(values[(r * cols) + (b * 32) + i]));
                }
                float d = amax / 127f;
                float id = d != 0f ? 1f / d : 0f;
                int block = ((r * cols / 32) + b) * 34;
                BinaryPrimitives.WriteHalfLittleEndian(blocks.AsSpan(block), (Half)d);
                for (int i = 0; i < 32; i++)
                {
                    blocks[block + 2 + i] = unchecked((byte)(sbyte)MathF.Round(values[(r * cols) + (b * 32) + i] * id, MidpointRounding.AwayFromZero));
                }
            }
        }
        return blocks;
    }

    /// <summary>
    /// quantize_row_q4_0_ref, written out independently: the value m of largest magnitude (sign
    /// kept) gives d = m/−8 stored as f16, each value the nibble min(15, trunc(x·(1/d) + 8.5)); byte j
    /// of a block holds value j low and value j + 16 high; returned as GGUF's blocks (d, then 16 bytes).
    /// </summary>
    private static byte[] ReferenceQ4_0Blocks(float[] values, int rows, int cols)
    {
        int blocks = cols / 32;
        var gguf = new byte[rows * blocks * 18];
        for (int r = 0; r < rows; r++)
        {
            for (int b = 0; b < blocks; b++)
            {
                float amax = 0, max = 0;
                for (int i = 0; i < 32; i++)
                {
                    float v = values[(r * cols) + (b * 32) + i];
                    if (amax < MathF.Abs(v))
                    {
                        (amax, max) = (MathF.Abs(v), v);
                    }
                }
                float d = max / -8f;
                float id = d != 0f ? 1f / d : 0f;
                int block = ((r * blocks) + b) * 18;
                BinaryPrimitives.WriteHalfLittleEndian(gguf.AsSpan(block), (Half)d);
                for (int i = 0; i < 32; i++)
                {
                    int nibble = Math.Min(15, (int)MathF.Truncate((values[(r * cols) + (b * 32) + i] * id) + 8.5f));
                    gguf[block + 2 + (i % 16)] |= (byte)(i < 16 ? nibble : nibble << 4);
                }
            }
        }
        return gguf;
    }

    [TestCase(TensorDType.F32)]
    [TestCase(TensorDType.BF16)]
    public void QuantizingOnLoadToQ4_0RoundsAsLlamaCppsReference(TensorDType dtype)
    {
        // Rows past one whole strip of eight, so both of the device's forms hold some.
        const int rows = 11, cols = 96;
        var rng = new Random(8);
        float[] values = [.. Enumerable.Range(0, rows * cols).Select(_ => (float)((rng.NextDouble() - 0.5) * 0.2))];
        // The largest magnitude negative, so d > 0; and an all-zero block (d = 0, every nibble 8).
        values[5] = -1.5f;
        Array.Clear(values, 32, 32);
        TensorData f32 = TensorData.FromFloat32("w", [rows, cols], values);
        TensorData tensor = dtype == TensorDType.F32 ? f32 : new TensorData("w", dtype, [rows, cols], WeightConversion.Convert(f32, WeightPrecision.BF16));

        byte[] planes = WeightConversion.Convert(tensor, WeightPrecision.Q4_0);
        byte[] reference = ReferenceQ4_0Blocks(tensor.ToFloat32(), rows, cols);
        Assert.That(planes, Is.EqualTo(QuantizedWeightLayout.Q4_0FromGguf(reference, rows, cols)), "llama.cpp's blocks, in the device's layout");
        Assert.That(reference.Skip(18 + 2).Take(16), Is.All.EqualTo(0x88), "the zero block's nibbles are all 8 (value 0)");
        Assert.That(planes.Length, Is.EqualTo(rows * cols / 32 * 18), "18 bytes per 32 weights, as GGUF");
    }

    [TestCase(TensorDType.F32)]
    [TestCase(TensorDType.F16)]
    [TestCase(TensorDType.BF16)]
    public void QuantizingOnLoadRoundsAsLlamaCppsReference(TensorDType dtype)
    {
        const int rows = 11, cols = 96;
        var rng = new Random(7);
        float[] values = [.. Enumerable.Range(0, rows * cols).Select(_ => (float)((rng.NextDouble() - 0.5) * 0.2))];
        // An exact tie: amax 127 makes d = 1, so 2.5 must round away from zero to 3 (not to even 2).
        values[0] = 127f;
        values[1] = 2.5f;
        values[2] = -2.5f;
        // An all-zero block: d = 0 and q = 0.
        Array.Clear(values, 32, 32);
        TensorData f32 = TensorData.FromFloat32("w", [rows, cols], values);
        TensorData tensor = dtype == TensorDType.F32 ? f32 : new TensorData("w", dtype, [rows, cols], WeightConversion.Convert(f32, dtype == TensorDType.F16 ? WeightPrecision.F16 : WeightPrecision.BF16));

        byte[] planes = WeightConversion.Convert(tensor, WeightPrecision.Q8_0);
        byte[] reference = ReferenceQ8_0Blocks(tensor.ToFloat32(), rows, cols);
        Assert.That(planes, Is.EqualTo(QuantizedWeightLayout.Q8_0FromGguf(reference, rows, cols)), "llama.cpp's blocks, in the device's layout");
        Assert.That((sbyte)reference[2 + 1], Is.EqualTo(3));
        Assert.That((sbyte)reference[2 + 2], Is.EqualTo(-3));
    }

    /// <summary>
    /// A Q8_0 tensor (a GGUF file's blocks) reaches the device as its own blocks, only rearranged
    /// into the device's layout (whose placement of every byte the device's kernel tests hold to its
    /// documented rule), including q = −128 (which no quantizer writes but block_q8_0 holds) and a
    /// subnormal scale, and nothing is dequantized and quantized again. (That GGUF Q8_0 tensors load
    /// as such blocks is checked on llama.cpp's own file in <see cref="QuantizedLlamaCppTests"/>.)
    /// </summary>
    [Test]
    public void Q8_0BlocksAreKeptBitForBitInTheDevicesLayout()
    {
        const int rows = 11, cols = 64, perRow = cols / 32;
        var rng = new Random(9);
        byte[] blocks = new byte[rows * perRow * 34];
        rng.NextBytes(blocks);
        for (int b = 0; b < rows * perRow; b++)
        {
            // Finite scales (random bytes could make NaN halves, which never compare equal).
            BinaryPrimitives.WriteHalfLittleEndian(blocks.AsSpan(b * 34), (Half)((rng.NextDouble() - 0.5) * 0.01));
        }
        BinaryPrimitives.WriteUInt16LittleEndian(blocks, 0x0001);
        blocks[2] = 0x80;
        var tensor = new TensorData("w", TensorDType.Q8_0, [rows, cols], blocks);

        byte[] planes = WeightConversion.Convert(tensor, WeightPrecision.Q8_0);
        Assert.That(planes, Has.Length.EqualTo(blocks.Length));
        Assert.That(planes, Is.EqualTo(QuantizedWeightLayout.Q8_0FromGguf(blocks, rows, cols)));
        float[] values = tensor.ToFloat32();
        Assert.That(values[0], Is.EqualTo(-128 * (float)BitConverter.UInt16BitsToHalf(1)), "d·q with q = -128 and the smallest subnormal d");
        Assert.That(WeightConversion.Convert(tensor, WeightPrecision.F32), Is.EqualTo(WeightConversion.FromFloat32(values, WeightPrecision.F32)), "other precisions dequantize");
    }

    [Test]
    public void AModelWithAWidthThatIsNotWholeBlocksIsRefusedNamingTheTensorItsWidthAndWhatToDo()
    {
        using var checkpoint = ModelCheckpoint.Open(TestData.RequireModel("stories260K"));
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        long before = runtime.MemoryInfo.Allocated;
        var ex = Assert.Throws<ArgumentException>(() => CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 64, WeightPrecision = WeightPrecision.Q8_0 }));
        Assert.That(ex!.Message, Does.Contain("model.layers.0.mlp.down_proj.weight").And.Contain("172").And.Contain("blocks of 32").And.Contain("WeightPrecision.BF16"));
        Assert.That(runtime.MemoryInfo.Allocated, Is.EqualTo(before), "refused before anything was allocated");
        ex = Assert.Throws<ArgumentException>(() => CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 64, WeightPrecision = WeightPrecision.Q4_0 }));
        Assert.That(ex!.Message, Does.Contain("model.layers.0.mlp.down_proj.weight").And.Contain("172").And.Contain("Q4_0").And.Contain("WeightPrecision.BF16"));

        ex = Assert.Throws<ArgumentException>(() => WeightConversion.Convert(TensorData.FromFloat32("w", [2, 48], new float[96]), WeightPrecision.Q8_0));
        Assert.That(ex!.Message, Does.Contain("'w'").And.Contain("48").And.Contain("WeightPrecision.BF16"));
        ex = Assert.Throws<ArgumentException>(() => WeightConversion.Convert(TensorData.FromFloat32("norm", [64], new float[64]), WeightPrecision.Q8_0));
        Assert.That(ex!.Message, Does.Contain("'norm'").And.Contain("matrices"));
    }

    /// <summary>
    /// The model provider's package carries the Q8_0 planes (element type "Q8_0", 34 bytes per 32
    /// weights), and the signed graph measurement differs from the same model's bf16 deployment:
    /// a host cannot run Q8_0 kernels over a package made for bf16, or the reverse.
    /// </summary>
    [Test]
    public void TheConfidentialPackageCarriesTheQuantizedBytesAndTheMeasurementCoversTheFormat()
    {
        (LlamaConfig config, Dictionary<string, TensorData> weights) = PaddedStories260K.Build();
        var q8 = new ModelDeployment(config, RopeConvention.Half, 64, 4, WeightPrecision.Q8_0);
        var bf16 = q8 with { Precision = WeightPrecision.BF16 };
        var provider = ModelProvider.Create();
        var policy = new ReleasePolicy(1, [new byte[48]], new byte[32]);
        using ProtectedModel q8Model = ModelPackageExporter.Export(provider, q8, n => weights[n], policy, new MemoryStream());
        using ProtectedModel bf16Model = ModelPackageExporter.Export(provider, bf16, n => weights[n], policy, new MemoryStream());

        PackageItem down = q8Model.Manifest.Tensors.Single(t => t.Name == "model.layers.0.mlp.down_proj.weight");
        Assert.That(down.ElementType, Is.EqualTo("Q8_0"));
        Assert.That(down.ByteLength, Is.EqualTo(64 * 192 / 32 * 34));
        Assert.That(down.Sha256.ToArray(), Is.EqualTo(System.Security.Cryptography.SHA256.HashData(WeightConversion.Convert(weights[down.Name], WeightPrecision.Q8_0))));
        Assert.That(q8Model.Manifest.Tensors.Single(t => t.Name == "model.norm.weight").ElementType, Is.EqualTo("F32"), "norms stay f32");
        Assert.That(q8Model.Manifest.ExpectedGraphMeasurement.ToArray(), Is.Not.EqualTo(bf16Model.Manifest.ExpectedGraphMeasurement.ToArray()));

        // Q4_0: the layers' matrices in Q4_0 (18 bytes per 32), the tied embedding and classifier in Q8_0.
        var q4 = q8 with { Precision = WeightPrecision.Q4_0 };
        using ProtectedModel q4Model = ModelPackageExporter.Export(provider, q4, n => weights[n], policy, new MemoryStream());
        PackageItem q4Down = q4Model.Manifest.Tensors.Single(t => t.Name == down.Name);
        Assert.That((q4Down.ElementType, q4Down.ByteLength), Is.EqualTo(("Q4_0", 64L * 192 / 32 * 18)));
        Assert.That(q4Model.Manifest.Tensors.Single(t => t.Name == "model.embed_tokens.weight").ElementType, Is.EqualTo("Q8_0"));
        Assert.That(q4Model.Manifest.ExpectedGraphMeasurement.ToArray(), Is.Not.EqualTo(q8Model.Manifest.ExpectedGraphMeasurement.ToArray()));
    }
}
