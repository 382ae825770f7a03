using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using LLama;
using LLama.Native;
using NUnit.Framework;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>
/// <see cref="GgufQuantization.QuantizeQ4_K"/> against llama.cpp's own quantizer (LLamaSharp 0.30.0,
/// test-only): a random-weight Llama (<see cref="RandomLlamaCheckpoint"/>, every matrix width whole
/// 256-blocks, edge cases in each matrix) written as an F32 GGUF and quantized to Q4_K_M by
/// llama_model_quantize, which without an importance matrix writes its Q4_K tensors with
/// quantize_row_q4_K_ref.
/// </summary>
[NonParallelizable]
public class Q4_KLlamaCppTests
{
    /// <summary>
    /// Q4_K_M's Q4_K tensors here: the embedding and every layer's seven matrices except, in layer 1 of
    /// 2, attn_v and ffn_down (Q6_K: llama.cpp's use_more_bits picks the last layer). The output matrix
    /// stays F32 (LLamaQuantizer does not quantize the output tensor unless asked).
    /// </summary>
    private const int Q4_KTensors = 1 + 7 + 5;

    [Test]
    public void QuantizeQ4_KWritesLlamaCppsBytesForEveryQ4_KTensor()
    {
        using var temp = new TempFolder();
        string folder = RandomLlamaCheckpoint.WriteFolder(temp.File("random"), seed: 4096);
        string f32Path = temp.File("random-f32.gguf"), quantizedPath = temp.File("random-q4_k_m.gguf");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            GgufWriter.WriteLlama(f32Path, checkpoint, TextTokenizer.Load(folder));
        }
        // LLamaQuantizer calls llama.cpp without running LLamaSharp's library selection; this does.
        NativeApi.llama_empty_call();
        Assert.That(LLamaQuantizer.Quantize(f32Path, quantizedPath, LLamaFtype.MOSTLY_Q4_K_M, nthread: 2), Is.True, "llama_model_quantize");

        using var f32 = ModelCheckpoint.Open(f32Path);
        using var quantized = ModelCheckpoint.Open(quantizedPath);
        using var stored = GgufFile.Open(quantizedPath);
        int compared = 0;
        long blocks = 0;
        foreach ((string name, long[] shape) in quantized.Config.ExpectedTensors())
        {
            string ggufName = GgufLlamaLayout.ToGgufName(name, quantized.Config.NumHiddenLayers)!;
            GgufTensorType type = stored.FindTensor(ggufName)!.Type;
            TestContext.Out.WriteLine($"{ggufName} [{string.Join(", ", shape)}]: {type}");
            if (type != GgufTensorType.Q4_K)
            {
                continue;
            }
            // Both files keep GGUF's row order (q/k interleaved), so the F32 rows are the ones llama.cpp quantized.
            float[] x = f32.GetTensor(name).ReadFloat32();
            byte[] theirs = quantized.GetTensor(name).ReadStoredBytes();
            var ours = new byte[x.Length / 256 * GgufTensorTypes.Q4_KBlockBytes];
            GgufQuantization.QuantizeQ4_K(x, ours);
            Assert.That(ours, Has.Length.EqualTo(theirs.Length), $"{ggufName}: Q4_K bytes");
            int differing = 0, first = -1;
            for (int b = 0; b < ours.Length / GgufTensorTypes.Q4_KBlockBytes; b++)
            {
                int at = b * GgufTensorTypes.Q4_KBlockBytes;
                if (!ours.AsSpan(at, GgufTensorTypes.Q4_KBlockBytes).SequenceEqual(theirs.AsSpan(at, GgufTensorTypes.Q4_KBlockBytes)))
                {
                    differing++;
                    first = first < 0 ? b : first;
                }
            }
            if (differing > 0)
            {
                int at = first * GgufTensorTypes.Q4_KBlockBytes;
                Assert.Fail($"{ggufName}: {differing} of {ours.Length / GgufTensorTypes.Q4_KBlockBytes} super-blocks differ from llama.cpp's; the first, {first}:\n"
                    + $"ours   {Convert.ToHexString(ours, at, 16)} {Convert.ToHexString(ours, at + 16, 128)}\n"
                    + $"theirs {Convert.ToHexString(theirs, at, 16)} {Convert.ToHexString(theirs, at + 16, 128)}\n"
                    + $"values {string.Join(' ', x.Skip(first * 256).Take(256).Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}");
            }
            compared++;
            blocks += ours.Length / GgufTensorTypes.Q4_KBlockBytes;
        }
        TestContext.Out.WriteLine($"{compared} Q4_K tensors, {blocks} super-blocks, byte for byte as llama.cpp's");
        Assert.That(compared, Is.EqualTo(Q4_KTensors), "the tensors llama.cpp wrote as Q4_K");
    }
}
