using AscendCC.Protocol.Packaging;
using AscendCC.Runtime.Confidential;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Programs;

namespace AscendCC.Runtime.Trusted.ModelProviders;

/// <summary>
/// The model provider's export of a model (of any supported family) as a confidential package: every
/// weight the device program binds, converted to the precision the program keeps it in and
/// encrypted, and the program's expected graph measurement, signed in the manifest. The deployment
/// descriptor travels beside it in the clear.
/// </summary>
public static class ModelPackageExporter
{
    /// <summary>Writes the package to <paramref name="output"/>.</summary>
    /// <param name="provider">The model provider (signing key).</param>
    /// <param name="deployment">Architecture and program layout.</param>
    /// <param name="weights">Weights by Hugging Face name.</param>
    /// <param name="policy">Which devices may receive the key.</param>
    /// <param name="output">Where the package goes.</param>
    /// <param name="modelName">Name recorded in the manifest.</param>
    /// <param name="streaming">
    /// Convert each tensor twice — once for the manifest's digests, once to encrypt it — instead of holding
    /// every converted tensor at once: memory for the largest tensor rather than for the whole model, at
    /// twice the conversion work (<paramref name="weights"/> is called twice for each name and must give the
    /// same tensor both times). For models larger than the provider's memory.
    /// </param>
    /// <returns>The protected model (manifest and key; dispose when done releasing).</returns>
    public static ProtectedModel Export(ModelProvider provider, ModelDeployment deployment, Func<string, TensorData> weights, ReleasePolicy policy, Stream output, string modelName = "llama",
        bool streaming = false) =>
        Export(provider, deployment, weights, policy, output, new ModelPackageBuilder(modelName), streaming);

    /// <summary>
    /// As the public <see cref="Export(ModelProvider, ModelDeployment, Func{string, TensorData}, ReleasePolicy, Stream, string, bool)"/>,
    /// into <paramref name="builder"/> (its model name; any items it already holds come first in the package).
    /// </summary>
    internal static ProtectedModel Export(ModelProvider provider, ModelDeployment deployment, Func<string, TensorData> weights, ReleasePolicy policy, Stream output, ModelPackageBuilder builder,
        bool streaming = false)
    {
        ArgumentNullException.ThrowIfNull(provider);
        ArgumentNullException.ThrowIfNull(deployment);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(builder);
        CausalLMProgram program = deployment.BuildProgram();
        // The measurement names the weights as this provider's, under this model name: the device
        // measures them by the package they were unlocked from.
        byte[] package = PackageIdentity.Compute(provider.VerificationKey, builder.ModelName);
        builder.ExpectedGraphMeasurement = program.Program.Measure(package);
        var expected = deployment.Config.ExpectedTensors().ToDictionary(e => e.Name, e => e.Shape);
        foreach ((string name, ProgramBuffer buffer) in program.Weights)
        {
            if (streaming && expected.TryGetValue(name, out long[]? shape))
            {
                builder.AddTensor(name, program.DeviceTypeName(name), shape, () => DeviceBytes(program, weights, expected, name, buffer).Bytes);
                continue;
            }
            (byte[] bytes, long[] tensorShape) = DeviceBytes(program, weights, expected, name, buffer);
            builder.AddTensor(name, program.DeviceTypeName(name), tensorShape, bytes);
        }
        return provider.BuildPackage(builder, policy, output);
    }

    /// <summary>Weight <paramref name="name"/> as the program's buffer holds it, its shape checked against the configuration and its size against the buffer.</summary>
    private static (byte[] Bytes, long[] Shape) DeviceBytes(CausalLMProgram program, Func<string, TensorData> weights, Dictionary<string, long[]> expected, string name, ProgramBuffer buffer)
    {
        TensorData t = weights(name) ?? throw new ArgumentException($"the weights have no tensor '{name}'");
        if (expected.TryGetValue(name, out long[]? shape) && !t.Shape.SequenceEqual(shape))
        {
            throw new ArgumentException($"tensor '{name}' has shape [{string.Join(", ", t.Shape)}] but the configuration needs [{string.Join(", ", shape)}]");
        }
        byte[] bytes = program.DeviceBytes(name, t);
        if (bytes.Length != buffer.Bytes)
        {
            throw new InvalidOperationException($"tensor '{name}' converts to {bytes.Length} bytes; the program binds {buffer.Bytes}");
        }
        return (bytes, [.. t.Shape]);
    }
}
