using System.Buffers.Binary;
using System.Numerics;
using AscendCC.Protocol.Encoding;

namespace AscendCC.Protocol.Messages;

/// <summary>
/// How the device picks tokens for a data owner: first the repetition penalties over the most recent
/// <see cref="RepeatLastN"/> tokens and min-p, as llama.cpp applies them; then, at temperature 0, the
/// argmax; otherwise softmax(logits / temperature), the <see cref="TopK"/> most probable (0 = all), then
/// the smallest prefix reaching <see cref="TopP"/>, drawn with a generator seeded by <see cref="Seed"/>.
/// It travels sealed in the prompt record, so in confidential mode the host can neither read nor bias it.
/// </summary>
/// <param name="Temperature">Softmax temperature; 0 for greedy.</param>
/// <param name="TopK">Keep the k most probable tokens; 0 keeps all.</param>
/// <param name="TopP">Nucleus threshold in (0, 1]; 1 keeps all.</param>
/// <param name="Seed">Generator seed (0 picks a fixed non-zero constant).</param>
/// <param name="MinP">Drop tokens less likely than this fraction of the most likely one, in [0, 1]; 0 keeps all.</param>
/// <param name="RepeatPenalty">Divides a recent token's positive logit (multiplies a negative one); &gt; 0, 1 = off.</param>
/// <param name="RepeatLastN">How many of the most recent tokens are penalised; −1 = the whole context, 0 = none.</param>
/// <param name="FrequencyPenalty">Subtracted from a recent token's logit once per occurrence; 0 = off.</param>
/// <param name="PresencePenalty">Subtracted once from the logit of every recent token; 0 = off.</param>
public readonly record struct PromptSampling(float Temperature, int TopK, float TopP, ulong Seed,
    float MinP = 0f, float RepeatPenalty = 1f, int RepeatLastN = 64, float FrequencyPenalty = 0f, float PresencePenalty = 0f)
{
    /// <summary>Greedy decoding.</summary>
    public static PromptSampling Greedy => new(0f, 0, 1f, 0);

    /// <summary>Throws when a setting is outside its range.</summary>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    public void Validate()
    {
        if (!float.IsFinite(Temperature) || Temperature < 0f)
        {
            throw new ArgumentException($"temperature {Temperature} must be finite and ≥ 0");
        }
        if (TopK < 0)
        {
            throw new ArgumentException($"top-k {TopK} must be ≥ 0 (0 keeps every token)");
        }
        if (!(TopP > 0f && TopP <= 1f))
        {
            throw new ArgumentException($"top-p {TopP} must be in (0, 1]");
        }
        if (!(MinP >= 0f && MinP <= 1f))
        {
            throw new ArgumentException($"min-p {MinP} must be in [0, 1]");
        }
        if (!float.IsFinite(RepeatPenalty) || !(RepeatPenalty > 0f))
        {
            throw new ArgumentException($"repeat penalty {RepeatPenalty} must be finite and > 0 (1 is off)");
        }
        if (RepeatLastN < -1)
        {
            throw new ArgumentException($"repeat-last-n {RepeatLastN} must be ≥ −1 (−1 is the whole context, 0 none)");
        }
        if (!float.IsFinite(FrequencyPenalty) || !float.IsFinite(PresencePenalty))
        {
            throw new ArgumentException($"frequency penalty {FrequencyPenalty} and presence penalty {PresencePenalty} must be finite (0 is off)");
        }
    }
}

/// <summary>A decoded prompt message: what the data owner asks, of which model, sampled how.</summary>
/// <param name="Tokens">The prompt's token ids.</param>
/// <param name="Sampling">The data owner's sampling settings.</param>
/// <param name="RequiredModel">The graph measurement of the only model that may answer (48 bytes), or empty for any.</param>
public sealed record PromptRequest(int[] Tokens, PromptSampling Sampling, ReadOnlyMemory<byte> RequiredModel);

/// <summary>
/// The data owner's prompt as token ids, padded to a power-of-two bucket of at least
/// <see cref="MinimumBucket"/> tokens so the relay learns only the bucket, not the prompt length, with
/// the sampling settings and the model the data owner requires.
/// Plaintext: magic "ACCPRM03", required model (48 bytes, all zero for any), temperature f32 bits u32,
/// top-k u32, top-p f32 bits u32, seed u64, min-p, repeat penalty (f32 bits u32 each), repeat-last-n i32,
/// frequency and presence penalties (f32 bits u32 each), token count u32, bucket u32, bucket × i32
/// (unused slots zero).
/// Sent as a <see cref="Channels.RecordType.Prompt"/> record on the data owner's channel.
/// </summary>
public static class PromptMessage
{
    /// <summary>Smallest padded size, in tokens.</summary>
    public const int MinimumBucket = 256;

    /// <summary>Largest prompt, in tokens.</summary>
    public const int MaxTokens = 1 << 20;

    /// <summary>Bytes of a graph measurement (SHA-384), the size of the required-model field.</summary>
    public const int ModelSize = 48;

    /// <summary>Bytes before the token ids.</summary>
    public const int HeaderSize = 8 + ModelSize + 4 + 4 + 4 + 8 + (5 * 4) + 4 + 4;

    private static ReadOnlySpan<byte> Magic => "ACCPRM03"u8;

    /// <summary>The padded token count for a prompt of <paramref name="tokenCount"/> tokens.</summary>
    public static int BucketFor(int tokenCount) =>
        tokenCount <= MinimumBucket ? MinimumBucket : (int)BitOperations.RoundUpToPowerOf2((uint)tokenCount);

    /// <summary>Plaintext bytes of a prompt of up to <paramref name="tokenCount"/> tokens.</summary>
    public static long EncodedSize(int tokenCount) => HeaderSize + (4L * BucketFor(tokenCount));

    /// <summary>Encodes a greedy prompt for any model.</summary>
    public static byte[] Encode(ReadOnlySpan<int> tokens) => Encode(tokens, PromptSampling.Greedy, default);

    /// <summary>Encodes a prompt.</summary>
    /// <param name="tokens">Token ids.</param>
    /// <param name="sampling">How the device picks tokens.</param>
    /// <param name="requiredModel">Graph measurement of the only model that may answer (48 bytes), or empty for any.</param>
    /// <exception cref="ArgumentException">Too many tokens, a sampling setting out of range, or a model measurement of the wrong size.</exception>
    public static byte[] Encode(ReadOnlySpan<int> tokens, PromptSampling sampling, ReadOnlySpan<byte> requiredModel)
    {
        if (tokens.Length > MaxTokens)
        {
            throw new ArgumentException($"A prompt holds at most {MaxTokens} tokens.", nameof(tokens));
        }
        if (!requiredModel.IsEmpty && requiredModel.Length != ModelSize)
        {
            throw new ArgumentException($"A model is named by its {ModelSize}-byte graph measurement; this one has {requiredModel.Length} bytes.", nameof(requiredModel));
        }
        sampling.Validate();
        int bucket = BucketFor(tokens.Length);
        byte[] result = new byte[EncodedSize(tokens.Length)];
        Span<byte> d = result;
        Magic.CopyTo(d);
        requiredModel.CopyTo(d[8..]);
        int at = 8 + ModelSize;
        BinaryPrimitives.WriteUInt32BigEndian(d[at..], BitConverter.SingleToUInt32Bits(sampling.Temperature));
        BinaryPrimitives.WriteUInt32BigEndian(d[(at + 4)..], (uint)sampling.TopK);
        BinaryPrimitives.WriteUInt32BigEndian(d[(at + 8)..], BitConverter.SingleToUInt32Bits(sampling.TopP));
        BinaryPrimitives.WriteUInt64BigEndian(d[(at + 12)..], sampling.Seed);
        BinaryPrimitives.WriteUInt32BigEndian(d[(at + 20)..], BitConverter.SingleToUInt32Bits(sampling.MinP));
        BinaryPrimitives.WriteUInt32BigEndian(d[(at + 24)..], BitConverter.SingleToUInt32Bits(sampling.RepeatPenalty));
        BinaryPrimitives.WriteInt32BigEndian(d[(at + 28)..], sampling.RepeatLastN);
        BinaryPrimitives.WriteUInt32BigEndian(d[(at + 32)..], BitConverter.SingleToUInt32Bits(sampling.FrequencyPenalty));
        BinaryPrimitives.WriteUInt32BigEndian(d[(at + 36)..], BitConverter.SingleToUInt32Bits(sampling.PresencePenalty));
        BinaryPrimitives.WriteUInt32BigEndian(d[(at + 40)..], (uint)tokens.Length);
        BinaryPrimitives.WriteUInt32BigEndian(d[(at + 44)..], (uint)bucket);
        for (int i = 0; i < tokens.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(d[(HeaderSize + (i * 4))..], tokens[i]);
        }
        return result;
    }

    /// <summary>Decodes a prompt, checking the bucket, the sampling settings and that padding is zero.</summary>
    /// <exception cref="ProtocolFormatException">Malformed prompt.</exception>
    public static PromptRequest Decode(ReadOnlySpan<byte> plaintext)
    {
        var reader = new CanonicalReader(plaintext, "prompt message");
        reader.ExpectMagic(Magic, "magic");
        ReadOnlySpan<byte> model = reader.ReadFixed(ModelSize, "requiredModel");
        var sampling = new PromptSampling(
            BitConverter.UInt32BitsToSingle(reader.ReadUInt32("temperature")),
            unchecked((int)reader.ReadUInt32("topK")),
            BitConverter.UInt32BitsToSingle(reader.ReadUInt32("topP")),
            reader.ReadUInt64("seed"),
            BitConverter.UInt32BitsToSingle(reader.ReadUInt32("minP")),
            BitConverter.UInt32BitsToSingle(reader.ReadUInt32("repeatPenalty")),
            unchecked((int)reader.ReadUInt32("repeatLastN")),
            BitConverter.UInt32BitsToSingle(reader.ReadUInt32("frequencyPenalty")),
            BitConverter.UInt32BitsToSingle(reader.ReadUInt32("presencePenalty")));
        try
        {
            sampling.Validate();
        }
        catch (ArgumentException ex)
        {
            throw reader.Fail("sampling", ex.Message);
        }
        uint count = reader.ReadUInt32("tokenCount");
        uint bucket = reader.ReadUInt32("bucket");
        if (count > MaxTokens || bucket != (uint)BucketFor((int)count))
        {
            throw reader.Fail("bucket", "does not match the token count's padding bucket");
        }
        int[] tokens = new int[count];
        for (int i = 0; i < count; i++)
        {
            tokens[i] = unchecked((int)reader.ReadUInt32("token"));
        }
        if (reader.ReadFixed(checked((int)(bucket - count) * 4), "padding").ContainsAnyExcept((byte)0))
        {
            throw reader.Fail("padding", "is not zero");
        }
        reader.ExpectEnd();
        return new PromptRequest(tokens, sampling, model.ContainsAnyExcept((byte)0) ? model.ToArray() : ReadOnlyMemory<byte>.Empty);
    }
}
