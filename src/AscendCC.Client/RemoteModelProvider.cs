using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.Client;

/// <summary>
/// The model provider's side of a remote deployment: upload the encrypted package, attest the target
/// NPU over the network, release the model key into it through a channel bound to that attestation,
/// and have the host load the package. The key leaves this machine only sealed to the attested device.
/// </summary>
public static class RemoteModelProvider
{
    /// <summary>
    /// Deploys <paramref name="model"/> (its encrypted bytes in <paramref name="package"/>) on
    /// <paramref name="npu"/> under <paramref name="name"/>, releasing its key only if the device's
    /// attestation satisfies <paramref name="verifier"/> and the package's release policy.
    /// </summary>
    /// <returns>The loaded model as the host reports it; its <see cref="RemoteModel.ExpectedGraphMeasurement"/> is what data owners require.</returns>
    /// <exception cref="AttestationFailedException">The device's attestation failed (no key was released; the package stays stored but locked).</exception>
    public static async Task<RemoteModel> DeployAsync(RemoteNpu npu, ModelProvider provider, ProtectedModel model, AttestationVerifier verifier,
        string name, Stream package, ModelDeployment deployment, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(npu);
        ArgumentNullException.ThrowIfNull(deployment);
        await npu.UploadPackageAsync(name, package, deployment.ToJson(), cancel).ConfigureAwait(false);
        return await ReleaseAndLoadAsync(npu, provider, model, verifier, name, cancel).ConfigureAwait(false);
    }

    /// <summary>
    /// Releases <paramref name="model"/>'s key into <paramref name="npu"/> if its attestation passes and
    /// has the host load the package already stored there as <paramref name="name"/> (for a package
    /// uploaded once and deployed on several NPUs of the same host).
    /// </summary>
    /// <exception cref="AttestationFailedException">The device's attestation failed (no key was released).</exception>
    public static async Task<RemoteModel> ReleaseAndLoadAsync(RemoteNpu npu, ModelProvider provider, ProtectedModel model, AttestationVerifier verifier,
        string name, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(npu);
        ArgumentNullException.ThrowIfNull(provider);
        ArgumentNullException.ThrowIfNull(model);
        byte[] digest;
        using (KeyReleaseSession release = provider.BeginKeyRelease(model, verifier))
        {
            byte[] open = release.Attest(await npu.GetHelloAsync(release.Nonce, cancel).ConfigureAwait(false));
            RemoteSession session = await npu.AcceptChannelAsync(open, cancel).ConfigureAwait(false);
            try
            {
                digest = await npu.ReleaseModelKeyAsync(session.Session, release.CompleteAndRelease(session.Accept), cancel).ConfigureAwait(false);
            }
            finally
            {
                await npu.CloseSessionAsync(session.Session, CancellationToken.None).ConfigureAwait(false);
            }
        }
        RemoteModel loaded = await npu.LoadModelAsync(name, digest, cancel).ConfigureAwait(false);
        if (!loaded.ExpectedGraphMeasurement.AsSpan().SequenceEqual(model.Manifest.ExpectedGraphMeasurement.Span))
        {
            // The host reports what it loaded; the device binds data owners to the manifest's measurement anyway.
            throw new RemoteNpuException($"the host reports graph measurement {Convert.ToHexString(loaded.ExpectedGraphMeasurement)} for '{name}', not the package's {Convert.ToHexString(model.Manifest.ExpectedGraphMeasurement.Span)}");
        }
        return loaded;
    }
}
