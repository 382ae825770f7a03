using System.CommandLine;
using AscendCC.Runtime.Inference;
using AscendCC.Runtime.Programs;

namespace LlamaChat;

/// <summary>The command line (System.CommandLine 2.0): options, validation, and the hand-off to <see cref="ChatApp"/>.</summary>
internal static class ChatCommand
{
    private const string Description = """
        LlamaChat: confidential LLM chat on a simulated Ascend-style NPU (ASCEND-CC), every party in one process.

        Examples:
          LlamaChat                                         chat with the demo model (trained and cached on first run)
          LlamaChat -m ../shared/models/stories260K -p "Once upon a time" -t 0 -n 64
                                                            one-shot completion, greedy; the story goes to stdout
          LlamaChat -m ../shared/models/gptneo-shakespeare -p "ROMEO:" -t 0 -n 70 --quiet
                                                            a GPT-Neo, one summary line per attestation
          LlamaChat -m MODEL --no-cc                        the same device with confidential computing off
          LlamaChat -m tinyllama.Q4_K_M.gguf --weights q8_0 a GGUF in another device precision than its own
          LlamaChat -m MODEL -p "Q: 2+2?" --stop "Q:"       end the reply where the model starts a new question
          LlamaChat -m MODEL --system "Answer briefly."    a system message, through the model's chat template
          LlamaChat -m MODEL --chat-template chatml.jinja  format turns with another template (.jinja or tokenizer_config.json)
          LlamaChat --attack list                           the malicious-host attacks; --attack NAME runs one
          LlamaChat -m MODEL --repeat-penalty 1.1 --min-p 0.05   llama.cpp's sampling, applied on the device
          LlamaChat -m ./stories260K --server http://npu-host:5080 --manufacturer ./manufacturer --require-model HEX
                                                            the data owner's side only, against a remote server (docs/deployment.md)

        In a chat, Ctrl-C stops the reply and returns to the prompt; Ctrl-C at the prompt exits.
        Exit codes: 0 done; 1 bad input or a refused step; one-shot (-p) only: 3 the reply was cut by
        --max-tokens (chat mode) or by the end of the context, 130 Ctrl-C stopped it.
        """;

    public static RootCommand Create(Func<ChatOptions, int> run)
    {
        var model = new Option<string?>("--model", "-m") { Description = "Hugging Face model folder, a llama.cpp .gguf (its tokenizer inside), or a llama2.c .bin (with --tokenizer). Default: the demo Llama, trained on first run and cached." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer file (tokenizer.json, tokenizer.model or llama2.c tok*.bin) when it is not in the model folder." };
        var prompt = new Option<string?>("--prompt", "-p") { Description = "One-shot: answer this prompt and exit. stdout gets the reply (chat mode) or, in raw completion mode, the prompt followed by its continuation, as llama2.c prints it." };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Chat mode (a model with a chat template: the model folder's tokenizer_config.json chat_template, e.g. the demo's, or --chat-template): most tokens of the reply. Raw completion mode (a base model without one, or --raw): most tokens of text, counting the prompt's tokens after BOS plus the new ones, like llama2.c's -n; the prompt must be shorter.", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature", "-t") { Description = "Sampling temperature; 0 = greedy.", DefaultValueFactory = _ => 0.8f };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling threshold; 1 = off.", DefaultValueFactory = _ => 0.9f };
        var topK = new Option<int>("--top-k") { Description = "Keep only the k most likely tokens; 0 = off.", DefaultValueFactory = _ => 0 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the device's sampler.", DefaultValueFactory = _ => 42UL };
        var noCc = new Option<bool>("--no-cc") { Description = "Same device with confidential computing off: plaintext weights and tokens (for comparison)." };
        var weights = new Option<string>("--weights", "-w")
        {
            Description = "Precision of the weight matrices on the device: auto (what the checkpoint stores: a Q4_K_M .gguf runs in Q4_K with its Q6_K matrices in Q8_0, a Q8_0 file in Q8_0, a BF16 folder in BF16, F32 otherwise), f32, f16, bf16, q8_0, q4_0 or q4_k.",
            DefaultValueFactory = _ => "auto",
        };
        weights.AcceptOnlyFromAmong("auto", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k");
        var kvCache = new Option<string>("--kv-cache")
        {
            Description = "Element type of the KV cache on the device: f32, f16, bf16, q8_0 or q4_0 (llama.cpp's q8_0 and q4_0: 1.125 and 0.625 bytes a value, head dimension a multiple of 32; default f16; with CC on it is part of the measurement).",
            DefaultValueFactory = _ => CausalLMOptions.DefaultKvCachePrecision.ToString().ToLowerInvariant(),
        };
        kvCache.AcceptOnlyFromAmong("f32", "f16", "bf16", "q8_0", "q4_0");
        var mode = new Option<string>("--mode") { Description = "eager (op by op, each checked against the attested list) or graph (one attested task list).", DefaultValueFactory = _ => "graph" };
        mode.AcceptOnlyFromAmong("eager", "graph");
        var transcript = new Option<string?>("--transcript") { Description = "Record every byte the host handled (DMA, task buffers, relayed messages, completions) to this file." };
        var attack = new Option<string?>("--attack") { Description = "Run a malicious-host attack by name, or 'list' to list them." };
        var raw = new Option<bool>("--raw") { Description = "Raw completion mode: feed your text as is, without the model's chat template (e.g. to continue a story with the demo model); a model without a chat template is always in this mode." };
        var chatTemplate = new Option<string?>("--chat-template") { Description = "Format the chat with this Hugging Face chat template instead of the model folder's: a .jinja file (bos/eos tokens from the model's tokenizer_config.json) or a tokenizer_config.json. A template that does not parse is refused before anything boots, naming the file, line and column." };
        var server = new Option<string?>("--server") { Description = "Chat with a model deployed on a remote AscendCC server (URL): only the data owner's side runs here — attestation, sealing and decryption; --model is then the model's folder for its config, tokenizer and template (no weights needed). Needs --manufacturer and --require-model." };
        var manufacturer = new Option<string?>("--manufacturer") { Description = "With --server: the folder of the manufacturer's public files (root.pem, reference-measurements.p7, tcb-recovery.p7, revocations.crl) the data owner trusts." };
        var requireModel = new Option<string?>("--require-model") { Description = "With --server: the model's graph measurement (96 hex digits) its provider published; the device answers only with that model." };
        var device = new Option<int>("--device") { Description = "With --server: the NPU's index on the server (default 0)." };
        var package = new Option<string?>("--package") { Description = "With --server: let the server place the chat on an NPU that has this package loaded (instead of --device)." };
        var chatTemplateKwargs = new Option<string?>("--chat-template-kwargs") { Description = "Extra variables for the chat template, a JSON object as llama.cpp's server takes them: '{\"enable_thinking\": false}' turns Qwen3's thinking off. Needs a chat template." };
        var system = new Option<string?>("--system") { Description = "A system message, given to the chat template first (needs a model with a chat template, or --chat-template). It stays when old turns are dropped to fit the context." };
        var stop = new Option<string[]>("--stop") { Description = "End the reply where this text appears (repeatable; the text itself is not shown), as llama-cli's -r and ollama's stop. Matched across token boundaries.", AllowMultipleArgumentsPerToken = false };
        var minP = new Option<float>("--min-p") { Description = "Drop tokens less likely than this fraction of the most likely one (before temperature, as llama.cpp, whose default is 0.05); 0 = off." };
        var repeatPenalty = new Option<float>("--repeat-penalty") { Description = "Penalise tokens of the last --repeat-last-n (prompt and reply): a positive logit is divided by it, a negative one multiplied; 1 = off.", DefaultValueFactory = _ => 1f };
        var repeatLastN = new Option<int>("--repeat-last-n") { Description = "How many recent tokens the penalties look at; -1 = the whole context, 0 = none.", DefaultValueFactory = _ => 64 };
        var frequencyPenalty = new Option<float>("--frequency-penalty") { Description = "Subtracted from a recent token's logit once per occurrence; 0 = off." };
        var presencePenalty = new Option<float>("--presence-penalty") { Description = "Subtracted once from the logit of every recent token; 0 = off." };
        var hbm = new Option<string>("--hbm") { Description = "HBM of the simulated NPU: 2GiB (the default), 16GiB, 512MiB… (a plain number is GiB). The model's weights, KV cache and buffers must fit; a model that does not is refused before anything boots, saying how much it needs.", DefaultValueFactory = _ => "2GiB" };
        var contextSize = new Option<int>("--ctx-size", "-c") { Description = "Tokens the context (KV cache) holds; default: the model's maximum, at most 2048. A chat that outgrows it drops its oldest turns." };
        var rebuildDemo = new Option<bool>("--rebuild-demo") { Description = "Train the demo model again even if its cache checks out." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No party steps or evidence; a passed attestation is one summary line (a failed one is shown in full)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Diagnostic log on stderr: boot, attestation checks, key release, package load phases, the prompt the chat template rendered and each generation's prefill/decode, with timings." };

        var root = new RootCommand(Description)
        {
            model, tokenizer, prompt, maxTokens, contextSize, hbm, temperature, topP, topK, minP, repeatPenalty, repeatLastN, frequencyPenalty, presencePenalty, seed, stop, noCc, weights, kvCache, mode, transcript, attack, raw, chatTemplate, chatTemplateKwargs, system, server, manufacturer, requireModel, device, package, rebuildDemo, quiet, verbose,
        };
        root.SetAction(r => run(new ChatOptions
        {
            Model = r.GetValue(model),
            Tokenizer = r.GetValue(tokenizer),
            Prompt = r.GetValue(prompt),
            MaxTokens = r.GetValue(maxTokens),
            ContextSize = r.GetValue(contextSize),
            Hbm = r.GetValue(hbm)!,
            Temperature = r.GetValue(temperature),
            TopP = r.GetValue(topP),
            TopK = r.GetValue(topK),
            Seed = r.GetValue(seed),
            MinP = r.GetValue(minP),
            RepeatPenalty = r.GetValue(repeatPenalty),
            RepeatLastN = r.GetValue(repeatLastN),
            FrequencyPenalty = r.GetValue(frequencyPenalty),
            PresencePenalty = r.GetValue(presencePenalty),
            Stop = r.GetValue(stop) ?? [],
            NoCc = r.GetValue(noCc),
            Weights = r.GetValue(weights) is { } w && w != "auto" ? Enum.Parse<WeightPrecision>(w, ignoreCase: true) : null,
            KvCache = Enum.Parse<KvCachePrecision>(r.GetValue(kvCache)!, ignoreCase: true),
            Mode = r.GetValue(mode) == "eager" ? ExecutionMode.Eager : ExecutionMode.Graph,
            Transcript = r.GetValue(transcript),
            Attack = r.GetValue(attack),
            Raw = r.GetValue(raw),
            ChatTemplate = r.GetValue(chatTemplate),
            ChatTemplateKwargs = r.GetValue(chatTemplateKwargs),
            System = r.GetValue(system),
            Server = r.GetValue(server),
            Manufacturer = r.GetValue(manufacturer),
            RequireModel = r.GetValue(requireModel),
            Device = r.GetValue(device),
            Package = r.GetValue(package),
            RebuildDemo = r.GetValue(rebuildDemo),
            Quiet = r.GetValue(quiet),
            Verbose = r.GetValue(verbose),
        }));
        return root;
    }
}
