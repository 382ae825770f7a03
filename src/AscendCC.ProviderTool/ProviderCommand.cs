using System.CommandLine;
using AscendCC.Client;
using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;

namespace AscendCC.ProviderTool;

/// <summary>
/// <c>ascendcc-provider deploy</c>: the model provider's whole remote deployment from its own machine.
/// The plaintext weights and the model key never leave this process except as ciphertext and as a key
/// record sealed to an NPU whose attestation passed; stdout gets the model's graph measurement (what
/// data owners require), stderr the steps. <c>ascendcc-provider export-gguf</c>: the same checkpoint as a
/// llama.cpp GGUF file on the provider's own disk, so the weights it deploys can be checked against llama.cpp.
/// </summary>
internal static class ProviderCommand
{
    private const string Description = """
        ascendcc-provider: deploy a model to an AscendCC server as its model provider.

        Examples:
          ascendcc-provider deploy ./stories260K --server http://npu-host:8080 --manufacturer ./manufacturer
                                   encrypt, upload, attest NPU 0, release the key, load; prints the graph measurement
          ascendcc-provider deploy ./model --server URL --manufacturer DIR --device all --ctx-size 1024 --precision bf16
          ascendcc-provider deploy ./tinyllama.Q4_K_M.gguf --server URL --manufacturer DIR
                                   a GGUF deploys in the precision it stores (here Q4_K, its Q6_K matrices in Q8_0)
          ascendcc-provider export-gguf ./Llama-3.2-1B --out llama-3.2-1b.gguf --type q8_0
                                   write the checkpoint as a llama.cpp GGUF (weights, tokenizer, chat template)
        """;

    /// <summary>The command line, writing results to <paramref name="stdout"/> and steps and errors to <paramref name="stderr"/>.</summary>
    public static RootCommand Create(TextWriter stdout, TextWriter stderr)
    {
        var model = new Argument<string>("model") { Description = "Hugging Face model folder (config.json, *.safetensors) or a llama.cpp .gguf file." };
        var server = new Option<string>("--server", "-s") { Description = "The AscendCC server's URL (http or https).", Required = true };
        var manufacturer = new Option<string>("--manufacturer") { Description = "Folder of the manufacturer's publications (root.pem, reference-measurements.p7, tcb-recovery.p7, revocations.crl): the only trust anchor.", Required = true };
        var name = new Option<string?>("--name") { Description = "The package's name on the server. Default: the model folder's name." };
        var device = new Option<string>("--device", "-d") { Description = "NPU index, or 'all'.", DefaultValueFactory = _ => "0" };
        var contextSize = new Option<int>("--ctx-size", "-c") { Description = "Tokens of context the deployment provides; default: the model's maximum, at most 2048." };
        var batch = new Option<int>("--batch-tokens") { Description = "Most prompt tokens per pass.", DefaultValueFactory = _ => 64 };
        var precision = new Option<string>("--precision")
        {
            Description = "Weight precision on the device: auto (what the checkpoint stores: a Q4_K_M .gguf deploys in Q4_K with its Q6_K matrices in Q8_0, a BF16 folder in BF16, an F32 one in F32), f32, f16, bf16, q8_0, q4_0 or q4_k. Part of the measurement.",
            DefaultValueFactory = _ => "auto",
        };
        precision.AcceptOnlyFromAmong("auto", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k");
        var kvCache = new Option<string>("--kv-cache") { Description = "KV cache precision on the device: f32, f16, bf16, q8_0 or q4_0 (llama.cpp's cache types; default f16; it is part of the measurement).", DefaultValueFactory = _ => CausalLMOptions.DefaultKvCachePrecision.ToString().ToLowerInvariant() };
        kvCache.AcceptOnlyFromAmong("f32", "f16", "bf16", "q8_0", "q4_0");
        var sequences = new Option<int>("--sequences") { Description = "Data owners' sessions the NPU answers at once (batched decode; 1 = one at a time). Part of the measurement.", DefaultValueFactory = _ => 1 };

        var deploy = new Command("deploy", "Encrypt the model here, upload it, attest the NPU(s), release the key into each and load it.")
        {
            model, server, manufacturer, name, device, contextSize, batch, precision, kvCache, sequences,
        };
        deploy.SetAction(async (r, cancel) =>
        {
            try
            {
                await DeployAsync(new DeployRequest(r.GetValue(model)!, ServerUri(r.GetValue(server)!), r.GetValue(manufacturer)!, r.GetValue(name), r.GetValue(device)!,
                    r.GetValue(contextSize), r.GetValue(batch), r.GetValue(precision) is { } p && p != "auto" ? Enum.Parse<WeightPrecision>(p, ignoreCase: true) : null,
                    Enum.Parse<KvCachePrecision>(r.GetValue(kvCache)!, ignoreCase: true), r.GetValue(sequences)), stdout, stderr, cancel);
                return 0;
            }
            catch (Exception e) when (e is AttestationFailedException)
            {
                await stderr.WriteLineAsync($"error: the NPU's attestation failed; no key was released.\n{e.Message}");
                return 3;
            }
            catch (Exception e) when (e is RemoteNpuException or HttpRequestException)
            {
                await stderr.WriteLineAsync($"error: the server refused or could not be reached: {e.Message}");
                return 2;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException or FormatException
                or System.Text.Json.JsonException or InvalidOperationException or System.Security.Cryptography.CryptographicException)
            {
                await stderr.WriteLineAsync($"error: {e.Message}");
                return 1;
            }
        });
        return new RootCommand(Description) { deploy, ExportGguf(stdout, stderr) };
    }

    private static Command ExportGguf(TextWriter stdout, TextWriter stderr)
    {
        var model = new Argument<string>("model") { Description = "Hugging Face model folder (config.json, *.safetensors), llama2.c .bin or .gguf file of a Llama or Qwen2." };
        var output = new Option<string>("--out", "-o") { Description = "The .gguf file to write.", Required = true };
        var type = new Option<string>("--type")
        {
            Description = "Stored type of the weight matrices: auto (what the checkpoint stores: F32, F16, BF16, Q8_0, Q4_0 or Q4_K), f32, f16, bf16, q8_0, q4_0 or q4_k (for the 4-bit types the layers' matrices; the embedding and output matrix go in Q8_0). Norms are F32; a matrix whose rows are not whole blocks stays wider.",
            DefaultValueFactory = _ => "auto",
        };
        type.AcceptOnlyFromAmong("auto", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k");
        var tokenizer = new Option<string?>("--tokenizer") { Description = "The tokenizer to write: tokenizer.model, a byte-level BPE tokenizer.json (GPT-2, Llama 3 or Qwen2 style), tok*.bin or a .gguf. Default: the model's own (a folder's tokenizer.model before its tokenizer.json, as llama.cpp's converter)." };
        var name = new Option<string?>("--name") { Description = "general.name. Default: the output file's name." };
        var command = new Command("export-gguf", "Write the checkpoint as a llama.cpp GGUF file (v3): metadata, weights, tokenizer and chat template.")
        {
            model, output, type, tokenizer, name,
        };
        command.SetAction(async (r, cancel) =>
        {
            try
            {
                string written = WriteGguf(r.GetValue(model)!, r.GetValue(output)!, r.GetValue(type)!, r.GetValue(tokenizer), r.GetValue(name), stderr);
                await stdout.WriteLineAsync(written);
                return 0;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException or CheckpointFormatException
                or InvalidDataException or System.Text.Json.JsonException or Runtime.Chat.ChatTemplateException)
            {
                await stderr.WriteLineAsync($"error: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    private static string WriteGguf(string modelPath, string output, string type, string? tokenizerPath, string? name, TextWriter stderr)
    {
        string path = Path.GetFullPath(output);
        if (string.Equals(path, Path.GetFullPath(modelPath), StringComparison.Ordinal))
        {
            throw new ArgumentException($"--out {output} is the model itself; write the GGUF to another file");
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using ModelCheckpoint checkpoint = ModelCheckpoint.Open(modelPath);
        GgufTensorType matrixType = type switch
        {
            "auto" => CheckpointPrecisions.Stored(checkpoint) switch
            {
                WeightPrecision.F32 => GgufTensorType.F32,
                WeightPrecision.F16 => GgufTensorType.F16,
                WeightPrecision.BF16 => GgufTensorType.BF16,
                WeightPrecision.Q8_0 => GgufTensorType.Q8_0,
                WeightPrecision.Q4_0 => GgufTensorType.Q4_0,
                WeightPrecision.Q4_K => GgufTensorType.Q4_K,
                var stored => throw new ArgumentOutOfRangeException(nameof(type), stored, "a weight precision export-gguf has no GGUF type for"),
            },
            _ => Enum.Parse<GgufTensorType>(type, ignoreCase: true),
        };
        // As llama.cpp's converter: a folder's SentencePiece model before its tokenizer.json (Llama 2 folders have both).
        string tokenizerSource = tokenizerPath
            ?? (Directory.Exists(modelPath) && File.Exists(Path.Combine(modelPath, "tokenizer.model")) ? Path.Combine(modelPath, "tokenizer.model") : modelPath);
        if (tokenizerPath is null && !Directory.Exists(modelPath) && !modelPath.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"{modelPath} carries no tokenizer; pass it with --tokenizer (tokenizer.model, tokenizer.json or tok*.bin)");
        }
        TextTokenizer textTokenizer = TextTokenizer.Load(tokenizerSource);
        Runtime.Chat.ChatTemplate? template = Runtime.Chat.ChatTemplate.TryLoadFromModel(modelPath);
        GgufWriter.WriteLlama(path, checkpoint, textTokenizer, matrixType, name, template);
        stderr.WriteLine($"wrote {path} ({new FileInfo(path).Length} bytes, {checkpoint.Config.Architecture}, matrices {matrixType}{(type == "auto" ? " as the checkpoint stores them" : "")}, tokenizer from {tokenizerSource}{(template is null ? "" : ", with its chat template")}) in {clock.ElapsedMilliseconds} ms");
        return path;
    }

    private static Uri ServerUri(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out Uri? uri) && uri.Scheme is "http" or "https"
            ? uri
            : throw new ArgumentException($"--server '{text}' is not an http(s) URL; give the server's address, e.g. http://npu-host:8080");

    // Precision null: what the checkpoint stores (CheckpointPrecisions.Stored).
    private sealed record DeployRequest(string Model, Uri Server, string Manufacturer, string? Name, string Device, int ContextSize, int BatchTokens, WeightPrecision? Precision,
        KvCachePrecision KvPrecision, int Sequences);

    private static async Task DeployAsync(DeployRequest request, TextWriter stdout, TextWriter stderr, CancellationToken cancel)
    {
        string name = request.Name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(request.Model)));
        using ManufacturerPublications publications = ManufacturerPublications.Load(request.Manufacturer);
        AttestationVerifier verifier = publications.CreateVerifier();
        ReleasePolicy policy = publications.CreateReleasePolicy();
        using var http = new HttpClient { BaseAddress = request.Server, Timeout = Timeout.InfiniteTimeSpan };
        int[] devices = await DevicesAsync(new RemoteNpu(http), request.Device, cancel);

        using ModelCheckpoint checkpoint = ModelCheckpoint.Open(request.Model);
        int context = request.ContextSize > 0 ? request.ContextSize : Math.Min(2048, checkpoint.Config.MaxPositionEmbeddings);
        if (context > checkpoint.Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"--ctx-size {context} is more than the model's {checkpoint.Config.MaxPositionEmbeddings} positions (max_position_embeddings)");
        }
        if (request.Sequences is < 1 or > 1024)
        {
            throw new ArgumentException($"--sequences {request.Sequences} is not 1..1024: the number of data owners' sessions the NPU answers at once");
        }
        // The matrices the file stores wider than a 4-bit deployment (a Q4_K_M's Q6_K) stay wider, as CausalLM.Load keeps them.
        WeightPrecision precision = request.Precision ?? CheckpointPrecisions.Stored(checkpoint);
        if (CheckpointPrecisions.Refusal(checkpoint, precision) is { } refusal)
        {
            throw new ArgumentException($"--precision {precision.ToString().ToLowerInvariant()}: {refusal} (pass one to --precision)");
        }
        var deployment = new ModelDeployment(checkpoint.Config, checkpoint.RopeConvention, context, Math.Clamp(request.BatchTokens, 1, context), precision, request.KvPrecision,
            request.Sequences, CheckpointPrecisions.For(checkpoint, precision));

        // The package is written to a temporary file next to nothing secret: it is ciphertext with a
        // public signed manifest. The key stays in this process and dies with it.
        string packagePath = Path.Combine(Path.GetTempPath(), $"ascendcc-provider-{Guid.NewGuid():N}.ccpkg");
        using var provider = ModelProvider.Create();
        try
        {
            ProtectedModel model;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await using (FileStream file = File.Create(packagePath))
            {
                // Tensor by tensor (each converted twice): the provider's memory holds one tensor at a time, not the model.
                model = ModelPackageExporter.Export(provider, deployment, n => TensorData.FromCheckpoint(checkpoint.GetTensor(n)), policy, file, name, streaming: true);
            }
            using (model)
            {
                await stderr.WriteLineAsync($"encrypted {name} ({new FileInfo(packagePath).Length} bytes, {checkpoint.Config.GetType().Name}, context {context}, {precision}{(request.Precision is null ? " as the checkpoint stores it" : "")}{(deployment.MatrixPrecisions is { } kept ? $" ({kept.Count} matrices kept in Q8_0, which the file stores wider than 4 bits)" : "")}, KV {request.KvPrecision}) in {clock.ElapsedMilliseconds} ms");
                clock.Restart();
                await using (FileStream upload = File.OpenRead(packagePath))
                {
                    await new RemoteNpu(http, devices[0]).UploadPackageAsync(name, upload, deployment.ToJson(), cancel);
                }
                await stderr.WriteLineAsync($"uploaded to {request.Server} as '{name}' ({clock.ElapsedMilliseconds} ms)");
                foreach (int d in devices)
                {
                    clock.Restart();
                    RemoteModel loaded = await RemoteModelProvider.ReleaseAndLoadAsync(new RemoteNpu(http, d), provider, model, verifier, name, cancel);
                    await stderr.WriteLineAsync($"NPU {d}: attested, key released, {loaded.UnlockedBytes} bytes unlocked and loaded ({clock.ElapsedMilliseconds} ms)");
                }
                // What data owners require (ConfidentialChatClientOptions.RequiredModel, the proxy's Proxy:RequiredModel).
                await stdout.WriteLineAsync(Convert.ToHexString(model.Manifest.ExpectedGraphMeasurement.Span));
            }
        }
        finally
        {
            File.Delete(packagePath);
        }
    }

    private static async Task<int[]> DevicesAsync(RemoteNpu npu, string device, CancellationToken cancel)
    {
        RemoteDeviceInfo[] listed = await npu.ListDevicesAsync(cancel);
        if (listed.Any(d => d.CcMode != "On"))
        {
            throw new InvalidOperationException("the server runs its NPUs with CC off; a confidential package cannot be deployed there");
        }
        if (device == "all")
        {
            return [.. listed.Select(d => d.Index)];
        }
        return int.TryParse(device, System.Globalization.CultureInfo.InvariantCulture, out int index) && listed.Any(d => d.Index == index)
            ? [index]
            : throw new ArgumentException($"--device {device}: the server has NPUs {string.Join(", ", listed.Select(d => d.Index))}; give one of them or 'all'");
    }
}
