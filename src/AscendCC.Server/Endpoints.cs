using System.Buffers.Binary;
using System.Text.RegularExpressions;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Confidential;
using Microsoft.AspNetCore.Http.Features;
using AscendCC.Runtime.Inference;
using AscendCC.OpenAi;

namespace AscendCC.Server;

/// <summary>A device as the host lists it.</summary>
/// <param name="Index">Its index in the /v1/devices/{index} routes.</param>
/// <param name="CcMode">Its CC mode: On, or Off on a host started with Npu:Confidential=false.</param>
/// <param name="LoadedPackage">The package loaded on it, or null.</param>
/// <param name="Sessions">Sessions opened through this host and not closed.</param>
public sealed record DeviceInfo(int Index, string CcMode, string? LoadedPackage, int Sessions);

/// <summary>The NPU a new data owner of a package should use.</summary>
/// <param name="Device">Its index.</param>
/// <param name="Package">The package it has loaded.</param>
public sealed record Placement(int Device, string Package);

/// <summary>A channel the device accepted.</summary>
/// <param name="Session">The device's session id.</param>
/// <param name="Accept">The accept record (base64), for the party that sent the open message.</param>
public sealed record SessionAccepted(int Session, byte[] Accept);

/// <summary>A stored package.</summary>
/// <param name="Name">Its name on this host.</param>
/// <param name="Bytes">Its size.</param>
/// <param name="ModelName">The model name from its (public, signed) manifest.</param>
/// <param name="ManifestDigest">The manifest's digest (base64).</param>
/// <param name="ExpectedGraphMeasurement">The graph measurement the manifest expects (base64).</param>
public sealed record PackageInfo(string Name, long Bytes, string ModelName, byte[] ManifestDigest, byte[] ExpectedGraphMeasurement);

/// <summary>Which package to load, for which released key.</summary>
/// <param name="Package">The package's name on this host.</param>
/// <param name="ManifestDigest">The manifest digest the key release returned (base64).</param>
public sealed record LoadRequest(string Package, byte[] ManifestDigest);

/// <summary>A loaded model.</summary>
/// <param name="Package">The package.</param>
/// <param name="PackageHandle">The device's handle of the opened package.</param>
/// <param name="UnlockedBytes">Bytes the device decrypted into locked HBM.</param>
/// <param name="ExpectedGraphMeasurement">What data owners require (base64).</param>
/// <param name="LoadMilliseconds">How long the load took.</param>
public sealed record LoadResult(string Package, int PackageHandle, long UnlockedBytes, byte[] ExpectedGraphMeasurement, long LoadMilliseconds);

/// <summary>The host's HTTP API (docs/server.md describes the bytes).</summary>
public static partial class Endpoints
{
    /// <summary>Content type of a generation's response: frames of a 4-byte big-endian length and a sealed token record.</summary>
    public const string RecordStreamContentType = "application/vnd.ascendcc.sealed-records";

    private const int MaxRecordBytes = 1 << 20;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex PackageName();

    /// <summary>
    /// Maps the endpoints of a host with CC on (<paramref name="confidential"/>: the confidential
    /// protocol, and no plaintext chat endpoint) or CC off (OpenAI's chat completions and models over
    /// the NPUs, and no confidential protocol); health, readiness and the device list either way.
    /// </summary>
    public static void MapNpuEndpoints(this IEndpointRouteBuilder app, bool confidential = true)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapGet("/readyz", (NpuFleet fleet) => fleet.Devices.Count > 0
            ? Results.Ok(new { devices = fleet.Devices.Count })
            : Results.Problem("no NPU booted", statusCode: StatusCodes.Status503ServiceUnavailable));

        RouteGroupBuilder v1 = app.MapGroup("/v1");
        v1.MapGet("/devices", (NpuFleet fleet) => fleet.Devices.Select(d => new DeviceInfo(d.Index, fleet.Options.Confidential ? "On" : "Off", d.LoadedPackage, d.SessionCount)).ToArray());
        if (!confidential)
        {
            app.MapOpenAi();
            return;
        }

        v1.MapGet("/placement", (string package, NpuFleet fleet) => Results.Ok(new Placement(fleet.Place(package).Index, package)));

        v1.MapPost("/devices/{device:int}/hello", async (int device, HttpRequest request, NpuFleet fleet) =>
        {
            NpuSlot npu = fleet[device];
            byte[] nonce = await ReadRecordAsync(request);
            byte[] hello = await OnDevice(npu, () => npu.Mailbox.GetHello(nonce), request.HttpContext.RequestAborted);
            return Results.Bytes(hello, "application/octet-stream");
        });

        v1.MapPost("/devices/{device:int}/sessions", async (int device, HttpRequest request, NpuFleet fleet, ILogger<NpuFleet> log) =>
        {
            NpuSlot npu = fleet[device];
            byte[] open = await ReadRecordAsync(request);
            (int session, byte[] accept) = await OnDevice(npu, () => npu.Mailbox.AcceptChannel(open), request.HttpContext.RequestAborted);
            npu.AddSession(session);
            log.LogInformation("NPU {Device} accepted channel: session {Session}", device, session);
            return Results.Ok(new SessionAccepted(session, accept));
        });

        v1.MapPost("/devices/{device:int}/sessions/{session:int}/key-release", async (int device, int session, HttpRequest request, NpuFleet fleet, ILogger<NpuFleet> log) =>
        {
            NpuSlot npu = fleet[device];
            npu.RequireSession(session);
            byte[] record = await ReadRecordAsync(request);
            byte[] digest = await OnDevice(npu, () => npu.Mailbox.ReleaseModelKey(session, record), request.HttpContext.RequestAborted);
            log.LogInformation("NPU {Device} session {Session}: model key released into the device", device, session);
            return Results.Bytes(digest, "application/octet-stream");
        });

        v1.MapDelete("/devices/{device:int}/sessions/{session:int}", async (int device, int session, NpuFleet fleet, ILogger<NpuFleet> log, CancellationToken cancel) =>
        {
            NpuSlot npu = fleet[device];
            npu.RequireSession(session);
            await OnDevice(npu, () =>
            {
                npu.Mailbox.CloseSession(session);
                return 0;
            }, cancel);
            npu.RemoveSession(session);
            log.LogInformation("NPU {Device} session {Session} closed (context scrubbed)", device, session);
            return Results.NoContent();
        });

        v1.MapPut("/packages/{name}", UploadPackageAsync);

        v1.MapPut("/packages/{name}/deployment", async (string name, HttpRequest request, NpuFleet fleet) =>
        {
            string folder = fleet.Options.ModelStore;
            CheckName(name);
            byte[] body = await ReadRecordAsync(request);
            string json = System.Text.Encoding.UTF8.GetString(body);
            _ = ModelDeployment.FromJson(json);
            await File.WriteAllTextAsync(Path.Combine(folder, name + ".deployment.json"), json, request.HttpContext.RequestAborted);
            return Results.NoContent();
        });

        v1.MapPost("/devices/{device:int}/model", async (int device, LoadRequest load, NpuFleet fleet, ILogger<NpuFleet> log, CancellationToken cancel) =>
        {
            NpuSlot npu = fleet[device];
            CheckName(load.Package);
            string packagePath = Path.Combine(fleet.Options.ModelStore, load.Package + ".ccpkg");
            string deploymentPath = Path.Combine(fleet.Options.ModelStore, load.Package + ".deployment.json");
            if (!File.Exists(packagePath))
            {
                throw new UnknownResourceException($"there is no package '{load.Package}' on this host; upload it with PUT /v1/packages/{load.Package}");
            }
            if (!File.Exists(deploymentPath))
            {
                throw new UnknownResourceException($"package '{load.Package}' has no deployment descriptor; upload it with PUT /v1/packages/{load.Package}/deployment");
            }
            ModelDeployment deployment = ModelDeployment.FromJson(await File.ReadAllTextAsync(deploymentPath, cancel));
            if (npu.Batch is { } previous)
            {
                // The old model's loop stops between steps (its generations fail saying why) before the model goes.
                npu.Batch = null;
                await previous.DisposeAsync();
            }
            return await OnDevice(npu, () =>
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                npu.Loaded?.Dispose();
                npu.Loaded = null;
                npu.LoadedPackage = null;
                // Refused up front, naming the sizes, rather than by an allocation failing halfway through staging.
                AscendCC.Device.DeviceMemoryInfo memory = npu.Runtime.MemoryInfo;
                long needed = deployment.MinimumHbmBytes(), free = memory.Capacity - memory.Allocated;
                if (needed > free)
                {
                    throw new InsufficientHbmException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                        $"package '{load.Package}' ({deployment.Precision} weights, a {deployment.MaxContext}-token context, {deployment.MaxSequences} sequence(s)) needs at least {needed / (double)(1 << 20):F1} MiB of HBM and NPU {device} has {free / (double)(1 << 20):F1} MiB free of {memory.Capacity / (double)(1 << 20):F1} MiB; raise Npu:HbmCapacity (the host's memory backs it), or deploy a smaller precision or context"));
                }
                // The file is read piece by piece as it is staged: never whole into the server's heap, and
                // of any size (a 7B or 8B model's package is over 2 GiB).
                CausalLM llama = CausalLM.LoadConfidential(npu.Runtime, deployment, packagePath, load.ManifestDigest, fleet.Options.Mode);
                npu.Loaded = llama;
                npu.LoadedPackage = load.Package;
                if (llama.MaxSequences > 1)
                {
                    npu.Batch = new BatchLoop(npu, llama, log);
                }
                log.LogInformation("NPU {Device} loaded package {Package} ({UnlockedBytes} bytes unlocked) in {Milliseconds} ms", device, load.Package, llama.UnlockedBytes, clock.ElapsedMilliseconds);
                return Results.Ok(new LoadResult(load.Package, llama.PackageHandle, llama.UnlockedBytes, llama.Manifest!.ExpectedGraphMeasurement.ToArray(), clock.ElapsedMilliseconds));
            }, cancel);
        });

        v1.MapPost("/devices/{device:int}/sessions/{session:int}/generate", GenerateAsync);
    }

    /// <summary>Streams the request body to a file in the model store (never buffered whole), then checks it is a complete package.</summary>
    private static async Task<IResult> UploadPackageAsync(string name, HttpRequest request, NpuFleet fleet, ILogger<NpuFleet> log)
    {
        CheckName(name);
        CancellationToken cancel = request.HttpContext.RequestAborted;
        long limit = fleet.Options.MaxUploadBytes;
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limit;
        }
        if (request.ContentLength > limit)
        {
            throw new RequestTooLargeException($"the package is {request.ContentLength} bytes; this host takes at most {limit} (Npu:MaxUploadBytes)");
        }
        string folder = fleet.Options.ModelStore;
        string final = Path.Combine(folder, name + ".ccpkg");
        string partial = Path.Combine(folder, $"{name}.{Guid.NewGuid():N}.partial");
        long written = 0;
        try
        {
            await using (var file = new FileStream(partial, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                byte[] buffer = new byte[1 << 16];
                int n;
                while ((n = await request.Body.ReadAsync(buffer, cancel)) > 0)
                {
                    written += n;
                    if (written > limit)
                    {
                        throw new RequestTooLargeException($"the package is over {limit} bytes (Npu:MaxUploadBytes)");
                    }
                    await file.WriteAsync(buffer.AsMemory(0, n), cancel);
                }
            }
            if (request.ContentLength is long declared && declared != written)
            {
                throw new FormatException($"the upload is truncated: Content-Length announced {declared} bytes and {written} arrived");
            }
            PackageInfo info;
            using (PackageSource source = PackageSource.OpenFile(partial))
            {
                PackageLayout layout = PackageFile.ReadLayout(source);
                info = new PackageInfo(name, written, layout.Manifest.ModelName, layout.Manifest.Digest.ToArray(), layout.Manifest.ExpectedGraphMeasurement.ToArray());
            }
            File.Move(partial, final, overwrite: true);
            log.LogInformation("package {Package} stored: {Bytes} bytes, model {Model}", name, written, info.ModelName);
            return Results.Ok(info);
        }
        finally
        {
            if (File.Exists(partial))
            {
                File.Delete(partial);
            }
        }
    }

    /// <summary>
    /// Relays a sealed prompt and streams the sealed token records back as the device seals them:
    /// each frame is a 4-byte big-endian length and the record. Refusals before the first record are
    /// problem details; a failure later aborts the connection. A client that disconnects stops the
    /// generation, and the device session is closed (its context scrubbed).
    /// </summary>
    private static async Task GenerateAsync(int device, int session, int promptTokens, int maxTokens, HttpContext context, NpuFleet fleet, ILogger<NpuFleet> log)
    {
        NpuSlot npu = fleet[device];
        npu.RequireSession(session);
        if (maxTokens < 1)
        {
            throw new ArgumentException($"maxTokens is {maxTokens}; ask for at least 1 token", nameof(maxTokens));
        }
        byte[] prompt = await ReadRecordAsync(context.Request);
        CancellationToken cancel = context.RequestAborted;
        if (npu.Batch is { } batch)
        {
            await GenerateBatchedAsync(npu, batch, session, prompt, promptTokens, maxTokens, context, log);
            return;
        }
        await npu.EnterAsync(cancel);
        int produced = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool completed = false;
        try
        {
            CausalLM llama = npu.Loaded ?? throw new InvalidOperationException($"no model is loaded on NPU {device}; upload a package, release its key and POST /v1/devices/{device}/model first");
            using IEnumerator<byte[]> records = llama.Generate(session, prompt, promptTokens, maxTokens).GetEnumerator();
            // The first step runs before the response starts, so that refusals are problem details.
            bool more = records.MoveNext();
            context.Response.ContentType = RecordStreamContentType;
            context.Response.Headers.CacheControl = "no-store";
            await context.Response.StartAsync(cancel);
            byte[] prefix = new byte[4];
            while (more)
            {
                byte[] record = records.Current;
                BinaryPrimitives.WriteInt32BigEndian(prefix, record.Length);
                await context.Response.Body.WriteAsync(prefix, cancel);
                await context.Response.Body.WriteAsync(record, cancel);
                await context.Response.Body.FlushAsync(cancel);
                produced++;
                cancel.ThrowIfCancellationRequested();
                more = records.MoveNext();
            }
            completed = true;
            log.LogInformation("NPU {Device} session {Session}: {Prompt} prompt tokens, {Tokens} sealed token records in {Milliseconds} ms", device, session, promptTokens, produced, clock.ElapsedMilliseconds);
        }
        catch (Exception e) when (context.Response.HasStarted)
        {
            if (e is OperationCanceledException || cancel.IsCancellationRequested)
            {
                log.LogInformation("NPU {Device} session {Session}: client left after {Tokens} records; closing the session", device, session, produced);
            }
            else
            {
                log.LogError(e, "NPU {Device} session {Session}: generation failed after {Tokens} records; closing the session", device, session, produced);
                context.Abort();
            }
        }
        finally
        {
            if (!completed && context.Response.HasStarted)
            {
                CloseQuietly(npu, session, log);
            }
            npu.Leave();
        }
    }

    /// <summary>
    /// <see cref="GenerateAsync"/> on a batched model: the generation joins the NPU's batch loop and
    /// its records are relayed as the loop's steps seal them. The first record (or the refusal of the
    /// prompt) arrives before the response starts; a client that leaves is taken out of the batch by the
    /// loop, which closes its session.
    /// </summary>
    private static async Task GenerateBatchedAsync(NpuSlot npu, BatchLoop batch, int session, byte[] prompt, int promptTokens, int maxTokens, HttpContext context, ILogger log)
    {
        CancellationToken cancel = context.RequestAborted;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        System.Threading.Channels.ChannelReader<byte[]> records = batch.Enqueue(session, prompt, promptTokens, maxTokens, cancel);
        // A refused prompt completes the reader with the device's refusal: a problem-details error.
        bool more = await records.WaitToReadAsync(cancel);
        context.Response.ContentType = RecordStreamContentType;
        context.Response.Headers.CacheControl = "no-store";
        await context.Response.StartAsync(cancel);
        byte[] prefix = new byte[4];
        int produced = 0;
        try
        {
            while (more)
            {
                while (records.TryRead(out byte[]? record))
                {
                    BinaryPrimitives.WriteInt32BigEndian(prefix, record.Length);
                    await context.Response.Body.WriteAsync(prefix, cancel);
                    await context.Response.Body.WriteAsync(record, cancel);
                    produced++;
                }
                await context.Response.Body.FlushAsync(cancel);
                more = await records.WaitToReadAsync(cancel);
            }
            log.LogInformation("NPU {Device} session {Session}: {Tokens} sealed token records relayed in {Milliseconds} ms (batched)", npu.Index, session, produced, clock.ElapsedMilliseconds);
        }
        catch (Exception e) when (e is OperationCanceledException || cancel.IsCancellationRequested)
        {
            log.LogInformation("NPU {Device} session {Session}: client left after {Tokens} records; the batch loop closes the session", npu.Index, session, produced);
            // Also when the device had already sealed every record: the loop closes it at its next step.
            batch.Left(session);
        }
        catch (Exception e)
        {
            log.LogError(e, "NPU {Device} session {Session}: batched generation failed after {Tokens} records", npu.Index, session, produced);
            context.Abort();
        }
    }

    private static void CloseQuietly(NpuSlot npu, int session, ILogger log)
    {
        try
        {
            npu.Mailbox.CloseSession(session);
        }
        catch (FirmwareMailboxException e)
        {
            log.LogWarning("NPU {Device} session {Session}: close refused: {Reason}", npu.Index, session, e.Message);
        }
        npu.RemoveSession(session);
    }

    /// <summary>Runs <paramref name="action"/> with the device to itself.</summary>
    private static async Task<T> OnDevice<T>(NpuSlot npu, Func<T> action, CancellationToken cancel)
    {
        await npu.EnterAsync(cancel);
        try
        {
            return action();
        }
        finally
        {
            npu.Leave();
        }
    }

    private static void CheckName(string name)
    {
        if (!PackageName().IsMatch(name))
        {
            throw new ArgumentException($"'{name}' is not a package name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", nameof(name));
        }
    }

    /// <summary>Reads a small body (a record, nonce, or descriptor) of at most 1 MiB.</summary>
    private static async Task<byte[]> ReadRecordAsync(HttpRequest request)
    {
        if (request.ContentLength > MaxRecordBytes)
        {
            throw new RequestTooLargeException($"the body is {request.ContentLength} bytes; records on this endpoint are at most {MaxRecordBytes}");
        }
        using var buffer = new MemoryStream();
        byte[] chunk = new byte[8192];
        int n;
        while ((n = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted)) > 0)
        {
            if (buffer.Length + n > MaxRecordBytes)
            {
                throw new RequestTooLargeException($"the body is over {MaxRecordBytes} bytes, the most this endpoint takes");
            }
            buffer.Write(chunk, 0, n);
        }
        if (buffer.Length == 0)
        {
            throw new ArgumentException("the request body is empty; this endpoint takes the record bytes as application/octet-stream");
        }
        return buffer.ToArray();
    }
}
