using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Measurements;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Driver;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Trusted.DataOwners;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;
using LlamaChat.Ui;
using Microsoft.Extensions.Logging;

namespace LlamaChat.Hosting;

/// <summary>
/// Confidential chat, every party in one process but apart: the model provider exports the
/// checkpoint as an encrypted package and releases its key only to the attested NPU; the host stages
/// the package and relays records; the data owner attests the NPU on its own channel, seals the
/// prompt and opens the sealed tokens. The host-side objects (CausalLM, mailbox) never
/// receive a key, a weight or a plaintext token.
/// </summary>
internal sealed class ConfidentialEngine : IChatEngine
{
    private readonly ChatUi _ui;
    private readonly SimulatedNpu _npu;
    private readonly CausalLM _llama;
    private DataOwnerSession? _owner;
    private int _ownerSession;
    // The model's published graph measurement: the data owner requires it, so the device answers its
    // prompts with this model and no other.
    private readonly byte[] _model = [];

    public ConfidentialEngine(ChatUi ui, SimulatedNpu npu, ModelCheckpoint checkpoint, string modelName, ExecutionMode mode, int maxContext, int maxBatchTokens,
        WeightPrecision precision, IReadOnlyDictionary<string, WeightPrecision> matrixPrecisions, KvCachePrecision kvCache)
    {
        _ui = ui;
        _npu = npu;
        var deployment = new ModelDeployment(checkpoint.Config, checkpoint.RopeConvention, maxContext, maxBatchTokens, precision, kvCache, MatrixPrecisions: matrixPrecisions);
        // The provider's package is a file, as it is when a provider ships one to a cloud: the host stages
        // it from there piece by piece, so it may be larger than 2 GiB (a 7B or 8B model's is).
        string packagePath = Path.Combine(Path.GetTempPath(), $"ascendcc-{Environment.ProcessId}-{Guid.NewGuid():N}.ccpkg");
        long packageBytes;
        byte[] manifestDigest;
        int weights = deployment.BuildProgram().Weights.Count;
        try
        {
            // ---- model provider: plaintext weights exist only inside this block ----
            using (var provider = ModelProvider.Create())
            {
                ui.Step("model provider", $"exports '{modelName}' as a confidential package (AES-256-GCM chunks, signed manifest)");
                var policy = new ReleasePolicy(npu.Firmware.SecurityVersion, [ReferenceMeasurements.ExpectedFirmwareRegister(npu.Firmware.Encode())], ReleasePolicy.RootDigest(npu.Manufacturer.RootCertificate));
                var clock = System.Diagnostics.Stopwatch.StartNew();
                ProtectedModel model;
                using (var output = new FileStream(packagePath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
                {
                    // Streamed: each weight is read and converted twice (digests, then encryption), one at a
                    // time, so the provider's side never holds the whole model beside the NPU's copy.
                    model = ui.Progress("hashing and encrypting weights", 2 * weights, report =>
                    {
                        int done = 0;
                        return ModelPackageExporter.Export(provider, deployment, name =>
                        {
                            report(++done, name);
                            return TensorData.FromCheckpoint(checkpoint.GetTensor(name));
                        }, policy, output, modelName, streaming: true);
                    });
                    packageBytes = output.Length;
                }
                using (model)
                {
                    ui.Logger.LogInformation("load: package exported, {Bytes} bytes in {Items} items, weights encrypted in {Milliseconds} ms", packageBytes, model.Manifest.Items.Count, clock.ElapsedMilliseconds);
                    ui.Logger.LogDebug("load: the package is the file {Path} until the host has staged it", packagePath);
                    ui.Evidence("package", $"{packageBytes:N0} bytes, {model.Manifest.Items.Count} items");
                    ui.Evidence("manifest digest", Convert.ToHexStringLower(model.Manifest.Digest.Span));
                    ui.Evidence("expected graph measurement (signed)", Convert.ToHexStringLower(model.Manifest.ExpectedGraphMeasurement.Span));
                    _model = model.Manifest.ExpectedGraphMeasurement.ToArray();
                    ui.Evidence("release policy", $"SVN >= {policy.MinimumSvn}, firmware pinned, manufacturer root pinned, CC on, debug locked");

                    ui.Step("model provider", "attests the NPU against the package's release policy and releases the model key into it");
                    clock.Restart();
                    using KeyReleaseSession release = provider.BeginKeyRelease(model, npu.Verifier);
                    byte[] open;
                    try
                    {
                        open = release.Attest(npu.Mailbox.GetHello(release.Nonce.Span));
                    }
                    finally
                    {
                        if (release.Result is { } r)
                        {
                            ShowAttestation("model provider", r);
                        }
                    }
                    (int session, byte[] accept) = npu.Mailbox.AcceptChannel(open);
                    manifestDigest = npu.Mailbox.ReleaseModelKey(session, release.CompleteAndRelease(accept));
                    ui.Logger.LogInformation("key release: model key released into device session {Session} for manifest {Digest} in {Milliseconds} ms (attestation, channel, release)", session, Convert.ToHexStringLower(manifestDigest), clock.ElapsedMilliseconds);
                    ui.Evidence("device confirms key for manifest", Convert.ToHexStringLower(manifestDigest));
                }
            }

            // ---- host: stages ciphertext, has the device unlock it into locked HBM, loads the attested program ----
            ui.Step("cloud host", $"stages the package in HBM; the NPU locks its regions, unlocks {weights} weights inside and attests the {mode} task list");
            IHostTranscript? transcript = npu.Runtime.Driver.Transcript;
            _llama = ui.Progress("unlocking weights in the NPU", weights, report =>
            {
                var counting = new CountingTranscript(transcript, n => report(Math.Min(n, weights), $"{Math.Min(n, weights)}/{weights}"));
                npu.Runtime.Driver.Transcript = counting;
                try
                {
                    return CausalLM.LoadConfidential(npu.Runtime, deployment, packagePath, manifestDigest, mode);
                }
                finally
                {
                    counting.Muted = true;
                    npu.Runtime.Driver.Transcript = transcript;
                }
            });
        }
        finally
        {
            File.Delete(packagePath);
        }
        LoadTimings t = _llama.Timings!;
        ui.Logger.LogInformation("load: staged {Weights} weight regions in {StageMs:F1} ms, opened the package in {OpenMs:F1} ms, unlocked {Bytes} bytes in {UnlockMs:F1} ms, attested the {Mode} task list in {AttestMs:F1} ms",
            weights, t.Stage.TotalMilliseconds, t.Open.TotalMilliseconds, _llama.UnlockedBytes, t.Unlock.TotalMilliseconds, mode, t.Attest.TotalMilliseconds);
        ui.Evidence("graph measurement (device accepted)", Convert.ToHexStringLower(_model));
        MaxContext = deployment.MaxContext;
        // The data owner attests now rather than at its first prompt, so in a chat its evidence comes
        // before the first "llama>" instead of inside the streamed reply.
        try
        {
            EnsureDataOwner();
        }
        catch
        {
            _llama.Dispose();
            throw;
        }
    }

    public int MaxContext { get; }

    public IEnumerable<int> Generate(IReadOnlyList<int> context, int maxTokens, SamplingOptions sampling, IReadOnlyCollection<int> stopTokens)
    {
        DataOwnerSession owner = EnsureDataOwner();
        int[] prompt = context.ToArray();
        // ---- data owner: seals the prompt with its sampling settings and the model it requires; the host learns only its token count ----
        byte[] sealedPrompt = owner.EncryptPrompt(prompt, sampling);
        _ui.Logger.LogDebug("data owner sealed {Tokens} prompt tokens into {Bytes} bytes", prompt.Length, sealedPrompt.Length);
        foreach (byte[] record in _llama.Generate(_ownerSession, sealedPrompt, prompt.Length, maxTokens))
        {
            // ---- the host relayed a sealed record; only the data owner opens it ----
            TokenMessage token = owner.DecryptToken(record);
            yield return token.TokenId;
            if (stopTokens.Contains(token.TokenId))
            {
                yield break;
            }
        }
    }

    private DataOwnerSession EnsureDataOwner()
    {
        if (_owner is not null)
        {
            return _owner;
        }
        _ui.Step("data owner", "attests the NPU on its own channel (default policy: CC on, debug locked, manufacturer-published firmware at or above the TCB minimum SVN, device not revoked)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var owner = new DataOwnerSession(_npu.Verifier) { RequiredModel = _model };
        try
        {
            byte[] open;
            try
            {
                open = owner.Attest(_npu.Mailbox.GetHello(owner.Nonce.Span));
            }
            finally
            {
                if (owner.Result is { } r)
                {
                    ShowAttestation("data owner", r);
                }
            }
            (int session, byte[] accept) = _npu.Mailbox.AcceptChannel(open);
            owner.Complete(accept);
            _ui.Evidence("data owner channel", $"device session {session}, ECDH P-384 + HKDF, AES-256-GCM per direction");
            _ui.Logger.LogInformation("data owner: attested the NPU and opened device session {Session} in {Milliseconds} ms", session, clock.ElapsedMilliseconds);
            _owner = owner;
            _ownerSession = session;
            return owner;
        }
        catch
        {
            owner.Dispose();
            throw;
        }
    }

    private void ShowAttestation(string verifier, AttestationResult result)
    {
        if (result.Report is { } report)
        {
            _ui.Evidence("firmware measurement (attested)", report.Measurements.ToHex(MeasurementRegisterId.Firmware));
            _ui.Evidence("firmware", $"version {report.FirmwareVersion}, SVN {report.FirmwareSvn}, CC {report.CcMode}, debug {report.DebugState}");
        }
        _ui.Checks(verifier, result);
    }

    public void Dispose()
    {
        if (_owner is not null)
        {
            // The host ends the device session with the chat: its keys are destroyed and the context scrubbed.
            _npu.Mailbox.CloseSession(_ownerSession);
        }
        _owner?.Dispose();
        _llama.Dispose();
    }
}
