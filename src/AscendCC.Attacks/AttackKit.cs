using System.Text.RegularExpressions;
using AscendCC.Device;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;
using AscendCC.Runtime.Trusted.ModelProviders;

namespace AscendCC.Attacks;

/// <summary>One kernel launch of a task list the host builds (before encoding), so attacks can edit it.</summary>
/// <param name="Operator">The operator's name.</param>
/// <param name="Handle">The loaded operator's handle.</param>
/// <param name="Args">Buffer arguments (device addresses).</param>
/// <param name="Scalars">Scalar arguments.</param>
public sealed record LaunchSpec(string Operator, ulong Handle, KernelArgument[] Args, KernelScalar[] Scalars);

/// <summary>Shared steps of the attacks: legitimate setup, the host's copy of the task list, checks on leaked bytes.</summary>
public static class AttackKit
{
    /// <summary>The prompt the data owner sends in attacks that need one.</summary>
    public static int[] Prompt { get; } = [1, 7, 11, 13, 17];

    /// <summary>Legitimate setup: key release, package load, one whole generation, so every region holds live data.</summary>
    public static CausalLM LoadAndGenerate(Testbed bed, int tokens = 3)
    {
        ArgumentNullException.ThrowIfNull(bed);
        CausalLM llama = bed.Load();
        bed.Generate(llama, Prompt, tokens);
        return llama;
    }

    /// <summary>The program buffer named <paramref name="name"/>.</summary>
    public static ProgramBuffer Buffer(CausalLM llama, string name)
    {
        ArgumentNullException.ThrowIfNull(llama);
        return llama.Layout.Program.Buffers.FirstOrDefault(b => b.Name == name) ?? throw new KeyNotFoundException($"the program has no buffer '{name}'");
    }

    /// <summary>The host's own copy of the task list it loaded (it built it; nothing is read from the device).</summary>
    public static List<LaunchSpec> TaskList(Testbed bed, CausalLM llama)
    {
        ArgumentNullException.ThrowIfNull(bed);
        ArgumentNullException.ThrowIfNull(llama);
        return llama.Layout.Program.Ops.Select(op => new LaunchSpec(
            op.Operator,
            bed.Runtime.LoadOperator(op.Operator),
            op.Args.Select(a => a.Buffer is null ? KernelArgument.None : new KernelArgument(llama.Region(a.Buffer).Address + (ulong)a.Offset, a.Bytes)).ToArray(),
            op.Scalars.Select(s => s.Buffer is null ? new KernelScalar(ScalarSource.Immediate, s.Value) : KernelScalar.FromDevice(llama.Region(s.Buffer).Address + (ulong)s.Offset)).ToArray())).ToList();
    }

    /// <summary>Encodes launches (and optional extra raw tasks written by <paramref name="extra"/> at index <paramref name="extraAt"/>) as task-list bytes.</summary>
    public static byte[] Encode(IReadOnlyList<LaunchSpec> launches, Action<TaskWriter, ulong>? extra = null, int extraAt = -1)
    {
        ArgumentNullException.ThrowIfNull(launches);
        var w = new TaskWriter();
        ulong id = 0;
        for (int i = 0; i <= launches.Count; i++)
        {
            if (extra is not null && i == (extraAt < 0 ? launches.Count : extraAt))
            {
                extra(w, id++);
            }
            if (i < launches.Count)
            {
                LaunchSpec l = launches[i];
                w.KernelLaunch(id++, l.Handle, l.Args, l.Scalars);
            }
        }
        return w.Written.ToArray();
    }

    /// <summary>Loads an edited task list and tries to run it: blocked unless executeModel succeeds.</summary>
    public static AttackResult LoadAndExecute(MaliciousHost host, byte[] taskList, string what)
    {
        ArgumentNullException.ThrowIfNull(host);
        CompletionEntry load = host.LoadModel(taskList);
        if (!load.Succeeded)
        {
            return AttackResult.Blocked($"{what}: LoadModel {MaliciousHost.Describe(load)}");
        }
        CompletionEntry run = host.ExecuteModel((int)load.Result);
        return run.Succeeded
            ? AttackResult.NotBlocked($"{what}: the modified task list loaded as model {load.Result} and executeModel ran it")
            : AttackResult.Blocked($"{what}: LoadModel succeeded (model {load.Result}), executeModel {MaliciousHost.Describe(run)}");
    }

    /// <summary>True when every byte is zero (nothing was copied).</summary>
    public static bool AllZero(ReadOnlySpan<byte> bytes) => !bytes.ContainsAnyExcept((byte)0);

    /// <summary>True when <paramref name="haystack"/> contains any 16-byte window of <paramref name="secret"/>.</summary>
    public static bool ContainsWindowOf(ReadOnlySpan<byte> haystack, ReadOnlySpan<byte> secret, int window = 16)
    {
        for (int i = 0; i + window <= secret.Length; i += window)
        {
            if (haystack.IndexOf(secret.Slice(i, window)) >= 0)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>A D2H read of a region: blocked if the device refused and no byte arrived.</summary>
    public static AttackResult ReadRegion(MaliciousHost host, ulong address, long bytes, string what)
    {
        ArgumentNullException.ThrowIfNull(host);
        (CompletionEntry e, byte[] data) = host.ReadDevice(address, bytes);
        if (e.Succeeded)
        {
            return AttackResult.NotBlocked($"{what}: the device copied {bytes} bytes to the host ({(AllZero(data) ? "all zero" : "non-zero data")})");
        }
        return AllZero(data)
            ? AttackResult.Blocked($"{what}: {MaliciousHost.Describe(e)}")
            : AttackResult.NotBlocked($"{what}: refused ({e.Status}) but bytes reached the host buffer");
    }

    /// <summary>Combines step results: blocked only when every step was blocked.</summary>
    public static AttackResult All(params AttackResult[] steps) =>
        new(steps.All(s => s.IsBlocked) ? AttackOutcome.Blocked : AttackOutcome.NotBlocked, string.Join(" | ", steps.Select(s => s.Evidence)));

    /// <summary>One step: blocked when the completion failed.</summary>
    public static AttackResult Refused(in CompletionEntry e, string what) =>
        e.Succeeded ? AttackResult.NotBlocked($"{what}: {MaliciousHost.Describe(e)}") : AttackResult.Blocked($"{what}: {MaliciousHost.Describe(e)}");

    /// <summary>
    /// Gets the host's own task list attested: it loads the list once to learn its measurement (the
    /// device's refusal names it), signs a package expecting exactly that, has its key released into the
    /// NPU, opens it and loads the list again. Returns the model id, or null and the device's refusal.
    /// </summary>
    public static (int? Model, string Evidence) AttestAsProvider(Testbed bed, byte[] list)
    {
        MaliciousHost host = bed.Attacker;
        CompletionEntry load = host.LoadModel(list);
        CompletionEntry probe = host.ExecuteModel((int)load.Result);
        Match measured = Regex.Match(probe.Detail ?? "", "measured ([0-9A-F]{96})");
        if (!measured.Success)
        {
            return (null, $"measuring the host's list: {MaliciousHost.Describe(probe)}");
        }
        using ModelProvider hostProvider = ModelProvider.CreateDeterministic("the host, playing a model provider, 32+ bytes"u8);
        var builder = new ModelPackageBuilder("host-model") { ExpectedGraphMeasurement = Convert.FromHexString(measured.Groups[1].Value) };
        builder.AddTensor("host.unused", "F32", [4], new byte[16]);
        using var stream = new MemoryStream();
        using ProtectedModel package = hostProvider.BuildPackage(builder, bed.Policy, stream);
        byte[] digest = ReleaseHostKey(bed, hostProvider, package);
        byte[] bytes = stream.ToArray();
        ulong staging = host.Alloc(bytes.Length, RegionTag.InputStaging).Result;
        host.WriteDevice(staging, bytes);
        bed.Mailbox.OpenPackage(staging, bytes.Length, digest);
        CompletionEntry attested = host.LoadModel(list);
        string how = $"signed its own package expecting the list's measurement, key released, list loaded as model {attested.Result}";
        // The verdict shows at executeModel: run the list once with empty parameters (its prompt_open
        // refuses session 0 when the list was verified; R4 refuses the list itself when it was not).
        CompletionEntry dry = host.ExecuteModel((int)attested.Result);
        return dry.Detail?.Contains("R4: the task list", StringComparison.Ordinal) == true
            ? (null, $"{how}; executeModel {MaliciousHost.Describe(dry)}")
            : ((int)attested.Result, $"{how} (dry run: {MaliciousHost.Describe(dry)})");
    }

    /// <summary>The host, as a model provider, attests the NPU and releases its own package's key into it.</summary>
    public static byte[] ReleaseHostKey(Testbed bed, ModelProvider provider, ProtectedModel model)
    {
        using KeyReleaseSession release = provider.BeginKeyRelease(model, bed.Verifier);
        byte[] open = release.Attest(bed.Mailbox.GetHello(release.Nonce.Span));
        (int session, byte[] accept) = bed.Mailbox.AcceptChannel(open);
        return bed.Mailbox.ReleaseModelKey(session, release.CompleteAndRelease(accept));
    }
}
