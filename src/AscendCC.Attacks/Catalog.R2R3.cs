using AscendCC.Device;
using AscendCC.Runtime.Confidential;
using static AscendCC.Attacks.AttackKit;
using AscendCC.Runtime.Inference;

namespace AscendCC.Attacks;

public static partial class AttackCatalog
{
    private static IEnumerable<Attack> R2()
    {
        foreach ((string region, string what) in new[]
        {
            ("model.embed_tokens.weight", "Weights"),
            ("prompt", "Activations"),
            ("k_cache.0", "KvCache"),
            ("logits", "Workspace"),
        })
        {
            yield return new Attack($"R2_Dma{what}AfterLoad", "R2", "R2:",
                $"After load and a generation, DMA-read and DMA-write the {what} region '{region}' and ask the firmware to re-map it (SetDmaAccess ReadWrite), then read again.",
                bed => DmaRegion(bed, region));
        }
    }

    private static AttackResult DmaRegion(Testbed bed, string name)
    {
        using CausalLM llama = LoadAndGenerate(bed);
        MaliciousHost host = bed.Attacker;
        var r = llama.Region(Buffer(llama, name));
        AttackResult write = Refused(host.WriteDevice(r.Address, Enumerable.Repeat((byte)0x41, (int)r.Bytes).ToArray()), $"DMA write of '{name}'");
        AttackResult remap = Refused(host.SetDmaAccess(r.Address, DmaAccess.ReadWrite), $"SetDmaAccess(ReadWrite) on '{name}'");
        AttackResult read = ReadRegion(host, r.Address, r.Bytes, $"DMA read of '{name}' after the re-map attempt");
        return All(write, remap, read);
    }

    private static IEnumerable<Attack> R3()
    {
        yield return new Attack("R3_D2HFromWeights", "R3", "R3:",
            "Copy a weight tensor's region to the host with a device-to-host task.",
            bed => FromRegion(bed, "model.embed_tokens.weight"));
        yield return new Attack("R3_D2HFromLogits", "R3", "R3:",
            "Copy the plaintext logits (workspace) of the last step to the host.",
            bed => FromRegion(bed, "logits"));
        yield return new Attack("R3_D2HFromSampledToken", "R3", "R3:",
            "Copy the plaintext sampled token ('next', activations) to the host instead of its sealed record.",
            bed => FromRegion(bed, "next"));
        yield return new Attack("R3_D2HFromStagedInput", "R3", "R3:",
            "Copy input staging regions (the staged package and the staged prompt record) back to the host: only sealed output may leave.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                var prompt = llama.Region(llama.Layout.PromptRecord!);
                return All(ReadRegion(bed.Attacker, llama.StagedPackage.Address, llama.StagedPackage.Bytes, "D2H of the staged package"),
                           ReadRegion(bed.Attacker, prompt.Address, prompt.Bytes, "D2H of the staged prompt record"));
            });
        yield return new Attack("R3_D2DWeightsIntoOutputStaging", "R3", "R3:",
            "Copy weights inside HBM into the output staging region that holds a sealed token record, then copy that region to the host.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                var weights = llama.Region(Buffer(llama, "model.embed_tokens.weight"));
                var record = llama.Region(llama.Layout.TokenRecord!);
                long n = Math.Min(weights.Bytes, record.Bytes);
                AttackResult copy = Refused(bed.Attacker.CopyOnDevice(weights.Address, record.Address, n), "D2D weights → token_record");
                (CompletionEntry e, byte[] data) = bed.Attacker.ReadDevice(record.Address, record.Bytes);
                byte[] plain = Runtime.Inference.WeightConversion.Convert(bed.Weights("model.embed_tokens.weight"), bed.Options.Precision);
                AttackResult egress = ContainsWindowOf(data, plain.AsSpan(0, (int)n))
                    ? AttackResult.NotBlocked("the host read weight bytes out of the output staging region")
                    : AttackResult.Blocked($"then D2H of token_record: {MaliciousHost.Describe(e)} — {(e.Succeeded ? "only the earlier sealed record, no weight bytes" : "refused")}");
                return All(copy, egress);
            });
        yield return new Attack("R3_KernelOutputAliasedOnOutputStaging", "R3", "R4:",
            "Launch the lm-head linear eagerly with its output pointed at the output staging region (plaintext logits where sealed records live), then copy that region to the host.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                LaunchSpec head = TaskList(bed, llama).Last(l => l.Operator == "linear");
                var record = llama.Region(llama.Layout.TokenRecord!);
                KernelArgument[] args = [.. head.Args];
                args[^1] = new KernelArgument(record.Address, Math.Min(args[^1].Bytes, record.Bytes));
                AttackResult launch = Refused(bed.Attacker.Launch(head.Handle, args, head.Scalars), "eager linear → token_record");
                (CompletionEntry e, _) = bed.Attacker.ReadDevice(record.Address, record.Bytes);
                return All(launch, AttackResult.Blocked($"then D2H of token_record: {MaliciousHost.Describe(e)}"));
            });
        yield return new Attack("R3_TokenSealPointedAtWeights", "R3", "R4:",
            "Launch token_seal eagerly with its record output aliased onto a weight region, hoping the region becomes 'sealed' and copyable.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                LaunchSpec seal = TaskList(bed, llama).Single(l => l.Operator == "token_seal");
                var weights = llama.Region(Buffer(llama, "model.norm.weight"));
                KernelArgument[] args = [seal.Args[0], new KernelArgument(weights.Address, Math.Min(weights.Bytes, seal.Args[1].Bytes))];
                AttackResult launch = Refused(bed.Attacker.Launch(seal.Handle, args, seal.Scalars), "eager token_seal → model.norm.weight");
                return All(launch, ReadRegion(bed.Attacker, weights.Address, weights.Bytes, "then D2H of model.norm.weight"));
            });
    }

    private static AttackResult FromRegion(Testbed bed, string name)
    {
        using CausalLM llama = LoadAndGenerate(bed);
        var r = llama.Region(Buffer(llama, name));
        return ReadRegion(bed.Attacker, r.Address, r.Bytes, $"D2H of '{name}' ({r.Tag})");
    }
}
