using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using AscendCC.Attacks;
using AscendCC.Device;
using AscendCC.Protocol.Attestation;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Driver;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Tests.Models;
using AscendCC.Tests;
using NUnit.Framework;
using AscendCC.Runtime.Tokenizers;

namespace AscendCC.Runtime.Tests.Attacks;

/// <summary>
/// Issue 3 item 8: everything the host handles during a confidential inference, written to a
/// transcript file and scanned for plaintext — prompt and output token ids, their text, any 32-byte
/// window of the weights. The same scan over a CC-off run must find the weights, so the scan can fail.
/// </summary>
public class HostTranscriptTests
{
    private const int Window = 32;

    [Test]
    public void TranscriptFileRoundTripsEveryChannel()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ascendcc-transcript-{Guid.NewGuid():N}.bin");
        try
        {
            var entry = new CompletionEntry(42, 3, TaskKind.Memset, CompletionStatus.AccessDenied, 7, 0x1000, "R4: detail");
            using (var file = new HostTranscriptFile(path))
            {
                file.Record(TranscriptChannel.TaskBuffer, [1, 2, 3]);
                file.Record(TranscriptChannel.RelayedMessage, []);
                file.RecordCompletion(entry);
            }
            var records = HostTranscriptFile.Read(path).ToList();
            Assert.That(records.Select(r => r.Channel), Is.EqualTo(new[] { TranscriptChannel.TaskBuffer, TranscriptChannel.RelayedMessage, TranscriptChannel.Completion }));
            Assert.That(records[0].Bytes, Is.EqualTo(new byte[] { 1, 2, 3 }));
            Assert.That(HostTranscriptFile.DecodeCompletion(records[2].Bytes), Is.EqualTo(entry));
            File.WriteAllBytes(path, File.ReadAllBytes(path)[..^2]);
            Assert.That(() => HostTranscriptFile.Read(path).ToList(), Throws.TypeOf<FormatException>());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void ConfidentialTranscriptHoldsNoPlaintext()
    {
        string folder = TestData.RequireModel("stories260K");
        ReferenceOutputs reference = ReferenceOutputs.Load(folder, "once_upon_a_time");
        TextTokenizer tokenizer = TextTokenizer.Load(folder);
        string path = TempPath();
        try
        {
            int[] generated;
            HashSet<ulong> weights;
            using (var transcript = new HostTranscriptFile(path))
            using (Testbed bed = Testbed.FromCheckpoint(folder, new TestbedOptions { Transcript = transcript, MaxContext = 64, MaxBatchTokens = 8 }))
            {
                using CausalLM llama = bed.Load();
                generated = bed.Generate(llama, reference.PromptTokens, 12);
                Assert.That(generated, Is.EqualTo(reference.GeneratedTokens.Take(12)), "the audited run must be a real inference");
                weights = WeightWindows(bed, out _);
            }
            var records = HostTranscriptFile.Read(path).ToList();
            Assert.That(records, Has.Count.GreaterThan(100));
            byte[][] needles =
            [
                MemoryMarshal.AsBytes(reference.PromptTokens.AsSpan()).ToArray(),
                MemoryMarshal.AsBytes(generated.AsSpan()).ToArray(),
                Encoding.UTF8.GetBytes(tokenizer.Decode(reference.PromptTokens).Trim()),
                Encoding.UTF8.GetBytes(tokenizer.Decode(generated).Trim()),
            ];
            foreach ((TranscriptChannel channel, byte[] bytes) in records)
            {
                foreach (byte[] needle in needles)
                {
                    Assert.That(bytes.AsSpan().IndexOf(needle), Is.EqualTo(-1), $"plaintext ({needle.Length} bytes) in a {channel} record");
                }
            }
            Assert.That(FindWeightWindow(records, weights, null), Is.Null);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void CcOffTranscriptExposesTheWeights()
    {
        // The control: with CC off the host uploads plaintext weights itself; the same scan must see them.
        string path = TempPath();
        try
        {
            using (var transcript = new HostTranscriptFile(path))
            using (Testbed bed = Testbed.CreateTiny(new TestbedOptions { CcMode = CcMode.Off, Transcript = transcript }))
            using (CausalLM model = bed.LoadPlaintext())
            {
                Assert.That(model.Generate(AttackKit.Prompt, 3).Count(), Is.EqualTo(3));
                HashSet<ulong> weights = WeightWindows(bed, out List<byte[]> plain);
                transcript.Flush();
                Assert.That(FindWeightWindow(HostTranscriptFile.Read(path).ToList(), weights, plain), Is.Not.Null);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string TempPath() => Path.Combine(Path.GetTempPath(), $"ascendcc-transcript-{Guid.NewGuid():N}.bin");

    /// <summary>Hashes every 32-byte window of every weight tensor as the device holds it (constant windows excluded: zeros are everywhere).</summary>
    private static HashSet<ulong> WeightWindows(Testbed bed, out List<byte[]> tensors)
    {
        var set = new HashSet<ulong>();
        tensors = [];
        foreach (string name in bed.WeightNames)
        {
            TensorData t = bed.Weights(name);
            byte[] bytes = WeightConversion.Convert(t, t.Shape.Count == 1 ? WeightPrecision.F32 : bed.Options.Precision);
            tensors.Add(bytes);
            for (int i = 0; i + Window <= bytes.Length; i++)
            {
                ReadOnlySpan<byte> w = bytes.AsSpan(i, Window);
                if (w.ContainsAnyExcept(w[0]))
                {
                    set.Add(Hash(w));
                }
            }
        }
        return set;
    }

    /// <summary>The first transcript window whose hash is a weight window's and whose bytes are confirmed equal (when the tensors are given), or null.</summary>
    private static string? FindWeightWindow(List<(TranscriptChannel Channel, byte[] Bytes)> records, HashSet<ulong> weights, List<byte[]>? tensors)
    {
        foreach ((TranscriptChannel channel, byte[] bytes) in records)
        {
            for (int i = 0; i + Window <= bytes.Length; i++)
            {
                ReadOnlySpan<byte> w = bytes.AsSpan(i, Window);
                if (!weights.Contains(Hash(w)))
                {
                    continue;
                }
                // A 64-bit hash may collide: confirm against the plaintext where we have it;
                // otherwise report the hit with its bytes, so a failure can be checked by hand.
                if (tensors is null || Confirmed(tensors, w))
                {
                    return $"{channel} record, offset {i}: {Convert.ToHexString(w)}";
                }
            }
        }
        return null;
    }

    private static bool Confirmed(List<byte[]> tensors, ReadOnlySpan<byte> window)
    {
        foreach (byte[] t in tensors)
        {
            if (t.AsSpan().IndexOf(window) >= 0)
            {
                return true;
            }
        }
        return false;
    }

    private static ulong Hash(ReadOnlySpan<byte> w)
    {
        ReadOnlySpan<ulong> q = MemoryMarshal.Cast<byte, ulong>(w);
        ulong h = 0x9E3779B97F4A7C15UL;
        for (int i = 0; i < q.Length; i++)
        {
            h = BitOperations.RotateLeft((h ^ q[i]) * 0xBF58476D1CE4E5B9UL, 31) * 0x94D049BB133111EBUL;
        }
        return h ^ (h >> 29);
    }
}
