using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;

namespace AscendCC.Runtime.Tests.Models;

/// <summary>A quantized GGUF read back by the runtime, for comparisons with the F32 file it was quantized from and with llama.cpp.</summary>
internal static class GgufReadBack
{
    /// <summary>
    /// Over the tensors of <paramref name="type"/> in <paramref name="quantizedPath"/>: the worst RMS
    /// error of the values read against the F32 file's, relative to those values' RMS, and how many were compared.
    /// </summary>
    public static (double Worst, int Compared) Error(string f32Path, string quantizedPath, GgufTensorType type)
    {
        double worst = 0;
        int compared = 0;
        using var f32File = GgufFile.Open(f32Path);
        using var file = GgufFile.Open(quantizedPath);
        foreach (GgufTensorInfo tensor in file.Tensors.Where(t => t.Type == type))
        {
            GgufTensorInfo source = f32File.FindTensor(tensor.Name)!;
            float[] original = new float[source.ElementCount], read = new float[tensor.ElementCount];
            f32File.ReadFloat32(source, original);
            file.ReadFloat32(tensor, read);
            double error = Math.Sqrt(original.Zip(read).Average(p => (double)(p.First - p.Second) * (p.First - p.Second)));
            worst = Math.Max(worst, error / Math.Sqrt(original.Average(v => (double)v * v)));
            compared++;
        }
        return (worst, compared);
    }

    /// <summary>The device's last-position logits after <paramref name="prompt"/> on the file, its weights in <paramref name="precision"/>.</summary>
    public static float[] DeviceLastLogits(string path, int[] prompt, WeightPrecision precision)
    {
        using var checkpoint = ModelCheckpoint.Open(path);
        using var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = 1L << 30 }), ownsDevice: true);
        using var model = CausalLM.Load(runtime, checkpoint, new CausalLMOptions { MaxContext = 128, WeightPrecision = precision });
        return model.ForwardAllLogits(prompt, 0)[^model.Config.VocabSize..];
    }
}
