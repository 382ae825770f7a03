namespace AscendCC.Runtime.Models;

/// <summary>
/// How the rows of a checkpoint's q_proj and k_proj weights pair up for rotary position embedding.
/// Checkpoints are exposed as stored, never permuted, so the consumer must apply the matching RoPE.
/// </summary>
public enum RopeConvention
{
    /// <summary>
    /// Meta / llama2.c order: within each head, rows (2i, 2i+1) form the pair rotated by frequency i.
    /// </summary>
    Interleaved,

    /// <summary>
    /// Hugging Face <c>rotate_half</c> order: within each head of size d, rows (i, i + d/2) form the pair
    /// rotated by frequency i.
    /// </summary>
    Half,
}

/// <summary>The file layout a checkpoint was read from.</summary>
public enum CheckpointLayout
{
    /// <summary>A Hugging Face folder: config.json and model.safetensors (or a sharded index).</summary>
    HuggingFace,

    /// <summary>A llama2.c legacy (version 0) <c>.bin</c> file: 7 int32 header, then float32 arrays.</summary>
    Llama2c,

    /// <summary>A GGUF file (llama.cpp): metadata, tensor infos and aligned tensor data; q/k rows interleaved.</summary>
    Gguf,
}
