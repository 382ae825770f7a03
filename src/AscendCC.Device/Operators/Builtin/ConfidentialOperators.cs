using System.Runtime.CompilerServices;
using AscendCC.Device.Confidential;
using AscendCC.Device.Hbm;
using AscendCC.Protocol.Channels;
using AscendCC.Protocol.Messages;
using AscendCC.Protocol.Packaging;

namespace AscendCC.Device.Operators.Builtin;

/// <summary>Shared checks of the firmware's AI CPU crypto operators.</summary>
internal static class ConfidentialOperators
{
    public static ConfidentialFirmware Firmware(ref KernelContext c, string name) =>
        c.Firmware is { Active: true } fw ? fw : throw new ConfidentialOperatorException($"{name} runs only on a device booted in confidential mode");
}

/// <summary>
/// AES-GCM unlock of one package item into its HBM region (AI CPU). The region must be exactly the
/// item's size and is locked from the host (R2) here, before the first byte is decrypted. Two sources:
/// <list type="bullet">
/// <item>in place (<c>tags</c> given): the host wrote the item's chunk ciphertexts, tags taken out, into
/// the destination while it was still open for writing, and the tags into <c>tags</c>; the unlock
/// locks the region and decrypts it over itself — as ASCEND-CC does, the plaintext is born where it
/// lives, and HBM holds no second copy of the package;</item>
/// <item>staged (<c>tags</c> absent): the item is read from the whole package the host staged for
/// <c>OpenPackage</c>.</item>
/// </list>
/// A tampered, swapped or truncated ciphertext fails its chunk tag and leaves the region zeroed.
/// </summary>
internal sealed class PackageUnlockOperator() : OperatorBase("package_unlock", "destination:[item] tags:u8[chunks*16]? | package item", ["destination", "tags"], [0], 2, ExecutionUnit.AiCpu)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        ConfidentialFirmware fw = ConfidentialOperators.Firmware(ref c, Name);
        int handle = c.Int(0, "package", 1);
        ModelPackageReader reader = fw.Package(handle) ?? throw new ConfidentialOperatorException("no model package is open under that handle");
        int index = c.Int(1, "item", 0, reader.Manifest.Items.Count - 1);
        PackageItem item = reader.Manifest.Items[index];
        HbmRegion region = c.RegionOf(0) ?? throw new KernelArgumentException($"{Name}: no destination");
        Span<byte> destination = c.Bytes(0);
        if (destination.Length != region.Size || region.Size != item.ByteLength)
        {
            throw new ConfidentialOperatorException($"item '{item.Name}' is {item.ByteLength} bytes and must fill a region of exactly that size; the destination is {destination.Length} bytes of a {region.Size}-byte region");
        }
        RegionTag wanted = item.Kind == PackageItemKind.Tensor ? RegionTag.Weights : RegionTag.OperatorBinary;
        if (region.Tag != wanted)
        {
            throw new ConfidentialOperatorException($"item '{item.Name}' ({item.Kind}) must be unlocked into a {wanted} region, not {region.Tag}");
        }
        if (region.ItemName is not null || region.Sealed)
        {
            throw new ConfidentialOperatorException($"the destination already holds '{region.ItemName ?? "a sealed operator"}'");
        }
        // R2: unmapped from host DMA before the first plaintext byte exists, and for good (freeing
        // scrubs it). The scheduler runs one task at a time, so no DMA can slip in between.
        region.Locked = true;
        region.HostAccess = DmaAccess.None;
        try
        {
            if (c.IsNone(1))
            {
                reader.DecryptItem(index, fw.StagedItem(handle, index), destination);
            }
            else
            {
                reader.DecryptItemInPlace(index, destination, c.Bytes(1));
            }
        }
        catch
        {
            // The reader zeroes what it wrote; a failed in-place unlock must not leave the host's
            // bytes either, or a locked region would hold data nobody attested.
            destination.Clear();
            throw;
        }
        region.ItemName = item.Name;
    }
}

/// <summary>
/// Opens the data owner's prompt record (AI CPU) and feeds one chunk of token ids to the model, or
/// feeds back the last sampled token when decoding. mode 1: open the record into the locked prompt
/// buffer, then copy tokens [start, start+seq); mode 2: copy the next chunk of the opened prompt;
/// mode 0: decode, tokens[0] = next.
/// </summary>
internal sealed class PromptOpenOperator() : OperatorBase("prompt_open",
    "record:u8[*] prompt:i32[max_context] next:i32[1] -> tokens:i32[seq] | session mode start seq",
    ["record", "prompt", "next", "tokens"], [1, 3], 4, ExecutionUnit.AiCpu)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        ConfidentialFirmware fw = ConfidentialOperators.Firmware(ref c, Name);
        int mode = c.Int(1, "mode", 0, 2), start = c.Int(2, "start"), seq = c.Int(3, "seq", 1);
        Span<int> tokens = c.Buffer<int>(3, seq);
        foreach (int protectedArg in (ReadOnlySpan<int>)[1, 2, 3])
        {
            if (c.RegionOf(protectedArg) is not { Locked: true })
            {
                throw new ConfidentialOperatorException($"R2: '{ArgumentNames[protectedArg]}' must be locked device memory; plaintext tokens never sit where the host can reach");
            }
        }
        if (mode == 0)
        {
            if (seq != 1)
            {
                throw new KernelArgumentException($"{Name}: a decode step feeds one token, not {seq}");
            }
            tokens[0] = c.Buffer<int>(2, 1)[0];
            return;
        }
        Span<int> prompt = c.Buffer<int>(1, c.Bytes(1).Length / 4);
        if (mode == 1)
        {
            int session = c.Int(0, "session", 1);
            ReadOnlySpan<byte> staged = c.Bytes(0);
            // The staging buffer is sized for the deployment's largest prompt bucket, and a shorter
            // prompt's record fills only its start: take the record's declared length from its header
            // (bytes 16..20, as SecureChannel writes it; authenticated by OpenPrompt) instead of
            // requiring the record to fill the buffer exactly.
            if (staged.Length < SecureChannel.Overhead)
            {
                throw new ConfidentialOperatorException("the staged prompt record is truncated");
            }
            long length = SecureChannel.Overhead + (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(staged.Slice(16, 4));
            if (length > staged.Length)
            {
                throw new ConfidentialOperatorException("the staged prompt record is truncated");
            }
            int[] ids = fw.Engine.OpenPrompt(session, staged[..(int)length]);
            if (ids.Length > prompt.Length)
            {
                throw new ConfidentialOperatorException($"the prompt has {ids.Length} tokens; the context holds {prompt.Length}");
            }
            ids.CopyTo(prompt);
            Array.Clear(ids);
            fw.PromptLength = ids.Length;
            fw.ActiveDataSession = session;
        }
        if (fw.ActiveDataSession is null || start + seq > fw.PromptLength)
        {
            throw new ConfidentialOperatorException($"tokens {start}..{start + seq - 1} are not in the opened prompt of {fw.PromptLength} tokens");
        }
        prompt.Slice(start, seq).CopyTo(tokens);
    }
}

/// <summary>
/// Seals the sampled token for the data owner whose prompt is being answered (AI CPU): one
/// fixed-size record, so the host learns nothing from lengths. Only this operator can make an
/// output staging region copyable to the host (R3).
/// </summary>
internal sealed class TokenSealOperator() : OperatorBase("token_seal", "next:i32[1] -> record:u8[record] | position emit", ["next", "record"], [1], 2, ExecutionUnit.AiCpu)
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Execute(ref KernelContext c)
    {
        ConfidentialFirmware fw = ConfidentialOperators.Firmware(ref c, Name);
        int position = c.Int(0, "position"), emit = c.Int(1, "emit", 0, 1);
        if (emit == 0)
        {
            return;
        }
        HbmRegion record = c.RegionOf(1) ?? throw new KernelArgumentException($"{Name}: no record buffer");
        if (record.Tag != RegionTag.OutputStaging)
        {
            throw new ConfidentialOperatorException($"sealed records go to an {RegionTag.OutputStaging} region, not {record.Tag}");
        }
        int session = fw.ActiveDataSession ?? throw new ConfidentialOperatorException("no data owner's prompt has been opened; nothing may be sealed");
        byte[] sealedToken = fw.Engine.SealToken(session, new TokenMessage(position, c.Buffer<int>(0, 1)[0], EndOfSequence: false));
        sealedToken.CopyTo(c.Buffer<byte>(1, sealedToken.Length));
        record.CiphertextOnly = true;
    }
}
