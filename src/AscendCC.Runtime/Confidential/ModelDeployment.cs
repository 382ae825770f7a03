using System.Text.Json;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Programs;

namespace AscendCC.Runtime.Confidential;

/// <summary>
/// How a confidential model is laid out on the device: the architecture (of any supported family)
/// and the program's shape. It travels in the clear beside the package — the host needs it to build
/// the program — and needs no signature: any change to it changes the program's measurement, and the
/// device then refuses to run it (R4).
/// </summary>
/// <param name="Config">The architecture.</param>
/// <param name="Rope">q/k row order of the weights (Llama family; ignored by families without RoPE).</param>
/// <param name="MaxContext">KV cache length.</param>
/// <param name="MaxBatchTokens">Most tokens per pass.</param>
/// <param name="Precision">Precision of the weight matrices.</param>
/// <param name="KvPrecision">Element type of the KV cache; it sizes the cache regions and is a scalar of every cache launch, so it is measured.</param>
/// <param name="MaxSequences">
/// Data owners' sequences decoded together (batched decode): the KV cache gets a slot per sequence and
/// the program begins and ends with the batched prologue and epilogue; 1, the default, is the
/// single-session program. Measured like the rest of the layout.
/// </param>
/// <param name="MatrixPrecisions">
/// A mixed deployment: matrices kept in another precision than <paramref name="Precision"/> gives them
/// (<see cref="CausalLMOptions.MatrixPrecisions"/>, <see cref="CheckpointPrecisions.For"/>). Each is
/// in the program as its buffer's size and its launches' element type, so measured: a host that
/// rewrites the map to have a matrix's bytes read as another type changes the measurement.
/// </param>
public sealed record ModelDeployment(ModelConfig Config, RopeConvention Rope, int MaxContext, int MaxBatchTokens, WeightPrecision Precision,
    KvCachePrecision KvPrecision = CausalLMOptions.DefaultKvCachePrecision, int MaxSequences = 1, IReadOnlyDictionary<string, WeightPrecision>? MatrixPrecisions = null)
{
    private readonly IReadOnlyDictionary<string, WeightPrecision>? _matrixPrecisions = Freeze(MatrixPrecisions);

    /// <summary>The matrices kept in another precision (a copy taken when set: changing the caller's dictionary later changes nothing); null for none, an empty map included.</summary>
    public IReadOnlyDictionary<string, WeightPrecision>? MatrixPrecisions { get => _matrixPrecisions; init => _matrixPrecisions = Freeze(value); }

    private static System.Collections.ObjectModel.ReadOnlyDictionary<string, WeightPrecision>? Freeze(IReadOnlyDictionary<string, WeightPrecision>? map) =>
        map is null || map.Count == 0 ? null : new Dictionary<string, WeightPrecision>(map, StringComparer.Ordinal).AsReadOnly();

    /// <summary>The confidential program this deployment describes.</summary>
    public CausalLMProgram BuildProgram() => CausalLMProgram.Build(Config, Rope, MaxContext, MaxBatchTokens, Precision, KvPrecision, confidential: true, sequences: MaxSequences,
        matrixPrecisions: MatrixPrecisions);

    /// <summary>
    /// The HBM this deployment's program takes at the least: its regions (weights, KV cache, activations,
    /// staging) rounded up as the device places them (2 MiB for regions of 2 MiB or more, 64 bytes
    /// otherwise). A package's signed header and chunk tags come on top (kilobytes to a few MiB), and gaps
    /// between regions can add more. For the check before a load: a deployment above this cannot fit and is
    /// refused naming the sizes, rather than when an allocation fails halfway through staging.
    /// </summary>
    public long MinimumHbmBytes()
    {
        const long Large = 1 << 21;
        return BuildProgram().Program.Buffers.Sum(b => b.Bytes >= Large ? (b.Bytes + Large - 1) / Large * Large : (b.Bytes + 63) / 64 * 64);
    }

    /// <summary>
    /// Equal when their descriptors are (<see cref="ToJson"/>): the configuration compared as its
    /// config.json (its token lists by content), the matrix precisions by content, null and empty alike.
    /// </summary>
    public bool Equals(ModelDeployment? other) => other is not null && ToJson() == other.ToJson();

    /// <inheritdoc/>
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(ToJson());

    private static IEnumerable<KeyValuePair<string, WeightPrecision>> SortedPrecisions(IReadOnlyDictionary<string, WeightPrecision>? map) =>
        (map ?? new Dictionary<string, WeightPrecision>()).OrderBy(e => e.Key, StringComparer.Ordinal);

    /// <summary>
    /// The graph measurement of this deployment's program over the weights of the package a provider
    /// with signing key <paramref name="providerKey"/> (SubjectPublicKeyInfo) exports as
    /// <paramref name="modelName"/>: what its manifest signs, and what a data owner requires to be
    /// answered by that model and no other.
    /// </summary>
    public byte[] Measure(ReadOnlySpan<byte> providerKey, string modelName) =>
        BuildProgram().Program.Measure(Protocol.Packaging.PackageIdentity.Compute(providerKey, modelName));

    /// <summary>Serialises to JSON (config.json fields plus the layout).</summary>
    public string ToJson() => JsonSerializer.Serialize(new Dto(Config.ToJson(), Rope.ToString(), MaxContext, MaxBatchTokens, Precision.ToString(), KvPrecision.ToString(),
        MaxSequences == 1 ? null : MaxSequences,
        MatrixPrecisions is { } mixed ? SortedPrecisions(mixed).ToDictionary(e => e.Key, e => e.Value.ToString(), StringComparer.Ordinal) : null), Options);

    /// <summary>Reads the JSON written by <see cref="ToJson"/>; the family comes from the embedded config.json.</summary>
    /// <exception cref="FormatException">Malformed or incomplete.</exception>
    /// <exception cref="CheckpointFormatException">The embedded configuration is invalid or of an unsupported architecture.</exception>
    public static ModelDeployment FromJson(string json)
    {
        Dto dto;
        try
        {
            dto = JsonSerializer.Deserialize<Dto>(json, Options) ?? throw new FormatException("the deployment descriptor is empty");
        }
        catch (JsonException ex)
        {
            throw new FormatException($"the deployment descriptor is not valid JSON: {ex.Message}", ex);
        }
        if (dto.Config is null || !Enum.TryParse(dto.Rope, out RopeConvention rope) || !Enum.TryParse(dto.Precision, out WeightPrecision precision))
        {
            throw new FormatException("the deployment descriptor needs config, rope (Interleaved|Half) and precision (F32|F16|BF16|Q8_0|Q4_0|Q4_K)");
        }
        // Descriptors written before the KV cache had a precision were measured with an f32 cache.
        KvCachePrecision kvPrecision = KvCachePrecision.F32;
        if (dto.KvPrecision is not null
            && !(Enum.TryParse(dto.KvPrecision, out kvPrecision) && Enum.IsDefined(kvPrecision) && !int.TryParse(dto.KvPrecision, out _)))
        {
            throw new FormatException($"the deployment descriptor's kvPrecision '{dto.KvPrecision}' is not a KV cache precision; use F32, F16, BF16, Q8_0 or Q4_0");
        }
        // Descriptors without the field describe the single-session program.
        int sequences = dto.MaxSequences ?? 1;
        if (sequences is < 1 or > 1024)
        {
            throw new FormatException($"the deployment descriptor's maxSequences {sequences} is not 1..1024");
        }
        Dictionary<string, WeightPrecision>? matrices = null;
        if (dto.MatrixPrecisions is { Count: > 0 })
        {
            matrices = new Dictionary<string, WeightPrecision>(StringComparer.Ordinal);
            foreach ((string name, string value) in dto.MatrixPrecisions)
            {
                if (!Enum.TryParse(value, out WeightPrecision p) || !Enum.IsDefined(p) || int.TryParse(value, out _))
                {
                    throw new FormatException($"the deployment descriptor's matrixPrecisions gives '{name}' the precision '{value}'; use F32, F16, BF16, Q8_0, Q4_0 or Q4_K");
                }
                matrices[name] = p;
            }
        }
        return new ModelDeployment(ModelConfig.Parse(dto.Config, "deployment descriptor"), rope, dto.MaxContext, dto.MaxBatchTokens, precision, kvPrecision, sequences, matrices);
    }

    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true, DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    private sealed record Dto(string Config, string Rope, int MaxContext, int MaxBatchTokens, string Precision, string? KvPrecision = null, int? MaxSequences = null,
        Dictionary<string, string>? MatrixPrecisions = null);
}
