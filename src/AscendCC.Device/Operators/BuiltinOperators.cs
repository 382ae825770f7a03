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
        new RmsNormHeadsOperator(),
        new LayerNormOperator(),
        new RopeOperator("rope_interleaved"),
        new RopeOperator("rope_half"),
        new RopeSegmentsOperator("rope_interleaved_segments"),
        new RopeSegmentsOperator("rope_half_segments"),
        new EmbeddingOperator(),
        new SliceRowsOperator(),
        new SegmentLastRowsOperator(),
        new PositionRowsOperator(),
        new KvCacheWriteOperator(),
        new AttentionOperator(),
        new KvCacheWriteSegmentsOperator(),
        new AttentionSegmentsOperator(),
        new ArgmaxOperator(),
        new SampleOperator(),
        new SampleSegmentsOperator(),
        new PackageUnlockOperator(),
        new PromptOpenOperator(),
        new TokenSealOperator(),
        new PromptOpenSegmentsOperator(),
        new TokenSealSegmentsOperator(),
    ];
}
