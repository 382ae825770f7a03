namespace AscendCC.Device.Operators;

/// <summary>Every operator in the device's microcode table.</summary>
internal static class BuiltinOperators
{
    public static IOperator[] Create() => [];
}
