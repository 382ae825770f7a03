using AscendCC.Device;
using AscendCC.Device.Operators;
using AscendCC.Runtime.Confidential;
using static AscendCC.Attacks.AttackKit;
using AscendCC.Runtime.Inference;

namespace AscendCC.Attacks;

public static partial class AttackCatalog
{
    private static IEnumerable<Attack> R4()
    {
        yield return new Attack("R4_InjectedD2DCopyInTaskList", "R4", "R4:",
            "Load the model's task list with an extra device-to-device copy of the logits into a region the host allocated, then executeModel.",
            bed => Edited(bed, (list, llama, host) =>
            {
                var logits = llama.Region(Buffer(llama, "logits"));
                ulong spill = host.Alloc(logits.Bytes, RegionTag.General).Result;
                return Encode(list, (w, id) => w.CopyDeviceToDevice(id, logits.Address, spill, logits.Bytes), extraAt: list.Count - 1);
            }, "task list + D2D logits → host region"));
        yield return new Attack("R4_InjectedD2HCopyInTaskList", "R4", "a model may only hold",
            "Load the model's task list with an extra device-to-host copy of the weights appended.",
            bed => Edited(bed, (list, llama, host) =>
            {
                var w0 = llama.Region(Buffer(llama, "model.embed_tokens.weight"));
                var sink = new byte[w0.Bytes];
                int handle = bed.Device.RegisterHostBuffer(sink);
                return Encode(list, (w, id) => w.CopyDeviceToHost(id, w0.Address, handle, 0, w0.Bytes));
            }, "task list + D2H of weights"));
        yield return new Attack("R4_InjectedKernelLaunch", "R4", "R4: the task list of model 2 is not the one the model provider attested: expected ",
            "Load the model's task list with an extra launch (the lm-head linear again, writing a host-allocated region).",
            bed => Edited(bed, (list, llama, host) =>
            {
                LaunchSpec head = list.Last(l => l.Operator == "linear");
                ulong spill = host.Alloc(head.Args[^1].Bytes, RegionTag.Workspace).Result;
                KernelArgument[] args = [.. head.Args];
                args[^1] = new KernelArgument(spill, head.Args[^1].Bytes);
                list.Insert(list.Count - 1, head with { Args = args });
                return Encode(list);
            }, "task list + extra linear"));
        yield return new Attack("R4_SwappedOperatorInTaskList", "R4", "R4:",
            "Bind a different (genuine, loaded) operator at one launch of the task list.",
            bed => Edited(bed, (list, llama, host) =>
            {
                int i = list.FindIndex(l => l.Operator == "rmsnorm" || l.Operator.Contains("norm", StringComparison.Ordinal));
                LaunchSpec other = list.First(l => l.Operator != list[i].Operator);
                list[i] = list[i] with { Handle = other.Handle };
                return Encode(list);
            }, "launch bound to another operator"));
        yield return new Attack("R4_ReorderedTasks", "R4", "R4:",
            "Swap two adjacent launches of different operators in the task list.",
            bed => Edited(bed, (list, llama, host) =>
            {
                int i = Enumerable.Range(1, list.Count - 2).First(k => list[k].Operator != list[k + 1].Operator);
                (list[i], list[i + 1]) = (list[i + 1], list[i]);
                return Encode(list);
            }, "two launches swapped"));
        yield return new Attack("R4_DroppedTask", "R4", "R4:",
            "Drop one launch (a middle layer's launch) from the task list.",
            bed => Edited(bed, (list, llama, host) =>
            {
                list.RemoveAt(list.Count / 2);
                return Encode(list);
            }, "one launch dropped"));
        yield return new Attack("R4_RebindTensor", "R4", "R4:",
            "Point one launch's activation argument at a different activation region of sufficient size.",
            bed => Edited(bed, (list, llama, host) => Encode(Rebound(list, llama)), "activation argument rebound"));
        yield return new Attack("R4_HostWrittenWeightsBoundInTaskList", "R4", "R4:",
            "Write the host's own bytes into a fresh weight region (weight regions accept ciphertext from the host until unlocked) and bind it in the task list in place of the final norm's weights.",
            bed => Edited(bed, (list, llama, host) =>
            {
                var norm = llama.Region(Buffer(llama, "model.norm.weight"));
                ulong forged = host.Alloc(norm.Bytes, RegionTag.Weights).Result;
                host.WriteDevice(forged, Enumerable.Repeat((byte)0x3f, (int)norm.Bytes).ToArray());
                for (int i = 0; i < list.Count; i++)
                {
                    KernelArgument[] args = [.. list[i].Args];
                    for (int a = 0; a < args.Length; a++)
                    {
                        if (args[a].Address == norm.Address)
                        {
                            args[a] = new KernelArgument(forged, args[a].Bytes);
                        }
                    }
                    list[i] = list[i] with { Args = args };
                }
                return Encode(list);
            }, "model.norm.weight rebound to host-written weights"));
        yield return new Attack("R4_EagerUnattestedOperator", "R4", "argmax with these bindings is not the next task of any (model 1 expects task 0 of ",
            "In eager mode, launch an operator the attested model never uses, on the weights.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                var used = llama.Layout.Program.Ops.Select(o => o.Operator).ToHashSet(StringComparer.Ordinal);
                string name = OperatorCatalog.Names.First(n => !used.Contains(n) && n != "package_unlock");
                ulong handle = bed.Runtime.LoadOperator(name);
                var w0 = llama.Region(Buffer(llama, "model.embed_tokens.weight"));
                var logits = llama.Region(Buffer(llama, "logits"));
                return Refused(bed.Attacker.Launch(handle, [w0.AsArgument(), logits.AsArgument()], [KernelScalar.Of(1L)]), $"eager '{name}'");
            });
        yield return new Attack("R4_EagerLaunchWithOtherBindings", "R4", "R4:",
            "In eager mode, launch an operator the model uses, with its output bound to another locked region (the lm head writing into a KV cache).",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                LaunchSpec head = TaskList(bed, llama).Last(l => l.Operator == "linear");
                var kv = llama.Region(Buffer(llama, "k_cache.0"));
                KernelArgument[] args = [.. head.Args];
                args[^1] = new KernelArgument(kv.Address, Math.Min(kv.Bytes, args[^1].Bytes));
                return Refused(bed.Attacker.Launch(head.Handle, args, head.Scalars), "eager linear → k_cache.0");
            });
        yield return new Attack("R4_EagerMemsetOverwritesWeights", "R4", "R4: in confidential mode a memset of locked memory must be the next task",
            "In eager mode, memset a locked weight region (the provider's weights replaced by the host's).",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                var w0 = llama.Region(Buffer(llama, "model.norm.weight"));
                return Refused(bed.Attacker.Memset(w0.Address, w0.Bytes, 0), "eager memset of model.norm.weight");
            });
        yield return new Attack("R4_EagerLaunchesFollowAnUnattestedList", "R4", "R4: in confidential mode a memset of locked memory must be the next task",
            "Load a task list of the host's own that no package signed (so it is refused at executeModel) holding a memset of a locked weight region and an add writing the provider's KV cache, then launch each eagerly, hoping the device matches eager launches against any loaded list rather than only attested ones.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                var norm = llama.Region(Buffer(llama, "model.norm.weight"));
                var cache = llama.Region(Buffer(llama, "k_cache.0"));
                ulong add = bed.Runtime.LoadOperator("add");
                KernelArgument[] args = [new(cache.Address, 64), new(cache.Address, 64), new(cache.Address, 64)];
                var w = new TaskWriter();
                w.Memset(1, norm.Address, norm.Bytes, 0);
                w.KernelLaunch(2, add, args, [KernelScalar.Of(16L)]);
                CompletionEntry load = bed.Attacker.LoadModel(w.Written);
                CompletionEntry run = bed.Attacker.ExecuteModel((int)load.Result);
                if (run.Succeeded)
                {
                    return AttackResult.NotBlocked($"the host's unsigned list ran whole: {MaliciousHost.Describe(run)}");
                }
                return All(Refused(bed.Attacker.Memset(norm.Address, norm.Bytes, 0), "eager memset of model.norm.weight, task 0 of the unattested list"),
                           Refused(bed.Attacker.Launch(add, args, [KernelScalar.Of(16L)]), "eager add over k_cache.0 after it"));
            });
        yield return new Attack("R4_EagerCopyIntoLockedRegion", "R4", "R4: in confidential mode a copy into locked memory must be the next task",
            "In eager mode, copy host-chosen bytes (via a general region) and another locked tensor into a weight region.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                var target = llama.Region(Buffer(llama, "model.norm.weight"));
                var other = llama.Region(Buffer(llama, "model.layers.0.input_layernorm.weight"));
                ulong scratch = bed.Attacker.Alloc(target.Bytes, RegionTag.General).Result;
                bed.Attacker.WriteDevice(scratch, new byte[target.Bytes]);
                return All(Refused(bed.Attacker.CopyOnDevice(scratch, target.Address, target.Bytes), "D2D host region → model.norm.weight"),
                           Refused(bed.Attacker.CopyOnDevice(other.Address, target.Address, Math.Min(other.Bytes, target.Bytes)), "D2D input_layernorm.0 → model.norm.weight"));
            });
        yield return new Attack("R4_OperatorSwappedAfterAttestation", "R4", "R4:",
            "After the task list is attested, free the region of an operator binary it launches, load a different operator at the same address, and executeModel.",
            bed =>
            {
                using CausalLM llama = LoadAndGenerate(bed);
                MaliciousHost host = bed.Attacker;
                LaunchSpec victim = TaskList(bed, llama).First(l => l.Operator == "silu_mul" || l.Operator.Contains("silu", StringComparison.Ordinal) || l.Operator == "add");
                CompletionEntry free = host.Free(victim.Handle);
                if (!free.Succeeded)
                {
                    return AttackResult.Blocked($"free of '{victim.Operator}' at 0x{victim.Handle:x}: {MaliciousHost.Describe(free)}");
                }
                byte[] other = OperatorCatalog.GetBinary(OperatorCatalog.Names.First(n => n != victim.Operator && n != "package_unlock")).ToArray();
                CompletionEntry alloc = host.Alloc(Math.Max(other.Length, 64), RegionTag.OperatorBinary);
                if (alloc.Result != victim.Handle)
                {
                    return AttackResult.NotBlocked($"the operator region of an attested model was freed ({MaliciousHost.Describe(free)}); the re-allocation landed at 0x{alloc.Result:x}, so the model now launches a hole");
                }
                host.WriteDevice(alloc.Result, other);
                CompletionEntry load = host.Run((w, id) => w.LoadOperator(id, alloc.Result, other.Length));
                CompletionEntry run = host.ExecuteModel(llama.Model.Id);
                return AttackResult.NotBlocked($"freed the attested model's '{victim.Operator}' binary, loaded another operator at the same handle ({MaliciousHost.Describe(load)}); executeModel: {MaliciousHost.Describe(run)}");
            });
    }

    private static AttackResult Edited(Testbed bed, Func<List<LaunchSpec>, CausalLM, MaliciousHost, byte[]> edit, string what)
    {
        using CausalLM llama = LoadAndGenerate(bed);
        byte[] list = edit(TaskList(bed, llama), llama, bed.Attacker);
        return LoadAndExecute(bed.Attacker, list, what);
    }

    private static List<LaunchSpec> Rebound(List<LaunchSpec> list, CausalLM llama)
    {
        var activations = llama.Layout.Program.Buffers.Where(b => b.Tag == RegionTag.Activations).Select(b => llama.Region(b)).ToList();
        for (int i = 0; i < list.Count; i++)
        {
            KernelArgument[] args = list[i].Args;
            for (int a = 0; a < args.Length; a++)
            {
                var from = activations.FirstOrDefault(r => !args[a].IsNone && args[a].Address >= r.Address && args[a].Address < r.Address + (ulong)r.Bytes);
                var to = from is null ? null : activations.FirstOrDefault(r => r != from && r.Bytes >= args[a].Bytes);
                if (to is not null)
                {
                    KernelArgument[] copy = [.. args];
                    copy[a] = new KernelArgument(to.Address, args[a].Bytes);
                    list[i] = list[i] with { Args = copy };
                    return list;
                }
            }
        }
        throw new InvalidOperationException("no launch has an activation argument that another activation region could hold");
    }
}
