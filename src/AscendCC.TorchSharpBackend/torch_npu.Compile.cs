using static TorchSharp.torch;

namespace AscendCC.TorchSharpBackend;

/// <summary>The module compiler's entry points.</summary>
public static partial class torch_npu
{
    /// <summary>
    /// Compiles a TorchSharp module for the NPU. A Llama-family model (recognised by its Hugging Face
    /// parameter names; needs <see cref="NpuCompileOptions.Config"/> or <see cref="NpuCompileOptions.ConfigPath"/>)
    /// becomes an <see cref="NpuCausalLM"/>; a chain of standard modules becomes an
    /// <see cref="NpuSequentialModule"/>. Unless <see cref="NpuCompileOptions.SelfCheck"/> is off, the
    /// compile runs the module's own CPU forward on probe inputs and refuses when the device disagrees.
    /// </summary>
    /// <exception cref="NpuCompileException">A module has no lowering (the message names its path and type), or the configuration does not fit.</exception>
    /// <exception cref="NpuSelfCheckException">The device result differs from the module's forward beyond the tolerance.</exception>
    public static NpuModule compile(nn.Module module, NpuCompileOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        options ??= new NpuCompileOptions();
        NpuDeviceContext context = npu.Context(options.Device);
        var mode = npu.Mode(options.JitCompile);
        return LlamaParameters.LooksLikeLlama(module)
            ? NpuCausalLM.Compile(module, options, context, mode)
            : NpuSequentialModule.Compile(module, options, context, mode);
    }

    /// <summary>Compiles a Llama-family causal LM (see <see cref="compile"/>); refuses other modules.</summary>
    public static NpuCausalLM compile_causal_lm(nn.Module module, NpuCompileOptions options)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(options);
        if (!LlamaParameters.LooksLikeLlama(module))
        {
            throw new NpuCompileException("", module.GetType().Name,
                $"{module.GetType().Name} is not a Llama-family model: it has no parameters named {Runtime.Models.LlamaTensorNames.Embedding} and {Runtime.Models.LlamaTensorNames.QProj(0)} (Hugging Face naming)");
        }
        return NpuCausalLM.Compile(module, options, npu.Context(options.Device), npu.Mode(options.JitCompile));
    }

    /// <summary>
    /// Model-provider export: writes a trained Llama-family module's configuration and weights to a
    /// Hugging Face folder (config.json + model.safetensors) that LlamaCheckpoint.Open reads back.
    /// Use <see cref="ModelExport.Export"/> with another <see cref="IModelExportWriter"/> for other formats.
    /// </summary>
    public static ExportedModel save_pretrained(nn.Module module, string folder, Runtime.Models.LlamaConfig config) =>
        ModelExport.Export(module, config, folder);

    /// <summary>Compiles a chain of standard modules (see <see cref="compile"/>).</summary>
    public static NpuSequentialModule compile_sequential(nn.Module module, NpuCompileOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        options ??= new NpuCompileOptions();
        return NpuSequentialModule.Compile(module, options, npu.Context(options.Device), npu.Mode(options.JitCompile));
    }
}

/// <summary><c>module.npu()</c> for TorchSharp modules.</summary>
public static class NpuModuleExtensions
{
    /// <summary>Compiles <paramref name="module"/> for the NPU; the same as <see cref="torch_npu.compile"/>.</summary>
    public static NpuModule npu(this nn.Module module, NpuCompileOptions? options = null) => torch_npu.compile(module, options);
}
