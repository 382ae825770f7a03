using AscendCC.Device.Operators.Builtin;

namespace AscendCC.Device.Operators;

/// <summary>Every operator in the device's microcode table.</summary>
internal static class BuiltinOperators
{
    public static IOperator[] Create() =>
    [
        new MatMulOperator(),
        new BatchMatMulOperator(),
        new LinearOperator(),
        new LinearFusedOperator(),
        new AddOperator(),
        new MulOperator(),
        new ScaleOperator(),
        new ActivationOperator("relu"),
        new ActivationOperator("silu"),
        new ActivationOperator("gelu"),
        new ActivationOperator("gelu_tanh"),
        new SiluMulOperator(),
        new SoftmaxOperator(),
        new RmsNormOperator(),
        new LayerNormOperator(),
        new RopeOperator("rope_interleaved"),
        new RopeOperator("rope_half"),
        new EmbeddingOperator(),
        new SliceRowsOperator(),
        new KvCacheWriteOperator(),
        new AttentionOperator(),
        new ArgmaxOperator(),
        new SampleOperator(),
        new PackageUnlockOperator(),
        new PromptOpenOperator(),
        new TokenSealOperator(),
    ];
}
