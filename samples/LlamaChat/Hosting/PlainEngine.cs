using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using LlamaChat.Ui;
using Microsoft.Extensions.Logging;

namespace LlamaChat.Hosting;

/// <summary>
/// --no-cc: the same device booted with confidential computing off; the host uploads plaintext
/// weights and reads plaintext tokens (CausalLM). For comparison only — nothing is protected.
/// </summary>
internal sealed class PlainEngine : IChatEngine
{
    private readonly CausalLM _model;

    public PlainEngine(ChatUi ui, SimulatedNpu npu, ModelCheckpoint checkpoint, ExecutionMode mode, int maxContext, int maxBatchTokens,
        WeightPrecision precision, IReadOnlyDictionary<string, WeightPrecision> matrixPrecisions, KvCachePrecision kvCache)
    {
        ui.Step("host", "uploads plaintext weights (CC off: the host can read every byte)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        _model = ui.Status("uploading weights", () => CausalLM.Load(npu.Runtime, checkpoint, new CausalLMOptions
        {
            Mode = mode,
            MaxContext = maxContext,
            MaxBatchTokens = maxBatchTokens,
            WeightPrecision = precision,
            MatrixPrecisions = matrixPrecisions,
            KvCachePrecision = kvCache,
        }));
        ui.Logger.LogInformation("load: plaintext weights uploaded and the {Mode} program loaded in {Milliseconds} ms", mode, clock.ElapsedMilliseconds);
        ui.Evidence("graph measurement (informational; nothing checks it with CC off)", Convert.ToHexStringLower(_model.Program.Measure()));
    }

    public int MaxContext => _model.MaxContext;

    public IEnumerable<int> Generate(IReadOnlyList<int> context, int maxTokens, SamplingOptions sampling, IReadOnlyCollection<int> stopTokens) =>
        _model.Generate(context, maxTokens, sampling, stopTokens);

    public void Dispose() => _model.Dispose();
}
