using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using AscendCC.Client;
using AscendCC.Device;
using AscendCC.Runtime.Acl;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Tokenizers;
using AscendCC.Runtime.Trusted.ModelProviders;
using AscendCC.Runtime.Trusted.Verification;
using AscendCC.Server.Tests;
using Microsoft.Extensions.AI;

namespace AscendCC.Benchmarks;

/// <summary>
/// The confidential service under load, measured the way a service is judged: the server
/// (<c>AscendCC.Server.dll</c>) runs as its own process on a localhost socket and closed-loop clients
/// (each sends its next request as soon as the previous reply ends) stream replies from it.
/// <list type="bullet">
/// <item><b>CC on</b>: a server with <c>Npu:Simulate</c>; the model provider deploys the model with
/// <see cref="RemoteModelProvider"/> and only the manufacturer's published files; every client is a
/// data owner, a <see cref="ConfidentialChatClient"/> that attests the NPU, opens its own session, seals
/// the prompt and decrypts the tokens, per request.</item>
/// <item><b>CC off</b>: a server with <c>Npu:Confidential=false</c> loading the same Hugging Face folder,
/// and plain OpenAI streamed requests (<c>POST /v1/chat/completions</c>, <c>stream=true</c>).</item>
/// <item><b>in-process</b>: the same model on simulated NPUs in the benchmark's own process, driven by
/// <see cref="CausalLM.Generate"/> with no HTTP and no crypto: the floor, so HTTP ÷ in-process is the
/// service's own cost.</item>
/// </list>
/// Every path gets the same request: a fixed prompt, greedy, at most 64 new tokens (there is no option
/// to ignore end-of-sequence, so the tokens actually produced count; every reply is checked to be the
/// in-process reply, character for character). Loads: 1, 2 and 4 clients on 1 NPU (one NPU serves its
/// requests one after another, in arrival order) and 4 clients on 2 NPUs (CC on: the client's
/// placement, <see cref="ConfidentialChatClientOptions.Package"/>; CC off: the server's own choice of the
/// NPU with the shortest queue; in-process: the same shortest-queue choice).
/// A "chunk" is one streamed text piece: a token that completes no character (part of a byte
/// sequence) is sent with the next, identically on every path. Time to first token runs from the
/// moment a client starts a request (CC on: before it attests) to its first chunk, so it includes
/// queueing behind other clients; inter-token latency is the gap between consecutive chunks of one
/// reply. Configurations are interleaved: each round runs every (load, path) once, in a new random
/// order, after a full GC and a pause, because this machine's speed drifts over minutes.
/// The clients run in the benchmark's process, on the same cores as the servers: on a 2-core machine
/// they compete with the NPUs they load, as the AES-GCM and attestation work of CC on does.
/// Models: stories260K from ../shared/models (tiny, so the service's own cost per token shows; the
/// suite is skipped with a message, writing nothing, when it is absent), and a random-weight model of
/// stories110M's shape written to a temporary Hugging Face folder with stories260K's tokenizer (a
/// 512-token vocabulary), so device time per token dominates. All F32, graph mode, context 128.
/// </summary>
internal sealed class ServeSuite : IBenchmarkSuite, IReportingSuite
{
    private const string Prompt = "Once upon a time";
    private const int MaxTokens = 64;
    private const int Context = 128;
    private const int MaxClients = 4;
    private const string InProcess = "in-process";
    private const string CcOff = "CC off";
    private const string CcOn = "CC on";
    private static readonly string[] Paths = [InProcess, CcOff, CcOn];
    private static readonly (int Npus, int Clients)[] Loads = [(1, 1), (1, 2), (1, 4), (2, 4)];
    private readonly StringBuilder _report = new();

    public string Name => "serve";

    public string Description => "the server as its own process under concurrent clients: CC on vs CC off vs in-process; tokens/s, time to first token, inter-token latency";

    public string ReportFileName => "serve.md";

    /// <summary>Empty when the suite was skipped (no model), so nothing is written.</summary>
    public string Report => _report.ToString();

    public void Run(BenchmarkOptions options, ResultTable table) => RunAsync(options).GetAwaiter().GetResult();

    private static string CaseName(string model, int npus, int clients, string path) => $"{model} {npus} NPU {clients} clients {path}";

    private async Task RunAsync(BenchmarkOptions options)
    {
        _report.Clear();
        string? stories = ModelShape.FindSharedModel("stories260K");
        if (stories is null)
        {
            Console.WriteLine("serve skipped: stories260K not found in ../shared/models beside the repository (or $ASCENDCC_MODELS); its model and tokenizer are what every configuration serves.");
            return;
        }
        int rounds = options.Quick ? 1 : 5;
        // Requests per configuration per round, shared among its clients; --quick: one per client.
        int perRound = options.Quick ? 0 : 8;
        string loadAtStart = LlamaSuite.LoadAverage();
        string temp = Path.Combine(Path.GetTempPath(), "ascendcc-serve-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(temp);
        var results = new List<ModelResult>();
        try
        {
            var models = new List<ServeModel> { new("stories260K", stories, 64L << 20, "stories260K (real weights, 260K parameters): the service's own cost per token") };
            const string Random110M = "random 110M";
            if (Included(options, Random110M))
            {
                var clock = Stopwatch.StartNew();
                string folder = WriteRandomModel(stories, Path.Combine(temp, "random-110M"));
                Console.WriteLine($"wrote {folder} ({new FileInfo(Path.Combine(folder, "model.safetensors")).Length / 1e6:F1} MB) in {clock.ElapsedMilliseconds} ms");
                models.Add(new(Random110M, folder, 1L << 30,
                    "random 110M (llama2.c's stories110M shape with a 512-token vocabulary to share stories260K's tokenizer, seeded random F32 weights, end-of-sequence made unreachable): device time per token dominates"));
            }
            foreach (ServeModel model in models.Where(m => Included(options, m.Name)))
            {
                results.Add(await RunModelAsync(model, options, rounds, perRound, temp));
            }
        }
        finally
        {
            try
            {
                Directory.Delete(temp, recursive: true);
            }
            catch (IOException)
            {
            }
        }
        Write(results, options, rounds, perRound, loadAtStart);
    }

    private static bool Included(BenchmarkOptions options, string model) =>
        Loads.Any(l => Paths.Any(p => options.Includes(CaseName(model, l.Npus, l.Clients, p))));

    private static async Task<ModelResult> RunModelAsync(ServeModel model, BenchmarkOptions options, int rounds, int perRound, string temp)
    {
        var targets = new Dictionary<(int Npus, string Path), ITarget>();
        var setup = new List<string>();
        try
        {
            // The in-process single NPU always runs: its reply is the reference every path must return.
            foreach (int npus in Loads.Select(l => l.Npus).Distinct())
            {
                foreach (string path in Paths)
                {
                    bool wanted = Loads.Any(l => l.Npus == npus && options.Includes(CaseName(model.Name, npus, l.Clients, path)));
                    if (!wanted && !(npus == 1 && path == InProcess))
                    {
                        continue;
                    }
                    var clock = Stopwatch.StartNew();
                    string store = Path.Combine(temp, $"store-{model.Name.Replace(' ', '-')}-{npus}-{path.Replace(' ', '-')}");
                    targets[(npus, path)] = path switch
                    {
                        InProcess => new InProcessTarget(model.Folder, npus, model.HbmBytes),
                        CcOff => await CcOffTarget.StartAsync(model.Folder, npus, model.HbmBytes, store),
                        _ => await CcOnTarget.StartAsync(model.Folder, model.Name, npus, model.HbmBytes, store),
                    };
                    string line = $"{path} on {npus} NPU{(npus > 1 ? "s" : "")}: {targets[(npus, path)].Setup} ({clock.ElapsedMilliseconds} ms)";
                    setup.Add(line);
                    Console.WriteLine($"{model.Name}: {line}");
                }
            }
            Reference reference = ((InProcessTarget)targets[(1, InProcess)]).Reference();
            Console.WriteLine($"{model.Name}: reference reply {reference.Tokens} tokens in {reference.Chunks} chunks: {reference.Text.ReplaceLineEndings(" ")}");

            // Warm-up: JIT tiers in the servers and here, first connections, first-touch pages.
            foreach (ITarget target in targets.Values)
            {
                for (int i = 0; i < (options.Quick ? 1 : 3); i++)
                {
                    Check(await target.RequestAsync(0), reference, target.Path);
                }
            }

            var cases = (from load in Loads
                         from path in Paths
                         where options.Includes(CaseName(model.Name, load.Npus, load.Clients, path)) && targets.ContainsKey((load.Npus, path))
                         select new Case(load.Npus, load.Clients, path)).ToArray();
            var stats = cases.ToDictionary(c => c, _ => new CaseStats());
            var shuffle = new Random(17);
            for (int round = 0; round < rounds; round++)
            {
                Case[] order = [.. cases];
                shuffle.Shuffle(order);
                foreach (Case c in order)
                {
                    // Finalizers too: a CC-on round leaves the data owners' crypto handles behind.
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    GC.Collect();
                    await Task.Delay(300);
                    await RunCaseAsync(targets[(c.Npus, c.Path)], c.Clients, perRound, reference, stats[c]);
                }
                Console.WriteLine($"{model.Name}: round {round + 1}/{rounds} done (load {LlamaSuite.LoadAverage()})");
            }
            return new ModelResult(model, reference, stats, setup);
        }
        finally
        {
            foreach (ITarget target in targets.Values)
            {
                target.Dispose();
            }
        }
    }

    /// <summary>One closed-loop batch: <paramref name="clients"/> clients, each sending its requests back to back.</summary>
    private static async Task RunCaseAsync(ITarget target, int clients, int perRound, Reference reference, CaseStats stats)
    {
        int each = perRound == 0 ? 1 : Math.Max(1, perRound / clients);
        long start = Stopwatch.GetTimestamp();
        Sample[][] replies = await Task.WhenAll(Enumerable.Range(0, clients).Select(async client =>
        {
            var mine = new List<Sample>(each);
            for (int i = 0; i < each; i++)
            {
                mine.Add(await target.RequestAsync(client));
            }
            return mine.ToArray();
        }));
        stats.WallMs += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        foreach (Sample s in replies.SelectMany(r => r))
        {
            Check(s, reference, target.Path);
            stats.Requests++;
            stats.Tokens += reference.Tokens;
            stats.Ttft.Add(s.TtftMs);
            stats.Gaps.AddRange(s.GapsMs);
            stats.Tpot.Add((s.LastMs - s.TtftMs) / Math.Max(1, reference.Tokens - 1));
        }
    }

    private static void Check(Sample sample, Reference reference, string path)
    {
        if (sample.Text != reference.Text)
        {
            throw new InvalidOperationException($"{path} replied \"{sample.Text}\", not the in-process reply \"{reference.Text}\"; the paths must generate the same tokens to be compared");
        }
    }

    /// <summary>
    /// A Hugging Face folder (config.json, model.safetensors, stories260K's tokenizer.model) with
    /// stories110M's shape and seeded random F32 weights. The end-of-sequence row of the classifier
    /// is zero, so its logit is exactly 0 while the best of 511 random logits is positive: a greedy
    /// reply always runs to the token limit, which stands in for an "ignore EOS" option.
    /// </summary>
    private static string WriteRandomModel(string stories, string folder)
    {
        using ModelShape shape = ModelShape.Llama110M(2 * Context, vocabSize: 512);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), shape.Config.ToJson());
        File.Copy(Path.Combine(stories, "tokenizer.model"), Path.Combine(folder, "tokenizer.model"));
        int eos = shape.Config.EosTokenIds.Single();
        string classifier = shape.Config.TieWordEmbeddings ? shape.Config.EmbeddingTensorName : shape.Config.LmHeadTensorName;
        var tensors = new List<(string Name, TensorDType DType, long[] Shape, byte[] Data)>();
        foreach ((string name, long[] dims) in shape.Config.ExpectedTensors().OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            TensorData t = shape.Weight(name, WeightPrecision.F32);
            byte[] data = t.Bytes.ToArray();
            if (name == classifier)
            {
                int row = (int)dims[1] * sizeof(float);
                data.AsSpan(eos * row, row).Clear();
            }
            tensors.Add((name, t.DType, dims, data));
        }
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        return folder;
    }

    private void Write(List<ModelResult> results, BenchmarkOptions options, int rounds, int perRound, string loadAtStart)
    {
        var inv = CultureInfo.InvariantCulture;
        StringBuilder sb = _report.Clear();
        sb.AppendLine(inv, $"# serve: {Description}");
        sb.AppendLine();
        sb.AppendLine(inv, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {RuntimeInformation.FrameworkDescription}; load average at start {loadAtStart}, at end {LlamaSuite.LoadAverage()}{(options.Quick ? "; **--quick: one short round, a smoke test, not a result**" : "")}.");
        sb.AppendLine();
        sb.AppendLine("The server runs as its own process (`dotnet AscendCC.Server.dll`, Kestrel on 127.0.0.1, graph mode), loaded by closed-loop clients " +
            "in this process (each sends its next request as soon as its previous reply has ended), over real sockets. " +
            "**CC on**: `Npu:Simulate=true`; the model provider deploys with `RemoteModelProvider` and only the manufacturer's published files; each client is a data owner " +
            "(`ConfidentialChatClient`: per request it attests the NPU, opens its own session, seals the prompt, decrypts each token, closes the session). " +
            "**CC off**: `Npu:Confidential=false`, `Npu:Model=` the same folder; OpenAI `POST /v1/chat/completions` with `stream=true`, server-sent events. " +
            "**in-process**: the same model on simulated NPUs in this process, `CausalLM.Generate`, no HTTP, no crypto. " +
            $"Every request: prompt \"{Prompt}\", greedy, at most {MaxTokens} new tokens, context {Context}, F32 weights; end-of-sequence ends a reply (there is no option to ignore it), so tokens = the tokens actually produced, and every reply is checked to equal the in-process reply. " +
            "1 NPU: its requests are served one at a time in arrival order, so more clients queue; 2 NPUs: CC on places each request with the client's `Package` placement (`GET /v1/placement`), CC off and in-process pick the NPU with the shortest queue.");
        sb.AppendLine();
        string requests = perRound == 0 ? "one request per client" : string.Create(inv, $"{perRound} requests shared among its clients");
        sb.AppendLine(string.Create(inv, $"{rounds} round{(rounds > 1 ? "s" : "")}; in each round every configuration runs once, in a new random order, after a full GC and a 300 ms pause, with {requests}. ") +
            "tokens/s = all tokens of a configuration ÷ the summed wall time of its batches (first request sent to last reply ended). " +
            "TTFT = time to first token, from the client starting the request (CC on: before attesting) to its first streamed text, so it includes queueing behind other clients. " +
            "ITL = inter-token latency, the gap between consecutive streamed chunks of a reply (a chunk is one token's text; a token that completes no character travels with the next, identically on every path). p50/p95/p99 over all requests (TTFT) and all gaps (ITL). " +
            "TPOT = time per output token of a reply after its first: (last chunk − first chunk) ÷ (tokens − 1), p50 over requests; the ratios use it rather than ITL p50, " +
            "because a client starved of CPU reads several chunks at once and its ITL p50 then collapses towards 0.");
        foreach (ModelResult r in results)
        {
            sb.AppendLine();
            sb.AppendLine(inv, $"## {r.Model.Note}");
            sb.AppendLine();
            sb.AppendLine(inv, $"Reply: {r.Reference.Tokens} tokens in {r.Reference.Chunks} chunks. Setup: {string.Join("; ", r.Setup)}.");
            sb.AppendLine();
            sb.AppendLine("| NPUs | clients | path | requests | tokens | tokens/s | TTFT p50 ms | TTFT p95 ms | TTFT p99 ms | ITL p50 ms | ITL p95 ms | ITL p99 ms | TPOT p50 ms |");
            sb.AppendLine("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var (c, s) in r.Stats.OrderBy(kv => kv.Key.Npus).ThenBy(kv => kv.Key.Clients).ThenBy(kv => Array.IndexOf(Paths, kv.Key.Path)))
            {
                sb.AppendLine(inv, $"| {c.Npus} | {c.Clients} | {c.Path} | {s.Requests} | {s.Tokens} | {s.TokensPerSecond:F1} | {Quantile(s.Ttft, 0.5):F1} | {Quantile(s.Ttft, 0.95):F1} | {Quantile(s.Ttft, 0.99):F1} | {Quantile(s.Gaps, 0.5):F2} | {Quantile(s.Gaps, 0.95):F2} | {Quantile(s.Gaps, 0.99):F2} | {Quantile(s.Tpot, 0.5):F2} |");
            }
            sb.AppendLine();
            sb.AppendLine("Ratios in the same run (tokens/s: < 1 means the first is slower; TTFT and ITL: > 1 means the first takes longer):");
            sb.AppendLine();
            sb.AppendLine("| NPUs | clients | CC on ÷ CC off: tokens/s | TTFT p50 | TPOT p50 | CC off ÷ in-process: tokens/s | TTFT p50 | TPOT p50 | CC on ÷ in-process: tokens/s | TTFT p50 | TPOT p50 |");
            sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach ((int npus, int clients) in Loads)
            {
                CaseStats? Of(string path) => r.Stats.TryGetValue(new Case(npus, clients, path), out CaseStats? s) ? s : null;
                CaseStats? on = Of(CcOn), off = Of(CcOff), local = Of(InProcess);
                if (on is null && off is null && local is null)
                {
                    continue;
                }
                string Ratio(CaseStats? a, CaseStats? b, Func<CaseStats, double> metric) =>
                    a is null || b is null ? "–" : (metric(a) / metric(b)).ToString("F2", inv) + "×";
                double Tps(CaseStats s) => s.TokensPerSecond;
                double Ttft(CaseStats s) => Quantile(s.Ttft, 0.5);
                double Tpot(CaseStats s) => Quantile(s.Tpot, 0.5);
                sb.AppendLine(inv, $"| {npus} | {clients} | {Ratio(on, off, Tps)} | {Ratio(on, off, Ttft)} | {Ratio(on, off, Tpot)} | {Ratio(off, local, Tps)} | {Ratio(off, local, Ttft)} | {Ratio(off, local, Tpot)} | {Ratio(on, local, Tps)} | {Ratio(on, local, Ttft)} | {Ratio(on, local, Tpot)} |");
            }
        }
    }

    private static double Quantile(List<double> values, double q)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }
        double[] sorted = [.. values.Order()];
        double at = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(at), hi = (int)Math.Ceiling(at);
        return sorted[lo] + ((sorted[hi] - sorted[lo]) * (at - lo));
    }

    private sealed record ServeModel(string Name, string Folder, long HbmBytes, string Note);

    private sealed record Case(int Npus, int Clients, string Path);

    private sealed record Reference(string Text, int Tokens, int Chunks);

    private sealed record ModelResult(ServeModel Model, Reference Reference, Dictionary<Case, CaseStats> Stats, List<string> Setup);

    /// <summary>One reply as its client saw it.</summary>
    /// <param name="TtftMs">Request start to the first chunk.</param>
    /// <param name="LastMs">Request start to the last chunk.</param>
    /// <param name="GapsMs">Gaps between consecutive chunks.</param>
    /// <param name="Text">The reply.</param>
    private sealed record Sample(double TtftMs, double LastMs, double[] GapsMs, string Text);

    private sealed class CaseStats
    {
        public int Requests { get; set; }

        public long Tokens { get; set; }

        public double WallMs { get; set; }

        public List<double> Ttft { get; } = [];

        public List<double> Gaps { get; } = [];

        public List<double> Tpot { get; } = [];

        public double TokensPerSecond => Tokens / (WallMs / 1e3);
    }

    /// <summary>Timestamps of a reply's streamed text chunks, from the moment the request started.</summary>
    private sealed class ChunkClock
    {
        private readonly long _start = Stopwatch.GetTimestamp();
        private readonly List<double> _gaps = [];
        private readonly StringBuilder _text = new();
        private long _last;
        private double _ttft = double.NaN;

        public void Chunk(string text)
        {
            if (text.Length == 0)
            {
                return;
            }
            long now = Stopwatch.GetTimestamp();
            if (_last == 0)
            {
                _ttft = Stopwatch.GetElapsedTime(_start, now).TotalMilliseconds;
            }
            else
            {
                _gaps.Add(Stopwatch.GetElapsedTime(_last, now).TotalMilliseconds);
            }
            _last = now;
            _text.Append(text);
        }

        public Sample Sample() => new(_ttft, _last == 0 ? double.NaN : Stopwatch.GetElapsedTime(_start, _last).TotalMilliseconds, [.. _gaps], _text.ToString());
    }

    /// <summary>One way to serve requests: in-process, or a server process with CC off or on.</summary>
    private interface ITarget : IDisposable
    {
        string Path { get; }

        /// <summary>What was set up, for the report.</summary>
        string Setup { get; }

        /// <summary>One request of client <paramref name="client"/> (0 ≤ client &lt; 4), streamed to its end.</summary>
        Task<Sample> RequestAsync(int client);
    }

    /// <summary>
    /// The model on simulated NPUs in this process: each NPU serves one request at a time (the
    /// semaphore's waiters are released in arrival order, as the server's device gate does), and a
    /// request goes to the NPU with the fewest requests queued, as the CC-off server chooses.
    /// </summary>
    private sealed class InProcessTarget : ITarget
    {
        private readonly ModelCheckpoint _checkpoint;
        private readonly (NpuRuntime Runtime, CausalLM Model, SemaphoreSlim Gate)[] _slots;
        private readonly int[] _queued;
        private readonly TextTokenizer _tokenizer;
        private readonly int[] _prompt;
        private readonly HashSet<int> _stops;

        public InProcessTarget(string folder, int npus, long hbm)
        {
            _checkpoint = ModelCheckpoint.Open(folder);
            _tokenizer = TextTokenizer.Load(folder);
            _prompt = [.. _tokenizer.Encode(Prompt, addBos: _tokenizer.HasBos)];
            // The servers' chat clients stop at the tokenizer's end of sequence and config.json's.
            _stops = [_tokenizer.EosId, .. _checkpoint.Config.EosTokenIds];
            _slots = new (NpuRuntime, CausalLM, SemaphoreSlim)[npus];
            _queued = new int[npus];
            for (int i = 0; i < npus; i++)
            {
                var runtime = new NpuRuntime(new NpuDevice(new NpuDeviceOptions { HbmCapacity = hbm }), ownsDevice: true);
                _slots[i] = (runtime, CausalLM.Load(runtime, _checkpoint, new CausalLMOptions { Mode = ExecutionMode.Graph, MaxContext = Context }), new SemaphoreSlim(1, 1));
            }
            Setup = $"{npus} simulated NPU{(npus > 1 ? "s" : "")} in this process";
        }

        public string Path => InProcess;

        public string Setup { get; }

        /// <summary>The greedy reply, generated directly: its text, its tokens (end of sequence not counted) and its chunks.</summary>
        public Reference Reference()
        {
            var decoder = new TextStreamDecoder(_tokenizer, _prompt);
            var text = new StringBuilder();
            int tokens = 0, chunks = 0;
            void Add(string piece)
            {
                if (piece.Length > 0)
                {
                    text.Append(piece);
                    chunks++;
                }
            }
            foreach (int token in _slots[0].Model.Generate(_prompt, MaxTokens, SamplingOptions.Greedy, _stops))
            {
                if (_stops.Contains(token))
                {
                    break;
                }
                tokens++;
                Add(decoder.Push(token));
            }
            Add(decoder.Flush());
            return new Reference(text.ToString(), tokens, chunks);
        }

        public async Task<Sample> RequestAsync(int client)
        {
            var clock = new ChunkClock();
            int slot;
            lock (_queued)
            {
                slot = Array.IndexOf(_queued, _queued.Min());
                _queued[slot]++;
            }
            (_, CausalLM model, SemaphoreSlim gate) = _slots[slot];
            await gate.WaitAsync();
            try
            {
                // The device runs synchronously; off the caller's thread, as the server's request thread is.
                await Task.Run(() =>
                {
                    var decoder = new TextStreamDecoder(_tokenizer, _prompt);
                    foreach (int token in model.Generate(_prompt, MaxTokens, SamplingOptions.Greedy, _stops))
                    {
                        if (_stops.Contains(token))
                        {
                            break;
                        }
                        clock.Chunk(decoder.Push(token));
                    }
                    clock.Chunk(decoder.Flush());
                });
            }
            finally
            {
                gate.Release();
                lock (_queued)
                {
                    _queued[slot]--;
                }
            }
            return clock.Sample();
        }

        public void Dispose()
        {
            foreach ((NpuRuntime runtime, CausalLM model, SemaphoreSlim gate) in _slots)
            {
                model.Dispose();
                runtime.Dispose();
                gate.Dispose();
            }
            _checkpoint.Dispose();
        }
    }

    /// <summary>A server process with CC off serving the folder, and plain OpenAI streamed requests, one HttpClient per client.</summary>
    private sealed class CcOffTarget : ITarget
    {
        private static readonly string Body = JsonSerializer.Serialize(new
        {
            messages = new[] { new { role = "user", content = Prompt } },
            temperature = 0,
            max_tokens = MaxTokens,
            stream = true,
        });

        private readonly ServerProcess _server;
        private readonly string _store;
        private readonly HttpClient[] _clients;

        private CcOffTarget(ServerProcess server, string store, int npus)
        {
            _server = server;
            _store = store;
            _clients = [.. Enumerable.Range(0, MaxClients).Select(_ => new HttpClient { BaseAddress = server.Address })];
            Setup = $"server process, {npus} NPU{(npus > 1 ? "s" : "")}, model loaded in plaintext at startup";
        }

        public string Path => CcOff;

        public string Setup { get; }

        public static async Task<CcOffTarget> StartAsync(string folder, int npus, long hbm, string store)
        {
            ServerProcess server = await ServerProcess.StartAsync("--Npu:Simulate=true", "--Npu:Confidential=false", $"--Npu:Model={folder}",
                $"--Npu:MaxContext={Context}", $"--Npu:DeviceCount={npus}", $"--Npu:ModelStore={store}", $"--Npu:HbmCapacity={hbm}");
            return new CcOffTarget(server, store, npus);
        }

        public async Task<Sample> RequestAsync(int client)
        {
            var clock = new ChunkClock();
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(Body, Encoding.UTF8, "application/json") };
            using HttpResponseMessage response = await _clients[client].SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"CC-off server: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    continue;
                }
                if (line == "data: [DONE]")
                {
                    break;
                }
                using JsonDocument chunk = JsonDocument.Parse(line.AsMemory("data: ".Length));
                if (chunk.RootElement.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out JsonElement content) && content.ValueKind == JsonValueKind.String)
                {
                    clock.Chunk(content.GetString()!);
                }
            }
            return clock.Sample();
        }

        public void Dispose()
        {
            foreach (HttpClient http in _clients)
            {
                http.Dispose();
            }
            _server.Dispose();
            DeleteStore(_store);
        }
    }

    /// <summary>
    /// A CC-on server process: the model provider deploys the folder on every NPU with only the
    /// manufacturer's publications the server wrote; each client is a data owner with its own
    /// <see cref="ConfidentialChatClient"/> and HttpClient.
    /// </summary>
    private sealed class CcOnTarget : ITarget
    {
        private readonly ServerProcess _server;
        private readonly string _store;
        private readonly HttpClient[] _http;
        private readonly ConfidentialChatClient[] _owners;

        private CcOnTarget(ServerProcess server, string store, HttpClient[] http, ConfidentialChatClient[] owners, string setup)
        {
            _server = server;
            _store = store;
            _http = http;
            _owners = owners;
            Setup = setup;
        }

        public string Path => CcOn;

        public string Setup { get; }

        public static async Task<CcOnTarget> StartAsync(string folder, string name, int npus, long hbm, string store)
        {
            ServerProcess server = await ServerProcess.StartAsync("--Npu:Simulate=true", $"--Npu:DeviceCount={npus}", $"--Npu:ModelStore={store}", $"--Npu:HbmCapacity={hbm}");
            try
            {
                var clock = Stopwatch.StartNew();
                string package = name.Replace(' ', '-');
                AttestationVerifier verifier;
                RemoteModel loaded;
                using (var http = new HttpClient { BaseAddress = server.Address })
                using (ManufacturerPublications publications = ManufacturerPublications.Load(System.IO.Path.Combine(store, "manufacturer")))
                using (ModelCheckpoint checkpoint = ModelCheckpoint.Open(folder))
                using (var provider = ModelProvider.Create())
                using (var encrypted = new MemoryStream())
                {
                    verifier = publications.CreateVerifier();
                    // MaxBatchTokens = the context, as the CC-off server and the in-process model lay it out; as many
                    // sessions decoded together as the CC-off server decodes replies (its Npu:MaxSequences default), so
                    // CC on and off are compared as the same kind of server.
                    var deployment = new ModelDeployment(checkpoint.Config, checkpoint.RopeConvention, Context, Context, WeightPrecision.F32,
                        MaxSequences: new AscendCC.Server.NpuServerOptions().MaxSequences);
                    using ProtectedModel model = ModelPackageExporter.Export(provider, deployment, n => TensorData.FromCheckpoint(checkpoint.GetTensor(n)),
                        publications.CreateReleasePolicy(), encrypted, package);
                    encrypted.Position = 0;
                    loaded = await RemoteModelProvider.DeployAsync(new RemoteNpu(http, 0), provider, model, verifier, package, encrypted, deployment);
                    for (int d = 1; d < npus; d++)
                    {
                        await RemoteModelProvider.ReleaseAndLoadAsync(new RemoteNpu(http, d), provider, model, verifier, package);
                    }
                }
                long deployMs = clock.ElapsedMilliseconds;
                HttpClient[] clients = [.. Enumerable.Range(0, MaxClients).Select(_ => new HttpClient { BaseAddress = server.Address })];
                ConfidentialChatClient[] owners = [.. clients.Select(h => new ConfidentialChatClient(new RemoteNpu(h, 0), verifier, TextTokenizer.Load(folder),
                    new ConfidentialChatClientOptions
                    {
                        RequiredModel = loaded.ExpectedGraphMeasurement,
                        ModelId = package,
                        // One NPU: the client's own device; two: ask the server for the shortest queue per request.
                        Package = npus > 1 ? package : null,
                    }))];
                return new CcOnTarget(server, store, clients, owners,
                    $"server process, {npus} NPU{(npus > 1 ? "s" : "")}, deployed by the model provider (upload, attest, release, load{(npus > 1 ? " on each" : "")}) in {deployMs} ms");
            }
            catch
            {
                server.Dispose();
                DeleteStore(store);
                throw;
            }
        }

        public async Task<Sample> RequestAsync(int client)
        {
            var clock = new ChunkClock();
            await foreach (ChatResponseUpdate update in _owners[client].GetStreamingResponseAsync([new ChatMessage(ChatRole.User, Prompt)],
                new ChatOptions { Temperature = 0, MaxOutputTokens = MaxTokens }))
            {
                clock.Chunk(update.Text);
            }
            return clock.Sample();
        }

        public void Dispose()
        {
            foreach (ConfidentialChatClient owner in _owners)
            {
                owner.Dispose();
            }
            foreach (HttpClient http in _http)
            {
                http.Dispose();
            }
            _server.Dispose();
            DeleteStore(_store);
        }
    }

    private static void DeleteStore(string store)
    {
        try
        {
            if (Directory.Exists(store))
            {
                Directory.Delete(store, recursive: true);
            }
        }
        catch (IOException)
        {
        }
    }
}
