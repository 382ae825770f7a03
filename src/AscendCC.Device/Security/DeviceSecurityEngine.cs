using System.Security.Cryptography;
using AscendCC.Protocol;
using AscendCC.Protocol.Attestation;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Firmware;
using AscendCC.Protocol.Measurements;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;

namespace AscendCC.Device.Security;

/// <summary>Lifecycle of the security engine.</summary>
internal enum DeviceSecurityState
{
    /// <summary>After reset: nothing booted, no keys.</summary>
    Reset,

    /// <summary>Firmware verified and measured; attestation available.</summary>
    Booted,

    /// <summary>The boot ROM refused the firmware; only a reset helps.</summary>
    BootFailed,
}

/// <summary>Result of accepting a channel: the session handle and the key-confirmation record for the party.</summary>
internal readonly record struct ChannelAcceptance(int SessionId, ChannelRole Role, byte[] AcceptRecord);

/// <summary>
/// The NPU firmware's security core, the single entry point for the device integrator.
/// Order: <see cref="Boot"/> once per reset → <see cref="CreateHello"/> per party (nonce from the party)
/// → <see cref="AcceptChannel"/> with the party's open message → for the model provider,
/// <see cref="UnwrapModelKey"/> then <see cref="OpenModelPackage"/> (after the HBM regions are locked
/// away from the host); for the data owner, <see cref="OpenPrompt"/> and <see cref="SealToken"/>.
/// <see cref="Reset"/> scrubs and forgets everything; it is the only way to change CC mode.
/// Thread-safe: every public member takes the engine lock.
/// </summary>
internal sealed class DeviceSecurityEngine : IDisposable
{
    /// <summary>How many unanswered hellos (ephemeral keys) the device keeps; older ones are destroyed.</summary>
    internal const int MaxPendingHellos = 8;

    private readonly object _lock = new();
    private readonly RootOfTrust _rootOfTrust;
    private readonly TimeProvider _time;
    private readonly SecureChannelOptions _channelOptions;
    private readonly MeasurementRegisters _registers = new();
    private readonly LinkedList<PendingHello> _pending = new();
    private readonly Dictionary<int, SecureChannel> _sessions = [];
    private readonly Dictionary<string, ReleasedModelKey> _modelKeys = new(StringComparer.Ordinal);
    private AttestationIdentity? _attestation;
    private VerifiedFirmware? _firmware;
    private BootConfiguration _configuration;
    private int _nextSession = 1;

    public DeviceSecurityEngine(DeviceFuses fuses, TimeProvider? time = null, SecureChannelOptions? channelOptions = null)
    {
        _rootOfTrust = new RootOfTrust(fuses);
        _time = time ?? TimeProvider.System;
        _channelOptions = channelOptions ?? SecureChannelOptions.Default;
    }

    /// <summary>Leaving or entering CC mode needs a reset with scrub; stated as data so host-facing code can report it.</summary>
    public static bool ModeChangeRequiresReset => true;

    public DeviceSecurityState State { get; private set; } = DeviceSecurityState.Reset;

    /// <summary>CC mode of the current boot (<see cref="CcMode.Off"/> when not booted).</summary>
    public CcMode Mode => State == DeviceSecurityState.Booted ? _configuration.Mode : CcMode.Off;

    /// <summary>Debug state locked in at boot.</summary>
    public DebugState DebugState => State == DeviceSecurityState.Booted ? _configuration.EffectiveDebugState : DebugState.Unlocked;

    /// <summary>The booted firmware image, or null.</summary>
    public FirmwareImage? Firmware => _firmware?.Image;

    /// <summary>Current measurement registers.</summary>
    public MeasurementSet Measurements
    {
        get
        {
            lock (_lock)
            {
                return _registers.Snapshot();
            }
        }
    }

    /// <summary>The attestation public key of the booted firmware (SubjectPublicKeyInfo), for tests and diagnostics.</summary>
    public byte[] AttestationPublicKey()
    {
        lock (_lock)
        {
            return RequireBooted().Key.ExportSubjectPublicKeyInfo();
        }
    }

    /// <summary>Runs the boot ROM on <paramref name="signedFirmware"/> and derives the firmware's attestation key.</summary>
    /// <exception cref="FirmwareRejectedException">Bad signature, malformed image or rollback; the device stays unbooted until reset.</exception>
    /// <exception cref="ModeChangeRequiresResetException">Already booted (a second boot could change the mode without scrub).</exception>
    /// <param name="signedFirmware">The CMS-signed image.</param>
    /// <param name="configuration">CC mode and debug request.</param>
    /// <param name="commitSecurityVersion">After a successful boot, advance the anti-rollback fuses to the image's SVN (a security update).</param>
    public void Boot(ReadOnlySpan<byte> signedFirmware, BootConfiguration configuration, bool commitSecurityVersion = false)
    {
        lock (_lock)
        {
            if (State != DeviceSecurityState.Reset)
            {
                throw new ModeChangeRequiresResetException("The device has already run its boot ROM; reset (with scrub) before booting again or changing CC mode.");
            }
            try
            {
                _firmware = BootRom.Boot(_rootOfTrust.Fuses, signedFirmware, configuration, _registers, _time.GetUtcNow().UtcDateTime);
            }
            catch
            {
                State = DeviceSecurityState.BootFailed;
                throw;
            }
            if (commitSecurityVersion)
            {
                _rootOfTrust.Fuses.AdvanceAntiRollbackCounter(_firmware.Image.SecurityVersion);
            }
            _configuration = configuration;
            _attestation = _rootOfTrust.DeriveAttestationIdentity(_registers.Snapshot()[MeasurementRegisterId.Firmware], _firmware.Image.SecurityVersion);
            State = DeviceSecurityState.Booted;
        }
    }

    /// <summary>Extends the Model register with an attested graph measurement (a confidential model was accepted).</summary>
    public void ExtendModelMeasurement(ReadOnlySpan<byte> graphMeasurement)
    {
        lock (_lock)
        {
            RequireBooted();
            _registers.ExtendDigest(MeasurementRegisterId.Model, graphMeasurement);
        }
    }

    /// <summary>Refuses a mode change on a booted device; the caller must <see cref="Reset"/> and boot with the new configuration.</summary>
    /// <exception cref="ModeChangeRequiresResetException">The device is booted in another mode.</exception>
    public void RequestModeChange(CcMode newMode)
    {
        lock (_lock)
        {
            if (State == DeviceSecurityState.Booted && newMode != _configuration.Mode)
            {
                throw new ModeChangeRequiresResetException($"Changing CC mode from {_configuration.Mode} to {newMode} requires a device reset with scrub, then a boot with the new configuration.");
            }
        }
    }

    /// <summary>
    /// Resets the security engine: calls <paramref name="scrubDeviceMemory"/> (the integrator zeroes every
    /// confidential HBM region there, before anything can be remapped to the host), then destroys
    /// channels, model keys, pending ephemeral keys and the attestation key, and clears the registers.
    /// </summary>
    public void Reset(Action scrubDeviceMemory)
    {
        ArgumentNullException.ThrowIfNull(scrubDeviceMemory);
        lock (_lock)
        {
            scrubDeviceMemory();
            foreach (SecureChannel channel in _sessions.Values)
            {
                channel.Dispose();
            }
            _sessions.Clear();
            foreach (ReleasedModelKey key in _modelKeys.Values)
            {
                key.Dispose();
            }
            _modelKeys.Clear();
            foreach (PendingHello hello in _pending)
            {
                hello.Key.Dispose();
            }
            _pending.Clear();
            _attestation?.Dispose();
            _attestation = null;
            _firmware = null;
            _registers.Reset();
            State = DeviceSecurityState.Reset;
        }
    }

    /// <summary>
    /// Creates a fresh ephemeral ECDH key and an attestation report over it and <paramref name="nonce"/>;
    /// returns the encoded <see cref="DeviceHello"/>. The private ephemeral key stays here until a party
    /// opens a channel on this report (single use) or it is evicted.
    /// </summary>
    public byte[] CreateHello(ReadOnlySpan<byte> nonce)
    {
        if (nonce.Length != AttestationReport.NonceSize)
        {
            throw new ArgumentException("The verifier nonce is 32 bytes.", nameof(nonce));
        }
        lock (_lock)
        {
            AttestationIdentity attestation = RequireBooted();
            var ephemeral = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP384);
            try
            {
                byte[] share = KeyShare.Export(ephemeral);
                byte[] report = AttestationReport.CreateSigned(
                    _registers.Snapshot(), _configuration.Mode, _configuration.EffectiveDebugState,
                    _firmware!.Image.Version, _firmware.Image.SecurityVersion, nonce, share,
                    _rootOfTrust.Fuses.IdentityCertificate, attestation.Certificate, attestation.Key);
                _pending.AddLast(new PendingHello(SHA384.HashData(report), ephemeral));
                while (_pending.Count > MaxPendingHellos)
                {
                    _pending.First!.Value.Key.Dispose();
                    _pending.RemoveFirst();
                }
                return new DeviceHello(report, share).Encode();
            }
            catch
            {
                ephemeral.Dispose();
                throw;
            }
        }
    }

    /// <summary>Accepts a party's channel-open message for one of this device's pending reports.</summary>
    /// <exception cref="ProtocolFormatException">Malformed open message.</exception>
    /// <exception cref="ChannelHandshakeException">The report is unknown, already used or evicted.</exception>
    public ChannelAcceptance AcceptChannel(ReadOnlySpan<byte> openMessage)
    {
        ChannelOpen open = ChannelOpen.Parse(openMessage);
        lock (_lock)
        {
            RequireBooted();
            LinkedListNode<PendingHello>? node = _pending.First;
            while (node is not null && !CryptographicOperations.FixedTimeEquals(node.Value.ReportDigest, open.ReportDigest.Span))
            {
                node = node.Next;
            }
            if (node is null)
            {
                throw new ChannelHandshakeException("No pending attestation report matches the open message: it was already used, evicted, or never issued by this boot. Request a new hello.");
            }
            _pending.Remove(node);
            using ECDiffieHellman ephemeral = node.Value.Key;
            SecureChannel channel = ChannelResponder.Accept(ephemeral, node.Value.ReportDigest, open, _channelOptions, out byte[] accept);
            int id = _nextSession++;
            _sessions.Add(id, channel);
            return new ChannelAcceptance(id, open.Role, accept);
        }
    }

    /// <summary>Closes a session and destroys its keys.</summary>
    public void CloseSession(int sessionId)
    {
        lock (_lock)
        {
            if (_sessions.Remove(sessionId, out SecureChannel? channel))
            {
                channel.Dispose();
            }
        }
    }

    /// <summary>
    /// Opens a model-key release record from a model-provider session. The key is kept in device
    /// memory, indexed by the manifest digest it was released for; only the digest is returned.
    /// </summary>
    /// <exception cref="DeviceSecurityException">The session is not a model-provider session, or the device is not in CC mode On with debug locked.</exception>
    /// <exception cref="SecureChannelException">The record is not authentic or not in sequence.</exception>
    public byte[] UnwrapModelKey(int sessionId, ReadOnlySpan<byte> record)
    {
        lock (_lock)
        {
            RequireBooted();
            SecureChannel channel = RequireSession(sessionId, ChannelRole.ModelProvider);
            if (_configuration.Mode != CcMode.On || _configuration.EffectiveDebugState != DebugState.Locked)
            {
                throw new DeviceSecurityException("Model keys are accepted only in CC mode On with debug locked.");
            }
            byte[] plaintext = GC.AllocateArray<byte>(SecureChannel.PeekPlaintextLength(record), pinned: true);
            try
            {
                channel.Open(record, plaintext, out RecordType type);
                if (type != RecordType.ModelKeyRelease)
                {
                    throw new DeviceSecurityException($"Expected a model key release record, received {type}.");
                }
                (byte[] digest, byte[] spki, ModelKey key) = ModelKeyRelease.Decode(plaintext);
                ECDsa providerKey = ECDsa.Create();
                try
                {
                    providerKey.ImportSubjectPublicKeyInfo(spki, out int read);
                    if (read != spki.Length || providerKey.KeySize != 384)
                    {
                        throw new ProtocolFormatException("model key release", "providerKey", "is not a P-384 SubjectPublicKeyInfo");
                    }
                }
                catch (CryptographicException ex)
                {
                    providerKey.Dispose();
                    key.Dispose();
                    throw new ProtocolFormatException("Malformed model key release: the provider key cannot be imported.", ex);
                }
                string id = Convert.ToHexString(digest);
                if (_modelKeys.Remove(id, out ReleasedModelKey? previous))
                {
                    previous.Dispose();
                }
                _modelKeys.Add(id, new ReleasedModelKey(key, providerKey));
                return digest;
            }
            finally
            {
                CryptographicOperations.ZeroMemory(plaintext);
            }
        }
    }

    /// <summary>
    /// Opens a model package with a key released to this device: verifies the manifest signature with the
    /// provider key that came with the release, checks the manifest digest matches the release, checks the
    /// release policy against the device's own state, and unlocks. Call only after the destination HBM
    /// regions are unmapped from the host (R2); the reader decrypts straight into them.
    /// </summary>
    /// <exception cref="DeviceSecurityException">No key was released for this package or the device does not satisfy its policy.</exception>
    /// <param name="package">The staged package.</param>
    /// <param name="manifestDigest">The manifest digest the key was released for.</param>
    /// <param name="identity">The package's <see cref="PackageIdentity"/>: the provider key the release came with, and the manifest's model name.</param>
    public ModelPackageReader OpenModelPackage(Stream package, ReadOnlySpan<byte> manifestDigest, out byte[] identity)
    {
        lock (_lock)
        {
            RequireBooted();
            if (!_modelKeys.TryGetValue(Convert.ToHexString(manifestDigest), out ReleasedModelKey? released))
            {
                throw new DeviceSecurityException("No model key has been released to this device for that manifest digest.");
            }
            ModelPackageReader reader = ModelPackageReader.Open(package, released.ProviderKey);
            try
            {
                if (!CryptographicOperations.FixedTimeEquals(reader.Manifest.Digest.Span, manifestDigest))
                {
                    throw new DeviceSecurityException("The package's manifest is not the one the model key was released for.");
                }
                EnforcePolicy(reader.Manifest.Policy);
                reader.Unlock(released.Key);
                identity = PackageIdentity.Compute(released.ProviderKey.ExportSubjectPublicKeyInfo(), reader.Manifest.ModelName);
                return reader;
            }
            catch
            {
                reader.Dispose();
                throw;
            }
        }
    }

    /// <summary>Decrypts a prompt record from a data-owner session.</summary>
    public PromptRequest OpenPrompt(int sessionId, ReadOnlySpan<byte> record)
    {
        lock (_lock)
        {
            SecureChannel channel = RequireSession(sessionId, ChannelRole.DataOwner);
            byte[] plaintext = channel.Open(record, RecordType.Prompt);
            try
            {
                return PromptMessage.Decode(plaintext);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(plaintext);
            }
        }
    }

    /// <summary>True when <paramref name="sessionId"/> is an open data-owner session.</summary>
    public bool IsDataOwnerSession(int sessionId)
    {
        lock (_lock)
        {
            return _sessions.TryGetValue(sessionId, out SecureChannel? c) && c.Role == ChannelRole.DataOwner;
        }
    }

    /// <summary>Seals one output token for a data-owner session into a fixed-size record.</summary>
    public byte[] SealToken(int sessionId, TokenMessage token)
    {
        lock (_lock)
        {
            SecureChannel channel = RequireSession(sessionId, ChannelRole.DataOwner);
            Span<byte> plaintext = stackalloc byte[TokenMessage.EncodedSize];
            token.Encode(plaintext);
            byte[] record = channel.Seal(RecordType.Token, plaintext);
            CryptographicOperations.ZeroMemory(plaintext);
            return record;
        }
    }

    public void Dispose() => Reset(static () => { });

    private void EnforcePolicy(ReleasePolicy policy)
    {
        var problems = new List<string>();
        if (_configuration.Mode != ReleasePolicy.RequiredCcMode)
        {
            problems.Add($"CC mode is {_configuration.Mode}");
        }
        if (_configuration.EffectiveDebugState != DebugState.Locked)
        {
            problems.Add("debug is unlocked");
        }
        if (_firmware!.Image.SecurityVersion < policy.MinimumSvn)
        {
            problems.Add($"SVN {_firmware.Image.SecurityVersion} < {policy.MinimumSvn}");
        }
        ReadOnlySpan<byte> fw = _registers.Snapshot()[MeasurementRegisterId.Firmware];
        bool measured = false;
        foreach (ReadOnlyMemory<byte> allowed in policy.RequiredFirmwareMeasurements)
        {
            measured |= allowed.Span.SequenceEqual(fw);
        }
        if (!measured)
        {
            problems.Add("firmware measurement not allowed by the policy");
        }
        if (!policy.AllowedManufacturerRootSha256.Span.SequenceEqual(ReleasePolicy.RootDigest(_rootOfTrust.Fuses.ManufacturerRoot)))
        {
            problems.Add("manufacturer root not allowed by the policy");
        }
        if (problems.Count > 0)
        {
            throw new DeviceSecurityException("This device does not satisfy the package's release policy: " + string.Join("; ", problems) + ".");
        }
    }

    private AttestationIdentity RequireBooted() =>
        State == DeviceSecurityState.Booted && _attestation is not null
            ? _attestation
            : throw new DeviceSecurityException($"The device is in state {State}; boot signed firmware first.");

    private SecureChannel RequireSession(int sessionId, ChannelRole role)
    {
        if (!_sessions.TryGetValue(sessionId, out SecureChannel? channel))
        {
            throw new DeviceSecurityException($"Session {sessionId} does not exist or was closed.");
        }
        if (channel.Role != role)
        {
            throw new DeviceSecurityException($"Session {sessionId} belongs to the {channel.Role}, not the {role}.");
        }
        return channel;
    }

    private sealed record PendingHello(byte[] ReportDigest, ECDiffieHellman Key);

    private sealed class ReleasedModelKey(ModelKey key, ECDsa providerKey) : IDisposable
    {
        public ModelKey Key { get; } = key;

        public ECDsa ProviderKey { get; } = providerKey;

        public void Dispose()
        {
            Key.Dispose();
            ProviderKey.Dispose();
        }
    }
}
