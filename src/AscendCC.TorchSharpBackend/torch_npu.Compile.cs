using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Trusted.ModelProviders;
using static TorchSharp.torch;
using AscendCC.Runtime.Inference;

namespace AscendCC.TorchSharpBackend;

/// <summary>The module compiler's entry points.</summary>
public static partial class torch_npu
{
    /// <summary>
    /// Compiles a TorchSharp module for the NPU. A language model of a supported family, Llama or GPT-Neo (recognised by its Hugging Face
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
        return CausalLMParameters.Recognise(module) is { } family
            ? NpuCausalLM.Compile(module, family, options, context, mode)
            : NpuSequentialModule.Compile(module, options, context, mode);
    }

    /// <summary>Compiles a causal LM of a supported family (Llama, GPT-Neo) (see <see cref="compile"/>); refuses other modules.</summary>
    public static NpuCausalLM compile_causal_lm(nn.Module module, NpuCompileOptions options)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(options);
        string family = CausalLMParameters.Recognise(module)
            ?? throw new NpuCompileException("", module.GetType().Name,
                $"{module.GetType().Name} is not a language model of a supported family: it has none of the parameter pairs that identify one ({CausalLMParameters.Identifiers}; Hugging Face naming)");
        return NpuCausalLM.Compile(module, family, options, npu.Context(options.Device), npu.Mode(options.JitCompile));
    }

    /// <summary>
    /// Model-provider export: writes a trained language model module's configuration and weights to a
    /// Hugging Face folder (config.json + model.safetensors) that ModelCheckpoint.Open reads back.
    /// Use <see cref="ModelExport.Export"/> with another <see cref="IModelExportWriter"/> for other formats.
    /// </summary>
    public static ExportedModel save_pretrained(nn.Module module, string folder, Runtime.Models.ModelConfig config) =>
        ModelExport.Export(module, config, folder);

    /// <summary>
    /// Model-provider export as a confidential model package: the trained language model module's weights go
    /// from its parameters straight into the encrypted, signed package (docs/model-package.md) for
    /// <paramref name="deployment"/>, so no plaintext weight file is ever written. The package opens only on
    /// an NPU that satisfies <paramref name="policy"/> and to which <paramref name="provider"/> then releases
    /// the key (<see cref="ModelProvider.BeginKeyRelease"/>); the host deploys it with CausalLM.Load.
    /// </summary>
    /// <param name="module">The trained module, with Hugging Face parameter names (as for <see cref="compile_causal_lm"/>).</param>
    /// <param name="output">Where the package is written (only ciphertext and the signed manifest).</param>
    /// <param name="deployment">Architecture and program layout. Its configuration must describe the module, and its
    /// <see cref="ModelDeployment.Rope"/> must be the module's q/k row order (<see cref="NpuCompileOptions.Rope"/>).</param>
    /// <param name="provider">The model provider (signs the manifest).</param>
    /// <param name="policy">Which devices may receive the model key.</param>
    /// <param name="model_name">Name recorded in the manifest.</param>
    /// <returns>The protected model (manifest and model key) for the key release; dispose it when done releasing.</returns>
    /// <exception cref="NpuCompileException">The module's parameters do not match the configuration (the message names the tensor); nothing is written.</exception>
    public static ProtectedModel save_confidential(nn.Module module, System.IO.Stream output, ModelDeployment deployment, ModelProvider provider, ReleasePolicy policy, string model_name = "llama")
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(deployment);
        ArgumentNullException.ThrowIfNull(provider);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentException.ThrowIfNullOrEmpty(model_name);
        // Checked before anything is written, so a module that does not fit leaves the output untouched.
        var parameters = CausalLMParameters.Collect(module, deployment.Config);
        // One tensor at a time: each is copied to the host only while the exporter converts and encrypts it.
        return ModelPackageExporter.Export(provider, deployment, name => parameters.TryGetValue(name, out var parameter)
            ? CausalLMParameters.ToTensorData(name, parameter)
            : throw new NpuCompileException($"the device program binds '{name}' but the module has no such parameter; check that the deployment's configuration describes the module"),
            policy, output, model_name);
    }

    /// <summary>
    /// <see cref="save_confidential(nn.Module, System.IO.Stream, ModelDeployment, ModelProvider, ReleasePolicy, string)"/>
    /// to a file: written beside <paramref name="path"/> and moved into place when complete, so a failed
    /// export leaves no partial package behind.
    /// </summary>
    /// <param name="module">The trained module, with Hugging Face parameter names.</param>
    /// <param name="path">The package file to create or replace.</param>
    /// <param name="deployment">Architecture and program layout (see the stream overload).</param>
    /// <param name="provider">The model provider (signs the manifest).</param>
    /// <param name="policy">Which devices may receive the model key.</param>
    /// <param name="model_name">Name recorded in the manifest.</param>
    /// <returns>The protected model (manifest and model key); dispose it when done releasing.</returns>
    /// <exception cref="NpuCompileException">The module's parameters do not match the configuration (the message names the tensor); no file is created.</exception>
    public static ProtectedModel save_confidential(nn.Module module, string path, ModelDeployment deployment, ModelProvider provider, ReleasePolicy policy, string model_name = "llama")
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(deployment);
        // Refuse a mismatched module before creating any file.
        CausalLMParameters.Collect(module, deployment.Config);
        string partial = path + ".partial";
        ProtectedModel? model = null;
        try
        {
            using (var file = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                model = save_confidential(module, file, deployment, provider, policy, model_name);
            }
            File.Move(partial, path, overwrite: true);
            return model;
        }
        catch
        {
            model?.Dispose();
            File.Delete(partial);
            throw;
        }
    }

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
